//! The records stores keep and the identity handed to handlers.

use std::fmt;
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
    /// Its own rate limit (`100/1m`), else the `[apikey] rate_limit` default applies.
    pub rate_limit: Option<String>,
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
    /// Optional rate limit (`100/1m`).
    pub rate_limit: Option<String>,
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
///
/// Compact on purpose (one allocation, 32 bytes inline): verified keys are cached by the
/// million. Group names never contain control characters, so they are stored `\n`-separated.
#[derive(Clone, PartialEq, Eq)]
pub struct Caller {
    /// `user`, `key_name`, `tech_name`, then `\n` + group for each group.
    text: Arc<str>,
    user_end: u32,
    name_end: u32,
    tech_end: u32,
}

fn offset(len: usize) -> u32 {
    // Names, users and groups are far below 4 GiB; saturate rather than wrap.
    u32::try_from(len).unwrap_or(u32::MAX)
}

impl Caller {
    /// Builds a caller. Groups are sorted and deduplicated; control characters in them are
    /// dropped (stores and config refuse such groups before they get here).
    pub fn new<G: AsRef<str>>(user: &str, key_name: &str, tech_name: &str, groups: &[G]) -> Self {
        let mut groups: Vec<String> = groups
            .iter()
            .map(|g| g.as_ref().chars().filter(|c| !c.is_control()).collect())
            .collect();
        groups.sort();
        groups.dedup();
        let mut text = String::with_capacity(
            user.len()
                + key_name.len()
                + tech_name.len()
                + groups.iter().map(|g| g.len() + 1).sum::<usize>(),
        );
        text.push_str(user);
        let user_end = offset(text.len());
        text.push_str(key_name);
        let name_end = offset(text.len());
        text.push_str(tech_name);
        let tech_end = offset(text.len());
        for g in &groups {
            text.push('\n');
            text.push_str(g);
        }
        Caller {
            text: text.into(),
            user_end,
            name_end,
            tech_end,
        }
    }

    /// The user the key acts for.
    pub fn user(&self) -> &str {
        &self.text[..self.user_end as usize]
    }

    /// The name of the key that was presented.
    pub fn key_name(&self) -> &str {
        &self.text[self.user_end as usize..self.name_end as usize]
    }

    /// The key's tech name (`slugify(name)`).
    pub fn tech_name(&self) -> &str {
        &self.text[self.name_end as usize..self.tech_end as usize]
    }

    /// The key's groups, sorted.
    pub fn groups(&self) -> impl Iterator<Item = &str> + Clone + '_ {
        let rest = &self.text[self.tech_end as usize..];
        rest.split('\n').skip(1)
    }

    /// Whether the key is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups().any(|g| g == group)
    }

    /// Whether the key is in at least one of `groups`; true when `groups` is empty.
    pub fn in_any(&self, groups: &[&str]) -> bool {
        groups.is_empty() || groups.iter().any(|g| self.in_group(g))
    }
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller")
            .field("user", &self.user())
            .field("key_name", &self.key_name())
            .field("tech_name", &self.tech_name())
            .field("groups", &self.groups().collect::<Vec<_>>())
            .finish()
    }
}

impl Serialize for Caller {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Caller", 4)?;
        st.serialize_field("user", self.user())?;
        st.serialize_field("key_name", self.key_name())?;
        st.serialize_field("tech_name", self.tech_name())?;
        st.serialize_field("groups", &self.groups().collect::<Vec<_>>())?;
        st.end()
    }
}

/// Checks group names: no control characters (they could not be told apart when stored).
pub fn check_groups(groups: &[String]) -> Result<(), String> {
    match groups.iter().find(|g| g.chars().any(char::is_control)) {
        Some(g) => Err(format!("the group name {g:?} holds a control character")),
        None => Ok(()),
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
