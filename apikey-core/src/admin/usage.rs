//! A key's requests per day, and its quota used and remaining: what `apikey usage` and the
//! management API's `GET /apikey/keys/{tech_name}/usage` answer.

use serde::Serialize;
use time::OffsetDateTime;

use crate::config::ApiKeyConfig;
use crate::key::slugify;
use crate::limits::quota_used;
use crate::model::{Quota, UsageDay};
use crate::store::{SharedStore, StoreError};

/// Why there is no usage report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    /// No stored key and no config section has this name.
    #[error("no key named {0:?}")]
    NotFound(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Where quotas are counted (the store or Redis) could not be read.
    #[error("cannot read the quota's use: {0}")]
    Quota(String),
}

/// The quota of a key in the current period.
#[derive(Debug, Clone, Serialize)]
pub struct QuotaReport {
    /// The quota (`10000/30d`).
    pub quota: Quota,
    /// Uses taken in the current period.
    pub used: u64,
    /// Uses left in the current period.
    pub remaining: u64,
    /// When the quota is refilled (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub refills_at: OffsetDateTime,
}

/// What `apikey usage NAME` shows.
#[derive(Debug, Clone, Serialize)]
pub struct UsageReport {
    /// The key's name.
    pub name: String,
    /// The key's tech name.
    pub tech_name: String,
    /// The first day shown (days since the epoch).
    pub since_day: i64,
    /// Days with requests, oldest first.
    pub days: Vec<UsageDay>,
    /// The days' sum.
    pub total: UsageDay,
    /// The quota in the current period, for a key with one.
    pub quota: Option<QuotaReport>,
}

/// Gathers the report of key `name` (a stored key, or a config section's key) over the last
/// `days` days, today included.
pub async fn report(
    config: &ApiKeyConfig,
    store: &SharedStore,
    name: &str,
    days: u32,
) -> Result<UsageReport, UsageError> {
    let stored = store.get(name).await?;
    let tech_name = match &stored {
        Some(r) => r.tech_name.clone(),
        None => {
            let tech = slugify(name);
            if !config.sections.iter().any(|s| s.tech_name == tech) {
                return Err(UsageError::NotFound(name.to_owned()));
            }
            tech
        }
    };
    let section = config.sections.iter().find(|s| s.tech_name == tech_name);
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let since_day = now.div_euclid(86_400) - i64::from(days) + 1;
    let rows = store.usage(&tech_name, since_day).await?;
    let mut total = UsageDay {
        day: since_day,
        accepted: 0,
        forbidden: 0,
        limited: 0,
    };
    for d in &rows {
        total.accepted += d.accepted;
        total.forbidden += d.forbidden;
        total.limited += d.limited;
    }
    let quota = section
        .and_then(|s| s.quota)
        .or(stored.as_ref().and_then(|r| r.quota))
        .or(config.settings.quota);
    let quota = match quota {
        Some(q) => {
            let used = quota_used(&config.settings, store, &tech_name, q)
                .await
                .map_err(|e| UsageError::Quota(e.to_string()))?;
            let refills_at = OffsetDateTime::from_unix_timestamp(q.window(now).ends_at)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH);
            Some(QuotaReport {
                quota: q,
                used: used.min(q.count),
                remaining: q.count.saturating_sub(used),
                refills_at,
            })
        }
        None => None,
    };
    Ok(UsageReport {
        name: stored.map_or_else(|| name.to_owned(), |r| r.name),
        tech_name,
        since_day,
        days: rows,
        total,
        quota,
    })
}
