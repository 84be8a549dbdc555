//! One typed change of a stored key: what [`KeyStore::change`](crate::KeyStore::change) applies
//! atomically and records in the audit trail, whichever field it touches.

use time::OffsetDateTime;

use super::{AllowIp, GroupEdit, Groups, KeyRecord, MetaEdit, Quota, RateLimit, ScopeEdit, Scopes};

/// A change of one key. Every store applies it the same way ([`apply`](Self::apply)), in one
/// atomic operation under the key's lock, and audits it as [`action`](Self::action) with a
/// summary of what it changed (old → new).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChange {
    /// Revoke (`false`) or re-activate (`true`).
    Active(bool),
    /// Replace the groups.
    Groups(Groups),
    /// Add and remove groups (two concurrent edits never lose each other's change).
    EditGroups(GroupEdit),
    /// Replace the scopes.
    Scopes(Scopes),
    /// Add and remove scopes (two concurrent edits never lose each other's change).
    EditScopes(ScopeEdit),
    /// Set or clear the rate limit (`None`: the default, `rate_limit`).
    RateLimit(Option<RateLimit>),
    /// Set or clear the quota (`None`: the default, `quota`).
    Quota(Option<Quota>),
    /// The networks it is accepted from (empty: from anywhere).
    AllowIp(AllowIp),
    /// When it expires (`None`: never).
    Expiry(Option<OffsetDateTime>),
    /// Several fields at once (`apikey set`, the management API's `PATCH`, the admin page's
    /// edit form): every field it names, in one atomic change.
    Edit(Box<KeyEdit>),
}

/// The fields an [`Edit`](KeyChange::Edit) changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyEdit {
    /// The user the key acts for from now on.
    pub user: Option<String>,
    /// The new expiry (`Some(None)`: never expires).
    pub expires_at: Option<Option<OffsetDateTime>>,
    /// The new description (`Some(None)`: none).
    pub description: Option<Option<String>>,
    /// Metadata entries to set and remove.
    pub meta: MetaEdit,
    /// The new groups.
    pub groups: Option<Groups>,
    /// The new scopes.
    pub scopes: Option<Scopes>,
    /// The new rate limit (`Some(None)`: the default).
    pub rate_limit: Option<Option<RateLimit>>,
    /// The new quota (`Some(None)`: the default).
    pub quota: Option<Option<Quota>>,
    /// The new networks.
    pub allow_ip: Option<AllowIp>,
}

impl KeyEdit {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self == &KeyEdit::default()
    }

    /// Checks what can be checked before the store is asked: a description's text, an expiry
    /// not in the past (at `now`).
    pub fn check(&self, now: OffsetDateTime) -> Result<(), String> {
        if let Some(user) = &self.user {
            if user.trim().is_empty() {
                return Err("a key needs a user".into());
            }
            super::check_name("user", user)?;
        }
        if let Some(Some(text)) = &self.description {
            super::check_description(text)?;
        }
        if let Some(Some(at)) = self.expires_at {
            if at <= now {
                return Err(
                    "the expiry is in the past: a key cannot be set to have expired \
                            (revoke it instead)"
                        .into(),
                );
            }
        }
        Ok(())
    }
}

impl KeyChange {
    /// The audit trail's name for the change.
    pub fn action(&self) -> &'static str {
        match self {
            KeyChange::Active(false) => "revoke",
            KeyChange::Active(true) => "activate",
            KeyChange::Groups(_) | KeyChange::EditGroups(_) => "groups",
            KeyChange::Scopes(_) | KeyChange::EditScopes(_) => "scopes",
            KeyChange::RateLimit(_) => "rate-limit",
            KeyChange::Quota(_) => "quota",
            KeyChange::AllowIp(_) => "allow-ip",
            KeyChange::Expiry(_) => "expiry",
            KeyChange::Edit(_) => "set",
        }
    }

    /// Checks what can be checked before the store is asked (at `now`): an expiry in the past
    /// is refused, a description must be readable text.
    pub fn check(&self, now: OffsetDateTime) -> Result<(), String> {
        match self {
            KeyChange::Expiry(at) => KeyEdit {
                expires_at: Some(*at),
                ..KeyEdit::default()
            }
            .check(now),
            KeyChange::Edit(edit) => edit.check(now),
            _ => Ok(()),
        }
    }

    /// Applies the change to `record` (the key as the store's transaction sees it). Fails,
    /// leaving `record` as it was, when the result would not be a valid key (metadata over
    /// its size).
    pub fn apply(&self, record: &mut KeyRecord) -> Result<(), String> {
        match self {
            KeyChange::Active(active) => record.active = *active,
            KeyChange::Groups(groups) => record.groups = groups.as_slice().to_vec(),
            KeyChange::EditGroups(edit) => record.groups = edit.apply(&record.groups).into_vec(),
            KeyChange::Scopes(scopes) => record.scopes = scopes.as_slice().to_vec(),
            KeyChange::EditScopes(edit) => record.scopes = edit.apply(&record.scopes).into_vec(),
            KeyChange::RateLimit(limit) => record.rate_limit = *limit,
            KeyChange::Quota(quota) => record.quota = *quota,
            KeyChange::AllowIp(allow) => record.allow_ip = allow.clone(),
            KeyChange::Expiry(at) => record.expires_at = *at,
            KeyChange::Edit(edit) => {
                let meta = edit.meta.apply(&record.meta)?;
                record.meta = meta;
                if let Some(user) = &edit.user {
                    record.user = user.trim().to_owned();
                }
                if let Some(at) = edit.expires_at {
                    record.expires_at = at;
                }
                if let Some(text) = &edit.description {
                    record.description = text.clone().filter(|t| !t.is_empty());
                }
                if let Some(groups) = &edit.groups {
                    record.groups = groups.as_slice().to_vec();
                }
                if let Some(scopes) = &edit.scopes {
                    record.scopes = scopes.as_slice().to_vec();
                }
                if let Some(limit) = edit.rate_limit {
                    record.rate_limit = limit;
                }
                if let Some(quota) = edit.quota {
                    record.quota = quota;
                }
                if let Some(allow) = &edit.allow_ip {
                    record.allow_ip = allow.clone();
                }
            }
        }
        Ok(())
    }
}
