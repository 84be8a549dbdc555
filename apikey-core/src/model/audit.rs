//! The audit trail: who changed which key, when, and how. Never a secret or a digest.

use serde::Serialize;
use time::OffsetDateTime;

/// Who makes an admin change: the CLI's `--actor`, else `APIKEY_ACTOR`, else the OS user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(String);

/// The environment variable naming the actor.
pub const ACTOR_ENV: &str = "APIKEY_ACTOR";

impl Actor {
    /// An actor by name: trimmed, 1 to 128 characters, no control or bidirectional
    /// formatting characters.
    pub fn new(name: &str) -> Result<Self, String> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 128 {
            return Err("an actor is 1 to 128 characters".to_owned());
        }
        super::check_name("actor", name)?;
        Ok(Actor(name.to_owned()))
    }

    /// An actor named after any text (an admin key's name from an older store, say): what
    /// could forge output is escaped and the name cut to 128 characters, so it always works.
    pub fn escaped(text: &str) -> Self {
        let escaped = super::escape_unsafe(text.trim());
        let name: String = escaped.chars().take(128).collect();
        Actor::new(&name).unwrap_or_else(|_| Actor("unknown".into()))
    }

    /// `APIKEY_ACTOR` when set, else the OS user (`USER`, `LOGNAME` or `USERNAME`), else the
    /// name of the OS account running the process (cron, systemd and containers often set no
    /// `USER`), else `unknown`.
    pub fn from_env() -> Self {
        [ACTOR_ENV, "USER", "LOGNAME", "USERNAME"]
            .into_iter()
            .filter_map(|var| std::env::var(var).ok())
            .chain(whoami::username().ok())
            .find_map(|name| Actor::new(&name).ok())
            .unwrap_or_else(|| Actor("unknown".into()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One entry of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// When the change was made.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Who made it.
    pub actor: String,
    /// What was done: `create`, `revoke`, `activate`, `delete`, `rotate`, `groups`,
    /// `rate-limit`, `quota`, `user-disable`, `user-enable`, `import`, `neutralize`, and the
    /// admin page's `admin-login` and `admin-logout` (which change no key).
    pub action: String,
    /// The key's name (the user's name for user changes, `*` for every key).
    pub name: String,
    /// A short description, for people.
    pub summary: String,
}

/// Which audit entries to read: all, or one key's (or user's), from a time on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only the entries of this key (or user; `*` for neutralize).
    pub name: Option<String>,
    /// Only the entries from this instant on.
    pub since: Option<OffsetDateTime>,
}
