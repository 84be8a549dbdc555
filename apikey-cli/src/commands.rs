//! What each command does: opens the store the services use, runs one [`KeyManager`] call
//! (every change goes through it) and prints the outcome.

use std::io::{self, BufRead};
use std::path::Path;

use apikey_core::config::{layered, redact_url};
use apikey_core::model::{
    check_description, expiry_after, GroupEdit, Groups, KeyChange, KeyEdit, KeyFilter, Meta,
    MetaEdit, ScopeEdit, Scopes,
};
use apikey_core::KeyRequest;
use apikey_core::{
    Actor, AllowIp, ApiKeyConfig, AuditFilter, AuthError, CreateKey, KeyManager, Verifier,
};
use figment::providers::{Format, Toml};
use figment::Figment;
use time::OffsetDateTime;

use crate::args::{Cli, Command, GroupAction, ImportSource, ScopeAction, UserAction};
use crate::failure::Failure;
use crate::output;
use apikey_core::admin::usage::{self, UsageError};

/// Rocket's config file (`ROCKET_CONFIG` or `Rocket.toml`) with the profile Rocket would pick
/// (`ROCKET_PROFILE`, else `default`): the CLI reads the services' configuration as they do.
fn rocket_toml() -> Figment {
    let path = std::env::var("ROCKET_CONFIG").unwrap_or_else(|_| "Rocket.toml".into());
    let profile = std::env::var("ROCKET_PROFILE").unwrap_or_else(|_| "default".into());
    let figment = Figment::new().select(profile);
    if Path::new(&path).is_file() {
        figment.merge(Toml::file_exact(path).nested())
    } else {
        figment
    }
}

/// The services' configuration: Rocket's file, the standalone file, the environment, then the
/// `--database-url` flag.
fn config(cli: &Cli) -> Result<ApiKeyConfig, Failure> {
    let figment = layered(rocket_toml(), cli.config.as_deref());
    let mut config = figment
        .and_then(|f| ApiKeyConfig::from_figment(&f))
        .map_err(|e| Failure(e.to_string(), 2))?;
    if let Some(url) = &cli.database_url {
        config.settings.database_url = url.clone();
    }
    Ok(config)
}

/// A SQLite store file that does not exist yet: only `create` and `import` may make it (and
/// then it is named, `Some`); any other command stops with exit 2 naming where it looked, so a
/// command run from the wrong directory never makes a second, empty store.
fn new_store_file(cli: &Cli, url: &str) -> Result<Option<std::path::PathBuf>, Failure> {
    if let Some(path) = apikey_core::store::sqlite_file(url) {
        if path.exists() {
            return Ok(None);
        }
        let makes_one = matches!(
            cli.command,
            Command::Create { .. } | Command::Import { .. } | Command::Migrate { check: false }
        );
        if makes_one {
            return Ok(Some(path));
        }
        return Err(Failure(
            format!(
                "no key store at {}: the SQLite file does not exist (run the command where the \
                 services run, or name the store with --database-url or APIKEY_DATABASE_URL); \
                 only `create`, `import` and `migrate` make a new store",
                path.display()
            ),
            2,
        ));
    }
    Ok(None)
}

/// `apikey migrate [--check]`: the schema alone, never through a store that would migrate on
/// opening.
async fn migrate(
    config: &ApiKeyConfig,
    check: bool,
    json: bool,
    created: Option<std::path::PathBuf>,
) -> Result<(), Failure> {
    let settings = &config.settings;
    let fail = |e: apikey_core::StoreError| {
        let code = match e {
            apikey_core::StoreError::Unavailable(_) | apikey_core::StoreError::TooNew { .. } => 2,
            _ => 1,
        };
        let url = redact_url(&settings.database_url);
        Failure(format!("the key store {url}: {e}"), code)
    };
    if check {
        let status = apikey_core::store::schema_status(settings)
            .await
            .map_err(fail)?;
        output::schema(json, &status, false);
        if !status.is_current() {
            return Err(Failure(
                format!(
                    "the key store's schema is at {}, this build needs {}: run `apikey migrate`",
                    status.at, status.needed
                ),
                1,
            ));
        }
        return Ok(());
    }
    let before = apikey_core::store::migrate(settings).await.map_err(fail)?;
    if let Some(path) = created {
        eprintln!("created a new key store at {}", path.display());
    }
    output::schema(json, &before, true);
    Ok(())
}

