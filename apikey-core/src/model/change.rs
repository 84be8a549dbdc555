//! One typed change of a stored key: what [`KeyStore::change`](crate::KeyStore::change) applies
//! atomically and records in the audit trail, whichever field it touches.

use time::OffsetDateTime;

use super::{AllowIp, GroupEdit, Groups, KeyRecord, Quota, RateLimit};

/// A change of one key. Every store applies it the same way ([`apply`](Self::apply)), in one
/// atomic operation under the key's lock, and audits it as [`action`](Self::action) with a
/// summary of the key as the change left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChange {
    /// Revoke (`false`) or re-activate (`true`).
    Active(bool),
    /// Replace the groups.
    Groups(Groups),
    /// Add and remove groups (two concurrent edits never lose each other's change).
    EditGroups(GroupEdit),
    /// Set or clear the rate limit (`None`: the default, `rate_limit`).
    RateLimit(Option<RateLimit>),
    /// Set or clear the quota (`None`: the default, `quota`).
    Quota(Option<Quota>),
    /// The networks it is accepted from (empty: from anywhere).
    AllowIp(AllowIp),
    /// When it expires (`None`: never).
    Expiry(Option<OffsetDateTime>),
}

impl KeyChange {
    /// The audit trail's name for the change.
    pub fn action(&self) -> &'static str {
        match self {
            KeyChange::Active(false) => "revoke",
            KeyChange::Active(true) => "activate",
            KeyChange::Groups(_) | KeyChange::EditGroups(_) => "groups",
            KeyChange::RateLimit(_) => "rate-limit",
            KeyChange::Quota(_) => "quota",
            KeyChange::AllowIp(_) => "allow-ip",
            KeyChange::Expiry(_) => "expiry",
        }
    }

    /// Applies the change to `record` (the key as the store's transaction sees it).
    pub fn apply(&self, record: &mut KeyRecord) {
        match self {
            KeyChange::Active(active) => record.active = *active,
            KeyChange::Groups(groups) => record.groups = groups.as_slice().to_vec(),
            KeyChange::EditGroups(edit) => record.groups = edit.apply(&record.groups).into_vec(),
            KeyChange::RateLimit(limit) => record.rate_limit = *limit,
            KeyChange::Quota(quota) => record.quota = *quota,
            KeyChange::AllowIp(allow) => record.allow_ip = allow.clone(),
            KeyChange::Expiry(at) => record.expires_at = *at,
        }
    }
}
