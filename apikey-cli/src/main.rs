//! `apikey`: administer API keys in the store the services use.
#![forbid(unsafe_code)]

use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use apikey_core::config::parse_duration;
use apikey_core::{
    store, ApiKeyConfig, AuthError, CreateKey, KeyManager, KeyRecord, RateLimit, SharedStore,
    StoreError, Verifier,
};
use clap::{Parser, Subcommand};
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Administer API keys: create, list, revoke, rotate. Reads the same configuration as the
/// services (Rocket.toml, apikeys.toml or APIKEY_CONFIG, APIKEY_* variables).
#[derive(Parser, Debug)]
#[command(name = "apikey", version, about, long_about = None)]
struct Cli {
    /// Key store URL (sqlite:…, postgres://…); overrides [apikey] database_url.
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
    /// Standalone config file (instead of APIKEY_CONFIG or ./apikeys.toml).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a key; prints it once (only its digest is stored).
    Create {
        /// Unique name; its config section is [api_key_<slugified name>].
        name: String,
        /// The user the key acts for.
        #[arg(long)]
        user: String,
        /// A group of the key (repeat for several).
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
        /// Lifetime: seconds or e.g. 12h, 90d.
        #[arg(long, value_parser = duration, value_name = "DURATION")]
        expires_in: Option<Duration>,
        /// The key's own rate limit, e.g. 100/1m (else the [apikey] rate_limit default).
        #[arg(long, value_parser = rate_limit, value_name = "LIMIT")]
        rate_limit: Option<String>,
    },
    /// Set a key's rate limit (e.g. 100/1m), or `none` to use the default.
    RateLimit {
        name: String,
        #[arg(value_parser = rate_limit_or_none, value_name = "LIMIT")]
        limit: String,
    },
    /// List keys (never secrets).
    List,
    /// Show one key.
    Show { name: String },
    /// Revoke a key: it stops working at once.
    Revoke { name: String },
    /// Re-activate a revoked key.
    Activate { name: String },
    /// Delete a key and all its secrets.
    Delete { name: String },
    /// Give a key a new secret; prints it once. The old one works until the grace ends.
    Rotate {
        name: String,
        /// How long the old secret keeps working: seconds or e.g. 24h (default: not at all).
        #[arg(long, value_parser = duration, value_name = "DURATION", default_value = "0")]
        grace: Duration,
    },
    /// Verify a key read from standard input: exit 0 valid, 1 invalid, 2 on error.
    Verify,
    /// Manage a key's groups.
    Group {
        #[command(subcommand)]
        action: GroupAction,
    },
    /// Disable or enable a user (a disabled user's keys are refused unless
    /// disable_keys_of_inactive_users = false).
    User {
        #[command(subcommand)]
        action: UserAction,
    },
}

#[derive(Subcommand, Debug)]
enum GroupAction {
    /// Add a key to a group.
    Add { name: String, group: String },
    /// Remove a key from a group.
    Remove { name: String, group: String },
}

#[derive(Subcommand, Debug)]
enum UserAction {
    /// Disable a user.
    Disable { user: String },
    /// Enable a user.
    Enable { user: String },
}

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text)
}

fn rate_limit(text: &str) -> Result<String, String> {
    text.parse::<RateLimit>().map(|l| l.to_string())
}

fn rate_limit_or_none(text: &str) -> Result<String, String> {
    if text == "none" {
        Ok(String::new())
    } else {
        rate_limit(text)
    }
}

/// An error that ends the command: message to stderr, exit code.
struct Failure(String, u8);

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure(e.to_string(), 1)
    }
}

fn when(t: Option<OffsetDateTime>) -> String {
    t.and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "-".into())
}

fn status(r: &KeyRecord) -> &'static str {
    if !r.active {
        "revoked"
    } else if r.is_expired(OffsetDateTime::now_utc()) {
        "expired"
    } else if !r.user_active {
        "user disabled"
    } else {
        "active"
    }
}

fn record_json(r: &KeyRecord) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    v["status"] = json!(status(r));
    v
}

fn print_record(r: &KeyRecord) {
    println!("name:         {}", r.name);
    println!("tech_name:    {}", r.tech_name);
    println!("user:         {}", r.user);
    println!("groups:       {}", r.groups.join(", "));
    println!("status:       {}", status(r));
    println!("stub:         {}", r.stub);
    println!(
        "rate_limit:   {}",
        r.rate_limit.as_deref().unwrap_or("- (the default)")
    );
    println!("expires_at:   {}", when(r.expires_at));
    println!("created_at:   {}", when(Some(r.created_at)));
    println!("last_used_at: {}", when(r.last_used_at));
}

fn print_list(records: &[KeyRecord]) {
    let rows: Vec<[String; 7]> = records
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                r.user.clone(),
                r.groups.join(","),
                status(r).into(),
                r.stub.clone(),
                r.rate_limit.clone().unwrap_or_else(|| "-".into()),
                when(r.last_used_at),
            ]
        })
        .collect();
    let header = [
        "NAME",
        "USER",
        "GROUPS",
        "STATUS",
        "STUB",
        "RATE LIMIT",
        "LAST USED",
    ]
    .map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}

