//! The records stores keep.

use serde::Serialize;
use time::OffsetDateTime;

use super::{AllowIp, Groups, Meta, Quota, RateLimit, Scopes};
use crate::key::KeyDigest;

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
    pub rate_limit: Option<RateLimit>,
    /// Its own quota (`10000/30d`), else the `[apikey] quota` default applies.
    pub quota: Option<Quota>,
    /// The networks it is accepted from; empty: from anywhere.
    pub allow_ip: AllowIp,
    /// What it may do (`orders:write`, `orders:*`), sorted; routes with `scopes` need each of
    /// theirs covered.
    pub scopes: Vec<String>,
    /// Words for people about the key.
    pub description: Option<String>,
    /// Metadata handed to handlers with the identity (`Caller::meta`); never logged.
    pub meta: Meta,
}

impl KeyRecord {
    /// Whether the key is expired at `now`.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// Its state for people, now: `revoked`, `expired`, `user disabled` or `active`.
    pub fn status(&self) -> &'static str {
        if !self.active {
            "revoked"
        } else if self.is_expired(OffsetDateTime::now_utc()) {
            "expired"
        } else if !self.user_active {
            "user disabled"
        } else {
            "active"
        }
    }
}

/// A key as people and programs read it: the record and its [`status`](KeyRecord::status)
/// (`revoked`, `expired`, `user disabled`, `active`), as `apikey show --json` and the
/// management API answer it.
#[derive(Debug, Clone, Serialize)]
pub struct KeyView<'a> {
    /// The record.
    #[serde(flatten)]
    pub record: &'a KeyRecord,
    /// Its state now.
    pub status: &'static str,
}

impl<'a> From<&'a KeyRecord> for KeyView<'a> {
    fn from(record: &'a KeyRecord) -> Self {
        KeyView {
            record,
            status: record.status(),
        }
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
    pub groups: Groups,
    /// Optional expiry.
    pub expires_at: Option<OffsetDateTime>,
    /// KeyDigest of the secret.
    pub digest: KeyDigest,
    /// Display stub of the secret.
    pub stub: String,
    /// Optional rate limit (`100/1m`).
    pub rate_limit: Option<RateLimit>,
    /// Optional quota (`10000/30d`).
    pub quota: Option<Quota>,
    /// The networks it is accepted from; empty: from anywhere.
    pub allow_ip: AllowIp,
    /// What it may do.
    pub scopes: Scopes,
    /// Words for people about the key (checked by [`tech_name`](Self::tech_name)).
    pub description: Option<String>,
    /// Metadata handed to handlers.
    pub meta: Meta,
}

/// A digest found in a store: the key record and the life of that particular secret.
#[derive(Debug, Clone)]
pub struct Match {
    /// The record the digest belongs to.
    pub record: KeyRecord,
    /// The digest as stored, compared in constant time by the verifier.
    pub digest: KeyDigest,
    /// For a secret replaced by `rotate`, the end of its grace period.
    pub valid_until: Option<OffsetDateTime>,
}

impl NewKey {
    /// Checks the name and user (the only fields not typed already) and returns the tech name
    /// the key will have.
    pub fn tech_name(&self) -> Result<String, String> {
        let tech = crate::key::slugify(&self.name);
        if self.name.trim().is_empty() || tech.is_empty() {
            return Err(format!(
                "the key name {:?} has no letters or digits to make a tech name from",
                self.name
            ));
        }
        if self.user.trim().is_empty() {
            return Err("a key needs a user".into());
        }
        super::check_name("key name", &self.name)?;
        super::check_name("user", &self.user)?;
        if let Some(text) = &self.description {
            super::check_description(text)?;
        }
        Ok(tech)
    }
}

/// A new secret for an existing key: what [`rotate`](crate::KeyStore::rotate) stores.
#[derive(Debug, Clone)]
pub struct NewSecret {
    /// Digest of the new secret.
    pub digest: KeyDigest,
    /// Display stub of the new secret.
    pub stub: String,
    /// Until when the key's previous secrets keep working (`None`, or an instant already past:
    /// not at all).
    pub old_valid_until: Option<OffsetDateTime>,
    /// For a key rotating itself: what the store checks under the key's lock before it
    /// rotates (`None`: an administrator's rotation, always made).
    pub own: Option<OwnRotation>,
}

/// The rule of a key rotating itself, decided by the store inside the rotation's transaction
/// (under the key's lock), so that concurrent rotations cannot both pass it.
#[derive(Debug, Clone, Copy)]
pub struct OwnRotation {
    /// The digest of the secret that asks: it must be the key's current secret, not one in
    /// its rotation grace ([`RotationRefusal::SecretInGrace`] otherwise).
    pub presented: KeyDigest,
    /// The least time between two rotations of the key, whoever made them
    /// ([`RotationRefusal::TooSoon`] otherwise).
    pub every: std::time::Duration,
}

/// Why a store refused a key's rotation of itself ([`OwnRotation`]); nothing was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RotationRefusal {
    /// The secret that asked is in its rotation grace (or no longer the key's at all): only
    /// the current secret may rotate the key.
    #[error("a secret in its rotation grace cannot rotate the key")]
    SecretInGrace,
    /// The key was rotated (by anyone) less than the minimum interval ago.
    #[error("the key was rotated a moment ago; retry after {retry_after_secs} s")]
    TooSoon {
        /// Seconds until it may rotate itself again (at least 1).
        retry_after_secs: u32,
    },
}

