//! The command line: what `apikey` accepts, parsed into typed values.

use std::path::PathBuf;
use std::time::Duration;

use apikey_core::model::check_name;
use apikey_core::{parse_duration, Actor, IpNet, Quota, RateLimit};
use clap::{Parser, Subcommand};
use time::OffsetDateTime;

/// Administer API keys: create, list, revoke, rotate. Reads the same configuration as the
/// services (Rocket.toml, apikeys.toml or APIKEY_CONFIG, APIKEY_* variables).
#[derive(Parser, Debug)]
#[command(name = "apikey", version, about, long_about = None)]
pub struct Cli {
    /// Key store URL (sqlite:…, postgres://…); overrides [apikey] database_url.
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Standalone config file (instead of APIKEY_CONFIG or ./apikeys.toml): TOML, or an Odoo
    /// server_environment INI file (.conf, .cfg, .ini).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Who makes the change, for the audit trail (else APIKEY_ACTOR, else the OS user).
    #[arg(long, global = true, value_name = "NAME")]
    pub actor: Option<String>,
    /// Machine-readable output.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
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
        rate_limit: Option<RateLimit>,
        /// The key's own quota, e.g. 10000/30d (else the [apikey] quota default).
        #[arg(long, value_parser = quota, value_name = "QUOTA")]
        quota: Option<Quota>,
        /// A network the key is accepted from, e.g. 10.0.0.0/8 or 2001:db8::/32 (repeat for
        /// several; none: any address).
        #[arg(long = "allow-ip", value_parser = network, value_name = "CIDR")]
        allow_ip: Vec<IpNet>,
        /// A scope of the key, e.g. orders:write or orders:* (repeat for several); routes with
        /// `scopes` need each of theirs covered.
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// Words for people about the key.
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
        /// Metadata handed to handlers with the key's identity, as NAME=VALUE (repeat for
        /// several; at most 4 KiB in all).
        #[arg(long = "meta", value_name = "NAME=VALUE")]
        meta: Vec<String>,
    },
    /// Change a key's user, expiry, description or metadata (one change, audited old → new).
    Set {
        name: String,
        /// The user the key acts for from now on.
        #[arg(long)]
        user: Option<String>,
        /// Expire this long from now: seconds or e.g. 12h, 90d.
        #[arg(long, value_parser = duration, value_name = "DURATION", group = "expiry")]
        expires_in: Option<Duration>,
        /// Expire at this instant (RFC 3339, e.g. 2027-01-31T00:00:00Z).
        #[arg(long, value_parser = instant, value_name = "TIME", group = "expiry")]
        expires_at: Option<OffsetDateTime>,
        /// Never expire.
        #[arg(long, group = "expiry")]
        no_expiry: bool,
        /// The new description (empty: none).
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
        /// Set a metadata entry, NAME=VALUE (repeat for several).
        #[arg(long = "meta", value_name = "NAME=VALUE")]
        meta: Vec<String>,
        /// Remove a metadata entry (repeat for several).
        #[arg(long = "unset-meta", value_name = "NAME")]
        unset_meta: Vec<String>,
    },
    /// Manage a key's scopes.
    Scope {
        #[command(subcommand)]
        action: ScopeAction,
    },
    /// Set the networks a key is accepted from (e.g. 10.0.0.0/8 2001:db8::/32), or `--clear`
    /// to accept it from any address again.
    AllowIp {
        name: String,
        #[arg(
            value_parser = network,
            value_name = "CIDR",
            required_unless_present = "clear",
            conflicts_with = "clear"
        )]
        networks: Vec<IpNet>,
        /// Accept the key from any address.
        #[arg(long)]
        clear: bool,
    },
    /// Set a key's rate limit (e.g. 100/1m), or `none` to use the default.
    RateLimit {
        name: String,
        #[arg(value_parser = rate_limit_or_none, value_name = "LIMIT")]
        limit: Limit,
    },
    /// Set a key's quota (e.g. 10000/30d: uses per period, refilled when the period starts),
    /// or `none` to use the default.
    Quota {
        name: String,
        #[arg(value_parser = quota_or_none, value_name = "QUOTA")]
        quota: QuotaArg,
    },
    /// Show a key's requests per day (accepted, 403, 429) and its quota used and remaining.
    Usage {
        name: String,
        /// How many days back, today included.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3660))]
        days: u32,
    },
    /// List keys (never secrets); the filters combine.
    List {
        /// Only keys of this user.
        #[arg(long, value_name = "USER")]
        user: Option<String>,
        /// Only keys in this group.
        #[arg(long, value_name = "GROUP")]
        group: Option<String>,
        /// Only keys that have not expired yet and expire within this window, e.g. 14d.
        #[arg(long, value_parser = duration, value_name = "DURATION")]
        expiring: Option<Duration>,
        /// Only revoked keys.
        #[arg(long)]
        revoked: bool,
    },
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
    Verify {
        /// The address the key is used from: a key bound to networks is valid only from inside
        /// them (without --from, such a key is reported as not allowed).
        #[arg(long, value_name = "ADDRESS")]
        from: Option<std::net::IpAddr>,
    },
    /// Show the audit trail: who changed which key, when (never a secret).
    Audit {
        /// Only the entries of this key (or user).
        name: Option<String>,
        /// Only entries from this long ago on, e.g. 7d.
        #[arg(long, value_parser = duration, value_name = "DURATION")]
        since: Option<Duration>,
    },
    /// Import keys from another system.
    Import {
        #[command(subcommand)]
        source: ImportSource,
    },
    /// Deactivate every stored key in one transaction: for a store restored into staging, like
    /// Odoo's neutralize. With a per-environment pepper a restored store accepts no key anyway.
    Neutralize,
    /// Bring the key store's schema up to date (prints what it applied); with --check, change
    /// nothing and exit 1 when migrations are pending, listing them.
    Migrate {
        /// Only say whether the store is behind this build (exit 1 when it is).
        #[arg(long)]
        check: bool,
    },
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
pub enum ImportSource {
    /// Import the keys of an Odoo database (OCA auth_api_key, and auth_api_key_group when
    /// installed): same names, users (logins), groups (codes) and active flags; plain values
    /// are digested, never printed or stored. Archived Odoo users become disabled users.
    /// Running it again changes nothing.
    Odoo {
        /// The Odoo PostgreSQL database, e.g. postgres://odoo@db/odoo.
        #[arg(value_name = "ODOO_DATABASE_URL")]
        url: String,
        /// Report what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Grant the admin group ([apikey] admin_group) to Odoo keys in an Odoo group of that
        /// code (by default it is dropped, with a warning).
        #[arg(long)]
        allow_admin_group: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum GroupAction {
    /// Add a key to a group.
    Add { name: String, group: String },
    /// Remove a key from a group.
    Remove { name: String, group: String },
}

#[derive(Subcommand, Debug)]
pub enum ScopeAction {
    /// Give a key a scope (e.g. orders:write, orders:*, *).
    Add { name: String, scope: String },
    /// Take a scope from a key.
    Remove { name: String, scope: String },
}

#[derive(Subcommand, Debug)]
pub enum UserAction {
    /// Disable a user.
    Disable { user: String },
    /// Enable a user.
    Enable { user: String },
}

impl Cli {
    /// Checks the names this command would store (key name, user, groups) and the actor:
    /// none may hold a control or bidirectional formatting character. Checked here rather
    /// than by clap, whose message would repeat the value as it is.
    pub fn check_names(&self) -> Result<Option<Actor>, String> {
        let actor = self.actor.as_deref().map(Actor::new).transpose()?;
        match &self.command {
            Command::Create {
                name, user, groups, ..
            } => {
                check_name("key name", name)?;
                check_name("user", user)?;
                groups
                    .iter()
                    .try_for_each(|g| check_name("group name", g))?;
            }
            Command::Group {
                action: GroupAction::Add { group, .. },
            } => check_name("group name", group)?,
            Command::Set {
                user: Some(user), ..
            } => check_name("user", user)?,
            Command::User {
                action: UserAction::Disable { user } | UserAction::Enable { user },
            } => check_name("user", user)?,
            _ => {}
        }
        Ok(actor)
    }
}

fn instant(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| "expected an RFC 3339 time, e.g. 2027-01-31T00:00:00Z".to_owned())
}

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text)
}

fn network(text: &str) -> Result<IpNet, String> {
    text.parse()
}

fn rate_limit(text: &str) -> Result<RateLimit, String> {
    text.parse()
}

/// A rate limit, or `none`: the default applies.
#[derive(Debug, Clone, Copy)]
pub struct Limit(pub Option<RateLimit>);

fn rate_limit_or_none(text: &str) -> Result<Limit, String> {
    if text == "none" {
        Ok(Limit(None))
    } else {
        rate_limit(text).map(|l| Limit(Some(l)))
    }
}

fn quota(text: &str) -> Result<Quota, String> {
    text.parse()
}

/// A quota, or `none`: the default applies.
#[derive(Debug, Clone, Copy)]
pub struct QuotaArg(pub Option<Quota>);

fn quota_or_none(text: &str) -> Result<QuotaArg, String> {
    if text == "none" {
        Ok(QuotaArg(None))
    } else {
        quota(text).map(|q| QuotaArg(Some(q)))
    }
}
