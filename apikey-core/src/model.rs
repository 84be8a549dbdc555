//! The records stores keep and the identity handed to handlers.

use std::sync::Arc;

use serde::Serialize;
use time::OffsetDateTime;

use crate::Digest;

/// A stored key, without its secret: what `apikey list` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyRecord {
    /// Unique human name ("My Service").
    pub name: String,
    /// Unique `slugify(name)` ("my_service"); the config section is `[api_key_<tech_name>]`.
    pub tech_name: String,
    /// The user the key acts for.
    pub user: String,
    /// Groups of the key, sorted and without duplicates.
    pub groups: Vec<String>,
    /// False once revoked.
    pub active: bool,
    /// False when the key's user is disabled.
    pub user_active: bool,
    /// Prefix and first characters of the current secret.
    pub stub: String,
    /// After this instant the key is refused.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// When the key was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When a request last used it (updated lazily).
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

impl KeyRecord {
    /// Whether the key is expired at `now`.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// What a store needs to create a key: everything but the secret, which arrives as a digest.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// Unique name.
    pub name: String,
    /// The user the key acts for.
    pub user: String,
    /// Groups of the key.
    pub groups: Vec<String>,
    /// Optional expiry.
    pub expires_at: Option<OffsetDateTime>,
    /// Digest of the secret.
    pub digest: Digest,
    /// Display stub of the secret.
    pub stub: String,
}

/// A digest found in a store: the key record and the life of that particular secret.
#[derive(Debug, Clone)]
pub struct Match {
    /// The record the digest belongs to.
    pub record: KeyRecord,
    /// The digest as stored, compared in constant time by the verifier.
    pub digest: Digest,
    /// For a secret replaced by `rotate`, the end of its grace period.
    pub valid_until: Option<OffsetDateTime>,
}

/// A change to the stored keys, announced to running verifiers so caches drop what it touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The key with this name changed (created, revoked, activated, deleted, rotated).
    Key(String),
    /// Keys of this user changed (user disabled or enabled).
    User(String),
    /// Anything may have changed (a notification was lost): drop everything.
    All,
}

/// The authenticated caller handed to handlers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Caller {
    user: Arc<str>,
    key_name: Arc<str>,
    tech_name: Arc<str>,
    groups: Arc<[String]>,
}

impl Caller {
    /// Builds a caller. Groups are sorted and deduplicated.
    pub fn new(user: &str, key_name: &str, tech_name: &str, groups: &[String]) -> Self {
        let mut groups = groups.to_vec();
        groups.sort();
        groups.dedup();
        Caller {
            user: user.into(),
            key_name: key_name.into(),
            tech_name: tech_name.into(),
            groups: groups.into(),
        }
    }

    /// The user the key acts for.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The name of the key that was presented.
    pub fn key_name(&self) -> &str {
        &self.key_name
    }

    /// The key's tech name (`slugify(name)`).
    pub fn tech_name(&self) -> &str {
        &self.tech_name
    }

    /// The key's groups.
    pub fn groups(&self) -> &[String] {
        &self.groups
    }

    /// Whether the key is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// Whether the key is in at least one of `groups`; true when `groups` is empty.
    pub fn in_any(&self, groups: &[&str]) -> bool {
        groups.is_empty() || groups.iter().any(|g| self.in_group(g))
    }
}

/// Normalises a list of group names: trimmed, non-empty, sorted, unique.
pub fn normalize_groups(groups: &[String]) -> Vec<String> {
    let mut out: Vec<String> = groups
        .iter()
        .map(|g| g.trim().to_owned())
        .filter(|g| !g.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}
