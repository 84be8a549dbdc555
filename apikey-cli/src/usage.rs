//! `apikey usage`: a key's requests per day, and its quota used and remaining.

use apikey_core::key::slugify;
use apikey_core::limits::quota_used;
use apikey_core::{ApiKeyConfig, Quota, SharedStore, UsageDay};
use serde::Serialize;
use time::OffsetDateTime;

use crate::failure::Failure;

/// The quota of a key in the current period.
#[derive(Debug, Serialize)]
pub(crate) struct QuotaReport {
    pub quota: Quota,
    pub used: u64,
    pub remaining: u64,
    /// When the quota is refilled (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub refills_at: OffsetDateTime,
}

/// What `apikey usage NAME` shows.
#[derive(Debug, Serialize)]
pub(crate) struct UsageReport {
    pub name: String,
    pub tech_name: String,
    /// The first day shown (days since the epoch).
    pub since_day: i64,
    /// Days with requests, oldest first.
    pub days: Vec<UsageDay>,
    pub total: UsageDay,
    pub quota: Option<QuotaReport>,
}

/// Gathers the report of key `name` (a stored key, or a config section's key) over the last
/// `days` days, today included.
pub(crate) async fn report(
    config: &ApiKeyConfig,
    store: &SharedStore,
    name: &str,
    days: u32,
) -> Result<UsageReport, Failure> {
    let stored = store.get(name).await?;
    let tech_name = match &stored {
        Some(r) => r.tech_name.clone(),
        None => {
            let tech = slugify(name);
            if !config.sections.iter().any(|s| s.tech_name == tech) {
                return Err(Failure(format!("no key named {name:?}"), 1));
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
                .map_err(|e| Failure(format!("cannot read the quota's use: {e}"), 2))?;
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
