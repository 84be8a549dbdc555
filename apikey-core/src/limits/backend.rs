//! Where shared limits live: Redis (rate limits and quotas) or, without it, the key store
//! (quotas only). Each backend grants leases atomically and tracks its own health: the first
//! failure of an outage is logged once, the limits fall back to per instance, and a prober
//! brings the backend back when it answers again.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::LimitsError;

use async_trait::async_trait;

use crate::model::{Quota, RateLimit};
use crate::store::SharedLookup;

/// How long one call to a backend may take before it counts as a failure.
pub(super) const CALL_TIMEOUT: Duration = Duration::from_millis(250);
/// How often an unreachable backend is tried again.
const PROBE_EVERY: Duration = Duration::from_millis(500);

/// A shared bucket: a key's rate limit, or its quota in one window.
#[derive(Debug, Clone, Copy)]
pub(super) enum Bucket<'a> {
    /// A token bucket of `limit.count` refilled over `limit.period`.
    Rate {
        /// The key's tech name (what a shared backend keys the bucket by).
        #[cfg_attr(not(feature = "redis"), allow(dead_code))]
        tech: &'a str,
        /// The limit.
        limit: RateLimit,
    },
    /// A quota's uses in one window.
    Quota {
        /// The key's tech name.
        tech: &'a str,
        /// The quota.
        quota: Quota,
        /// The window's index.
        window: i64,
        /// When the window ends (unix seconds).
        ends_at: i64,
    },
}

/// What a lease request got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Grant {
    /// Tokens granted (0 when the bucket is empty).
    pub granted: u64,
    /// When nothing was granted: how long until the bucket has a token again.
    pub wait: Duration,
    /// For a quota: the uses the shared count holds after this grant (all instances), where
    /// the backend tells; a fallback to per-instance counting starts from it.
    pub used: Option<u64>,
}

/// A place that holds shared limits.
#[async_trait]
pub(super) trait Backend: Send + Sync + 'static {
    /// What it is, for `/stats` and logs: `redis` or `store`.
    fn name(&self) -> &'static str;
    /// Takes up to `want` tokens from `bucket` in one atomic step.
    async fn take(&self, bucket: Bucket<'_>, want: u64) -> Result<Grant, LimitsError>;
    /// Gives back `n` tokens taken and not spent.
    async fn give_back(&self, bucket: Bucket<'_>, n: u64) -> Result<(), LimitsError>;
    /// Whether it answers (and, for Redis, connects when it was not connected).
    async fn ping(&self) -> Result<(), LimitsError>;
    /// Its health.
    fn health(&self) -> &Health;
}

/// Whether a backend is usable, and what it has done.
#[derive(Debug, Default)]
pub(super) struct Health {
    down: AtomicBool,
    outages: AtomicU64,
    pub(super) round_trips: AtomicU64,
}

impl Health {
    /// Whether the backend is unreachable (limits fall back to per instance).
    pub(super) fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Outages seen so far.
    pub(super) fn outages(&self) -> u64 {
        self.outages.load(Ordering::Relaxed)
    }

    /// Marks the backend down without a failure (not connected yet at start).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(super) fn start_down(&self) {
        self.down.store(true, Ordering::Relaxed);
    }
}

/// Runs one backend call with the time limit, counting it as a round trip.
pub(super) async fn call<T>(
    backend: &dyn Backend,
    op: impl std::future::Future<Output = Result<T, LimitsError>>,
) -> Result<T, LimitsError> {
    backend.health().round_trips.fetch_add(1, Ordering::Relaxed);
    match tokio::time::timeout(CALL_TIMEOUT, op).await {
        Ok(result) => result,
        Err(_) => Err(LimitsError::Timeout(CALL_TIMEOUT)),
    }
}

/// Records a failure: the first of an outage is logged and starts the prober that brings the
/// backend back.
pub(super) fn failed(backend: &Arc<dyn Backend>, error: &LimitsError) {
    let health = backend.health();
    if health.down.swap(true, Ordering::Relaxed) {
        return;
    }
    health.outages.fetch_add(1, Ordering::Relaxed);
    crate::obs::warning!(
        "apikey: shared limits ({}) unreachable: {error}; limiting per instance until it answers \
         again (keys are still verified)",
        backend.name()
    );
    probe(Arc::clone(backend));
}

/// Tries the backend every [`PROBE_EVERY`] until it answers, then puts it back in use.
pub(super) fn probe(backend: Arc<dyn Backend>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(PROBE_EVERY).await;
            // The limits that used it are gone (the verifier was dropped): stop.
            if Arc::strong_count(&backend) == 1 {
                return;
            }
            if call(&*backend, backend.ping()).await.is_ok() {
                backend.health().down.store(false, Ordering::Relaxed);
                crate::obs::warning!(
                    "apikey: shared limits ({}) reachable again; limits hold across instances",
                    backend.name()
                );
                return;
            }
        }
    });
}

/// Quotas counted in the key store (no Redis configured).
pub(super) struct StoreQuotas {
    pub(super) store: SharedLookup,
    pub(super) health: Health,
}

#[async_trait]
impl Backend for StoreQuotas {
    fn name(&self) -> &'static str {
        "store"
    }

    async fn take(&self, bucket: Bucket<'_>, want: u64) -> Result<Grant, LimitsError> {
        let Bucket::Quota {
            tech,
            quota,
            window,
            ends_at,
        } = bucket
        else {
            return Err(LimitsError::Config(
                "the key store holds no rate limits".into(),
            ));
        };
        let (granted, used) = self
            .store
            .take_quota_counted(tech, window, quota.count, want)
            .await?;
        Ok(Grant {
            granted,
            wait: until(ends_at),
            used,
        })
    }

    async fn give_back(&self, bucket: Bucket<'_>, n: u64) -> Result<(), LimitsError> {
        if let Bucket::Quota { tech, window, .. } = bucket {
            self.store.return_quota(tech, window, n).await?;
        }
        Ok(())
    }

    async fn ping(&self) -> Result<(), LimitsError> {
        self.store.user_active("").await?;
        Ok(())
    }

    fn health(&self) -> &Health {
        &self.health
    }
}

/// The time from now until `unix_secs` (at least a second).
pub(super) fn until(unix_secs: i64) -> Duration {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    Duration::from_secs(
        u64::try_from(unix_secs.saturating_sub(now))
            .unwrap_or(0)
            .max(1),
    )
}