/// A bad argument found after parsing: exit 2, as clap's own.
fn bad_argument(message: String) -> Failure {
    Failure(message, 2)
}

/// `--meta NAME=VALUE` entries, checked (a bad one is exit 2; its value is never repeated).
fn meta_entries(entries: &[String]) -> Result<Vec<(String, String)>, Failure> {
    entries
        .iter()
        .map(|e| MetaEdit::parse_entry(e).map_err(bad_argument))
        .collect()
}

/// Runs one command.
pub async fn run(cli: Cli, actor: Option<Actor>) -> Result<(), Failure> {
    let config = config(&cli)?;
    let created = new_store_file(&cli, &config.settings.database_url)?;
    if let Command::Migrate { check } = cli.command {
        return migrate(&config, check, cli.json, created).await;
    }
    let store = apikey_core::open(&config.settings).await.map_err(|e| {
        let url = redact_url(&config.settings.database_url);
        Failure(format!("cannot open the key store {url}: {e}"), 2)
    })?;
    if let Some(path) = created {
        eprintln!("created a new key store at {}", path.display());
    }
    let mut keys = KeyManager::new(store.clone(), &config);
    if let Some(actor) = actor {
        keys = keys.with_actor(actor);
    }
    let json = cli.json;
    match cli.command {
        Command::Create {
            name,
            user,
            groups,
            expires_in,
            rate_limit,
            quota,
            allow_ip,
            scopes,
            description,
            meta,
        } => {
            let meta = Meta::new(meta_entries(&meta)?).map_err(bad_argument)?;
            let scopes = Scopes::new(&scopes).map_err(bad_argument)?.into_vec();
            if let Some(text) = &description {
                check_description(text).map_err(bad_argument)?;
            }
            if let Some(d) = expires_in {
                expiry_after(time::OffsetDateTime::now_utc(), d).map_err(bad_argument)?;
            }
            let spec = CreateKey {
                name,
                user,
                groups,
                expires_in,
                rate_limit,
                quota,
                allow_ip: AllowIp::new(allow_ip),
                scopes,
                description: description.filter(|d| !d.is_empty()),
                meta,
            };
            let (r, key) = keys.create(spec).await?;
            output::print_secret(json, &r, &key, "Created");
        }
        Command::Set {
            name,
            user,
            expires_in,
            expires_at,
            no_expiry,
            description,
            meta,
            unset_meta,
        } => {
            let now = OffsetDateTime::now_utc();
            let expires_at = match (expires_in, expires_at, no_expiry) {
                (Some(d), _, _) => Some(Some(expiry_after(now, d).map_err(bad_argument)?)),
                (_, Some(at), _) => Some(Some(at)),
                (_, _, true) => Some(None),
                _ => None,
            };
            let edit = KeyEdit {
                user,
                expires_at,
                description: description.map(|d| Some(d).filter(|d| !d.is_empty())),
                meta: MetaEdit::new(meta_entries(&meta)?, unset_meta).map_err(bad_argument)?,
                ..KeyEdit::default()
            };
            if edit.is_empty() {
                return Err(bad_argument(
                    "nothing to change: give --user, --expires-in, --expires-at, --no-expiry, \
                     --description, --meta or --unset-meta"
                        .into(),
                ));
            }
            edit.check(now).map_err(bad_argument)?;
            let r = keys.change(&name, KeyChange::Edit(Box::new(edit))).await?;
            output::done(json, &r, "Updated")
        }
        Command::Scope { action } => {
            let (name, edit) = match action {
                ScopeAction::Add { name, scope } => (name, ScopeEdit::new([scope], [""; 0])),
                ScopeAction::Remove { name, scope } => (name, ScopeEdit::new([""; 0], [scope])),
            };
            let edit = edit.map_err(bad_argument)?;
            let r = keys.change(&name, KeyChange::EditScopes(edit)).await?;
            output::scopes(json, &r);
        }
        Command::List {
            user,
            group,
            expiring,
            revoked,
        } => {
            let filter = KeyFilter {
                user,
                group,
                expiring_within: expiring,
                revoked: revoked.then_some(true),
            };
            output::records(json, &keys.list(&filter).await?)
        }
        Command::Show { name } => output::record(json, &keys.get(&name).await?),
        Command::Revoke { name } => output::done(json, &keys.revoke(&name).await?, "Revoked"),
        Command::Activate { name } => output::done(json, &keys.activate(&name).await?, "Activated"),
        Command::Delete { name } => {
            keys.delete(&name).await?;
            output::deleted(json, &name);
        }
        Command::RateLimit { name, limit } => {
            let r = keys.change(&name, KeyChange::RateLimit(limit.0)).await?;
            output::done(json, &r, "Updated")
        }
        Command::Quota { name, quota } => {
            let r = keys.change(&name, KeyChange::Quota(quota.0)).await?;
            output::done(json, &r, "Updated")
        }
        Command::AllowIp {
            name,
            networks,
            clear: _,
        } => {
            // `--clear` comes with no network: the empty list, from any address.
            let r = keys
                .change(&name, KeyChange::AllowIp(AllowIp::new(networks)))
                .await?;
            output::done(json, &r, "Updated");
        }
        Command::Usage { name, days } => {
            let report =
                usage::report(&config, &store, &name, days)
                    .await
                    .map_err(|e| match e {
                        UsageError::Quota(_) => Failure(e.to_string(), 2),
                        e => Failure(e.to_string(), 1),
                    })?;
            output::usage(json, &report);
        }
        Command::Rotate { name, grace } => {
            let (r, key) = keys.rotate(&name, grace).await?;
            output::print_secret(json, &r, &key, "Rotated");
        }
        Command::Verify { from } => {
            let mut line = String::new();
            io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| Failure(format!("cannot read the key from stdin: {e}"), 2))?;
            let verifier = Verifier::new(config, store)
                .await
                .map_err(|e| Failure(e.to_string(), 2))?;
            let outcome = verifier
                .verify_request(&KeyRequest::new(line.trim_end_matches(['\r', '\n'])).from(from))
                .await
                .map(|v| v.identity);
            if outcome == Err(AuthError::Unavailable) {
                return Err(Failure("the key store is unavailable".into(), 2));
            }
            output::verified(json, &outcome, from.is_some());
            if outcome.is_err() {
                return Err(Failure(String::new(), 1));
            }
        }
        Command::Audit { name, since } => {
            let since = since.map(|d| {
                OffsetDateTime::now_utc()
                    .saturating_sub(d.try_into().unwrap_or(time::Duration::MAX))
            });
            output::audit(json, &keys.audit(&AuditFilter { name, since }).await?);
        }
        Command::Import {
            source:
                ImportSource::Odoo {
                    url,
                    dry_run,
                    allow_admin_group,
                },
        } => {
            let report = keys
                .import_odoo_with(&url, dry_run, allow_admin_group)
                .await
                .map_err(|e| Failure(e.to_string(), 2))?;
            output::imported(json, &report);
        }
        Command::Neutralize => output::neutralized(json, keys.neutralize().await?),
        // Handled before the store is opened.
        Command::Migrate { .. } => {}
        Command::Group { action } => {
            let one = |group: &str| Groups::one(group).map_err(|e| Failure(e, 2));
            let (name, edit) = match action {
                GroupAction::Add { name, group } => (
                    name,
                    GroupEdit {
                        add: one(&group)?,
                        remove: Groups::default(),
                    },
                ),
                GroupAction::Remove { name, group } => (
                    name,
                    GroupEdit {
                        add: Groups::default(),
                        remove: one(&group)?,
                    },
                ),
            };
            let r = keys.change(&name, KeyChange::EditGroups(edit)).await?;
            output::groups(json, &r);
        }
        Command::User { action } => {
            let (user, active) = match action {
                UserAction::Disable { user } => (user, false),
                UserAction::Enable { user } => (user, true),
            };
            let count = keys.set_user_active(&user, active).await?;
            output::user(json, &user, active, count);
        }
    }
    Ok(())
}