fn print_secret(json: bool, r: &KeyRecord, key: &apikey_core::Secret, what: &str) {
    if json {
        let mut v = record_json(r);
        v["key"] = json!(key.expose());
        println!("{v}");
    } else {
        eprintln!(
            "{what} key {:?} for user {:?}. The key is shown once, store it now:",
            r.name, r.user
        );
        println!("{}", key.expose());
    }
}

fn done(json: bool, r: &KeyRecord, what: &str) {
    if json {
        println!("{}", record_json(r));
    } else {
        eprintln!("{what} key {:?} (now {}).", r.name, status(r));
    }
}

async fn open(cli: &Cli) -> Result<(ApiKeyConfig, SharedStore), Failure> {
    let mut config =
        ApiKeyConfig::load(cli.config.as_deref()).map_err(|e| Failure(e.to_string(), 2))?;
    if let Some(url) = &cli.database_url {
        config.settings.database_url = url.clone();
    }
    let store = store::open(&config.settings.database_url)
        .await
        .map_err(|e| {
            let url = apikey_core::config::redact_url(&config.settings.database_url);
            Failure(format!("cannot open the key store {url}: {e}"), 2)
        })?;
    Ok((config, store))
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let (config, store) = open(&cli).await?;
    let manager = KeyManager::new(store.clone(), &config);
    let json = cli.json;
    match cli.command {
        Command::Create {
            name,
            user,
            groups,
            expires_in,
            rate_limit,
        } => {
            let (r, key) = manager
                .create(CreateKey {
                    name,
                    user,
                    groups,
                    expires_in,
                    rate_limit,
                })
                .await?;
            print_secret(json, &r, &key, "Created");
        }
        Command::List => {
            let all = store.list().await?;
            if json {
                let v: Vec<_> = all.iter().map(record_json).collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                print_list(&all);
            }
        }
        Command::Show { name } => {
            let r = store.get(&name).await?.ok_or(StoreError::NotFound(name))?;
            if json {
                println!("{}", record_json(&r));
            } else {
                print_record(&r);
            }
        }
        Command::Revoke { name } => done(json, &store.set_active(&name, false).await?, "Revoked"),
        Command::Activate { name } => {
            done(json, &store.set_active(&name, true).await?, "Activated")
        }
        Command::Delete { name } => {
            store.delete(&name).await?;
            if json {
                println!("{}", json!({ "deleted": name }));
            } else {
                eprintln!("Deleted key {name:?}.");
            }
        }
        Command::RateLimit { name, limit } => {
            let limit = Some(limit).filter(|l| !l.is_empty());
            done(json, &store.set_rate_limit(&name, limit).await?, "Updated");
        }
        Command::Rotate { name, grace } => {
            let (r, key) = manager.rotate(&name, grace).await?;
            print_secret(json, &r, &key, "Rotated");
        }
        Command::Verify => {
            let mut line = String::new();
            io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| Failure(format!("cannot read the key from stdin: {e}"), 2))?;
            let verifier = Verifier::new(config, store)
                .await
                .map_err(|e| Failure(e.to_string(), 2))?;
            let verifier = Arc::new(verifier);
            match verifier
                .verify_header([line.trim_end_matches(['\r', '\n'])])
                .await
            {
                Ok(caller) => {
                    if json {
                        println!(
                            "{}",
                            json!({ "valid": true, "user": caller.user(), "name": caller.key_name(), "groups": caller.groups().collect::<Vec<_>>() })
                        );
                    } else {
                        println!(
                            "valid: key {:?} of user {:?}",
                            caller.key_name(),
                            caller.user()
                        );
                    }
                }
                Err(AuthError::Unavailable) => {
                    return Err(Failure("the key store is unavailable".into(), 2))
                }
                Err(e) => {
                    if json {
                        println!("{}", json!({ "valid": false }));
                    } else {
                        println!("invalid: {e}");
                    }
                    return Err(Failure(String::new(), 1));
                }
            }
        }
        Command::Group { action } => {
            let (name, group, add) = match action {
                GroupAction::Add { name, group } => (name, group, true),
                GroupAction::Remove { name, group } => (name, group, false),
            };
            let group = [group];
            let (add, remove): (&[String], &[String]) =
                if add { (&group, &[]) } else { (&[], &group) };
            let r = store.edit_groups(&name, add, remove).await?;
            if json {
                println!("{}", record_json(&r));
            } else {
                eprintln!("Key {:?} is in groups: {}.", r.name, r.groups.join(", "));
            }
        }
        Command::User { action } => {
            let (user, active) = match action {
                UserAction::Disable { user } => (user, false),
                UserAction::Enable { user } => (user, true),
            };
            let keys = store.set_user_active(&user, active).await?;
            let state = if active { "enabled" } else { "disabled" };
            if json {
                println!(
                    "{}",
                    json!({ "user": user, "active": active, "keys": keys })
                );
            } else {
                eprintln!("User {user:?} {state} ({keys} key(s)).");
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("apikey: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(run(cli));
    let _ = io::stdout().flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message, code)) => {
            if !message.is_empty() {
                eprintln!("apikey: {message}");
            }
            ExitCode::from(code)
        }
    }
}