impl OwnRotation {
    /// The refusal for a key last rotated at `last` (unix seconds; `None`: never), the presented
    /// secret being current (`current`), at `now`. Never panics, whatever the interval.
    pub fn check(&self, current: bool, last: Option<i64>, now: i64) -> Result<(), RotationRefusal> {
        // The interval first: of concurrent rotations by one secret, the first is made and
        // the others are told when to come back.
        if let Some(last) = last {
            let every = i64::try_from(self.every.as_secs()).unwrap_or(i64::MAX);
            let wait = match last.checked_add(every) {
                Some(next) if next <= now => None,
                Some(next) => Some(next.saturating_sub(now)),
                None => Some(i64::MAX),
            };
            if let Some(wait) = wait {
                return Err(RotationRefusal::TooSoon {
                    retry_after_secs: u32::try_from(wait.max(1)).unwrap_or(u32::MAX),
                });
            }
        }
        if !current {
            return Err(RotationRefusal::SecretInGrace);
        }
        Ok(())
    }
}

impl NewSecret {
    /// A new secret; the previous ones keep working until `old_valid_until`.
    pub fn new(
        digest: KeyDigest,
        stub: impl Into<String>,
        old_valid_until: Option<OffsetDateTime>,
    ) -> Self {
        NewSecret {
            digest,
            stub: stub.into(),
            old_valid_until,
            own: None,
        }
    }
}

/// A key brought over from another system with its plain value (an Odoo import): created when
/// new, brought in line when it differs, left alone when it is the same.
#[derive(Debug, Clone)]
pub struct ImportedKey {
    /// The key as it should be (its digest from the plain value).
    pub key: NewKey,
    /// Whether it is active.
    pub active: bool,
}

/// Where a stored key came from, as an import sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyOrigin {
    /// Made here (the CLI, the admin page, a service): an import never touches it.
    Here,
    /// Created by an import and not changed here since: a later import brings it in line.
    Imported,
    /// Created by an import, then changed here: a later import leaves it as it is.
    ChangedSinceImport,
}

/// What an import did to one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Imported {
    /// The key was new.
    Created,
    /// The key existed and was brought in line (secret, user, groups or active flag).
    Updated,
    /// The key existed exactly so.
    Unchanged,
    /// The key was changed here since it was imported (revoked, rotated, its groups, limits,
    /// networks or user's state): left as it is.
    Conflict,
}

/// Which keys a [`list`](crate::KeyStore::list) answers: every condition given must hold
/// (the default lists every key).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyFilter {
    /// Only keys of this user.
    pub user: Option<String>,
    /// Only keys in this group.
    pub group: Option<String>,
    /// Only keys that have not expired yet and expire within this long from now.
    pub expiring_within: Option<std::time::Duration>,
    /// Only revoked keys (`Some(true)`) or only active ones (`Some(false)`).
    pub revoked: Option<bool>,
}

impl KeyFilter {
    /// Every key.
    pub fn all() -> Self {
        KeyFilter::default()
    }

    /// Sets the condition a query parameter names (`user`, `group`, `expiring` as a duration,
    /// `revoked` as `true` or `false`): `Ok(false)` for a parameter that is not a filter, `Err`
    /// for a filter's bad value. How the management API and the admin page read their query.
    pub fn set(&mut self, name: &str, value: &str) -> Result<bool, String> {
        let value = value.trim();
        match name {
            "user" => self.user = Some(value.to_owned()).filter(|v| !v.is_empty()),
            "group" => self.group = Some(value.to_owned()).filter(|v| !v.is_empty()),
            "expiring" if value.is_empty() => self.expiring_within = None,
            "expiring" => self.expiring_within = Some(super::parse_duration(value)?),
            "revoked" => {
                self.revoked = match value {
                    "true" | "1" | "on" => Some(true),
                    "false" | "0" => Some(false),
                    "" | "any" => None,
                    _ => return Err("`revoked` is true or false".into()),
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The end of the expiry window at `now`, for [`expiring_within`](Self::expiring_within).
    pub fn expiring_until(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        self.expiring_within.map(|d| {
            now.checked_add(time::Duration::try_from(d).unwrap_or(time::Duration::MAX))
                .unwrap_or(OffsetDateTime::new_utc(
                    time::Date::MAX,
                    time::Time::MIDNIGHT,
                ))
        })
    }

    /// Whether `record` passes at `now` (what the SQL stores ask their database).
    pub fn matches(&self, record: &KeyRecord, now: OffsetDateTime) -> bool {
        self.user.as_ref().is_none_or(|u| &record.user == u)
            && self
                .group
                .as_ref()
                .is_none_or(|g| record.groups.iter().any(|have| have == g))
            && self.revoked.is_none_or(|revoked| record.active != revoked)
            && self
                .expiring_until(now)
                .is_none_or(|until| record.expires_at.is_some_and(|at| at > now && at <= until))
    }
}
