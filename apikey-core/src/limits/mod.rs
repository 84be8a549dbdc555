//! Per-key limits and request counts: rate limits, quotas, and what each key did each day.
//!
//! Without `limits_url`, rate limits hold per instance ([`local`]: a GCRA in memory) and quotas
//! are counted in the key store. With it, both hold across every instance sharing that Redis.
//! Shared limits are leased ([`pool`]): the request path spends tokens an instance holds and
//! makes no round trip, except for limits under 100 per period, which ask Redis on every
//! request. When the shared backend fails, limits fall back to per instance until it answers
//! again ([`backend`]); keys are verified all along.
//!
//! Request counts (accepted, 403, 429) are kept per key and day in memory on the request path
//! and added to the store in the background every 10 seconds.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::Settings;
use crate::model::{Quota, RateLimit, UsageCount, UsageDay};
use crate::store::{SharedLookup, SharedStore, StoreResult};
use crate::task::Background;
use crate::verify::AuthError;
use backend::{call, failed, Backend, Bucket, Health, StoreQuotas};
use local::{gcra, LocalQuota};
use pool::{lease_cap, Pool, Take, IDLE};

mod backend;
mod local;
mod pool;
#[cfg(feature = "redis")]
mod redis;

/// How often request counts are written to the store.
const COUNTS_EVERY: Duration = Duration::from_secs(10);
/// How often idle leases are given back.
const SWEEP_EVERY: Duration = Duration::from_millis(500);

/// What happened to a request, for the counts per day.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outcome {
    Accepted = 0,
    Forbidden = 1,
    Limited = 2,
}

/// Where limits are kept and how that goes, for `/stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimitsStats {
    /// Where rate limits hold: `redis` (across instances) or `instance`.
    pub rate_limits: &'static str,
    /// Where quotas are counted: `redis`, `store` (both across instances) or `instance`.
    pub quotas: &'static str,
    /// True while the shared backend is unreachable and limits fall back to per instance.
    pub fallback: bool,
    /// Outages of the shared backend seen since start.
    pub outages: u64,
    /// Calls made to the shared backend (leases, refills, give-backs).
    pub round_trips: u64,
}

#[derive(Default)]
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
        self.0 = h;
    }
}

fn fnv(text: &str) -> u64 {
    use std::hash::Hasher;
    let mut h = Fnv::default();
    h.write(text.as_bytes());
    h.finish()
}

const SHARDS: usize = 16;

/// The leased tokens of a key, for keys whose limits are shared.
#[derive(Debug, Default)]
struct Pools {
    rate: Pool,
    quota: Pool,
}

/// What one instance knows of one key.
#[derive(Debug, Default)]
struct KeyState {
    /// The key's own limits; `None`: the defaults.
    rate: Option<RateLimit>,
    quota: Option<Quota>,
    /// Local GCRA state (ns since the limits' epoch).
    tat: u64,
    local_quota: LocalQuota,
    pools: Option<Box<Pools>>,
    /// The day being counted, and its counts.
    day: i64,
    counts: [u64; 3],
}

impl KeyState {
    fn pools(&mut self) -> &mut Pools {
        self.pools.get_or_insert_with(Box::default)
    }

    /// Counts an outcome on `day`; a new day sets the previous one aside in `done`.
    fn count(
        &mut self,
        outcome: Outcome,
        day: i64,
        done: &Mutex<Vec<(String, UsageDay)>>,
        tech: &str,
    ) {
        if self.day != day {
            if let Some(previous) = self.take_counts() {
                lock(done).push((tech.to_owned(), previous));
            }
            self.day = day;
        }
        // A 403 comes after the key was admitted (and counted accepted) by verification.
        if let Outcome::Forbidden = outcome {
            self.counts[0] = self.counts[0].saturating_sub(1);
        }
        self.counts[outcome as usize] += 1;
    }

    fn take_counts(&mut self) -> Option<UsageDay> {
        if self.counts == [0; 3] {
            return None;
        }
        let [accepted, forbidden, limited] = std::mem::take(&mut self.counts);
        Some(UsageDay {
            day: self.day,
            accepted,
            forbidden,
            limited,
        })
    }
}

/// Which limit a lease is for.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Rate,
    Quota,
}

/// The request path's answer before any await.
enum Step {
    Done(Result<(), AuthError>, [bool; 2]),
    Lease(Kind, u64),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn secs(wait: Duration) -> u32 {
    let s = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    u32::try_from(s.max(1)).unwrap_or(u32::MAX)
}

fn rate_limited(wait: Duration) -> AuthError {
    AuthError::RateLimited {
        retry_after_secs: secs(wait),
    }
}

struct Inner {
    default_rate: Option<RateLimit>,
    default_quota: Option<Quota>,
    shards: Vec<Mutex<HashMap<String, KeyState, BuildHasherDefault<Fnv>>>>,
    epoch: Instant,
    /// Where rate limits are shared (Redis), if anywhere.
    rates: Option<Arc<dyn Backend>>,
    /// Where quotas are counted: Redis, else the store.
    quotas: Arc<dyn Backend>,
    store: SharedLookup,
    /// Counts of days that ended, waiting to be written.
    done: Mutex<Vec<(String, UsageDay)>>,
    /// Whether any key has limits of its own.
    any: AtomicBool,
}

/// The limits and counts of one verifier.
pub(crate) struct Limits {
    inner: Arc<Inner>,
    _tasks: Background,
}

impl Limits {
    /// Starts the limits the settings ask for (connecting to Redis when `limits_url` is set;
    /// an unreachable Redis is not an error: limits start per instance).
    pub(crate) async fn start(settings: &Settings, store: SharedLookup) -> Result<Self, String> {
        let redis = shared(settings).await?;
        let quotas = redis.clone().unwrap_or_else(|| {
            Arc::new(StoreQuotas {
                store: store.clone(),
                health: Health::default(),
            })
        });
        let inner = Arc::new(Inner {
            default_rate: settings.rate_limit,
            default_quota: settings.quota,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            epoch: Instant::now(),
            rates: redis,
            quotas,
            store,
            done: Mutex::default(),
            any: AtomicBool::new(false),
        });
        let tasks = Background(tokio::spawn(housekeeping(Arc::downgrade(&inner))));
        Ok(Limits {
            inner,
            _tasks: tasks,
        })
    }

    /// Records a key's own limits (as just read from the store or config).
    pub(crate) fn configure(&self, tech: &str, rate: Option<RateLimit>, quota: Option<Quota>) {
        let inner = &self.inner;
        if rate.is_some() || quota.is_some() {
            inner.any.store(true, Ordering::Relaxed);
        }
        let mut shard = inner.shard(tech);
        let state = shard.entry(tech.to_owned()).or_default();
        if state.rate != rate || state.quota != quota {
            state.rate = rate;
            state.quota = quota;
            // Tokens leased for the old limits stay in their bucket.
            state.pools = None;
        }
    }

    /// Counts one request of a valid key against its limits; `Err` is a 429.
    pub(crate) async fn admit(&self, tech: &str) -> Result<(), AuthError> {
        for _ in 0..4 {
            match self.inner.step(tech) {
                Step::Done(result, refill) => {
                    for (kind, go) in [(Kind::Rate, refill[0]), (Kind::Quota, refill[1])] {
                        if go {
                            let inner = Arc::clone(&self.inner);
                            let tech = tech.to_owned();
                            tokio::spawn(async move { inner.lease(&tech, kind, None).await });
                        }
                    }
                    return result;
                }
                Step::Lease(kind, want) => self.inner.lease(tech, kind, Some(want)).await,
            }
        }
        // Each lease went to concurrent requests: refuse this one for a moment.
        self.inner.note(tech, Outcome::Limited);
        Err(rate_limited(Duration::from_secs(1)))
    }

    /// Counts a request refused with 403.
    pub(crate) fn note(&self, tech: &str, outcome: Outcome) {
        self.inner.note(tech, outcome);
    }

    /// Writes the request counts now.
    pub(crate) async fn flush(&self) -> StoreResult<()> {
        self.inner.write_counts().await
    }

    /// Where limits are kept and how that goes.
    pub(crate) fn stats(&self) -> LimitsStats {
        let inner = &self.inner;
        let quotas = &inner.quotas;
        let down = quotas.health().is_down();
        LimitsStats {
            rate_limits: match &inner.rates {
                Some(r) if !r.health().is_down() => "redis",
                _ => "instance",
            },
            quotas: if down { "instance" } else { quotas.name() },
            fallback: down,
            outages: quotas.health().outages(),
            round_trips: quotas.health().round_trips.load(Ordering::Relaxed),
        }
    }
}

#[cfg(feature = "redis")]
async fn shared(settings: &Settings) -> Result<Option<Arc<dyn Backend>>, String> {
    match &settings.limits_url {
        Some(url) => {
            let redis: Arc<dyn Backend> =
                redis::RedisLimits::start(url, &settings.limits_prefix).await;
            Ok(Some(redis))
        }
        None => Ok(None),
    }
}

#[cfg(not(feature = "redis"))]
async fn shared(settings: &Settings) -> Result<Option<Arc<dyn Backend>>, String> {
    match settings.limits_url {
        Some(_) => Err("`limits_url` needs apikey-core's `redis` feature".into()),
        None => Ok(None),
    }
}

impl Inner {
    fn shard(
        &self,
        tech: &str,
    ) -> MutexGuard<'_, HashMap<String, KeyState, BuildHasherDefault<Fnv>>> {
        lock(&self.shards[(fnv(tech) % SHARDS as u64) as usize])
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn state<'a>(
        shard: &'a mut HashMap<String, KeyState, BuildHasherDefault<Fnv>>,
        tech: &str,
    ) -> &'a mut KeyState {
        if !shard.contains_key(tech) {
            shard.insert(tech.to_owned(), KeyState::default());
        }
        shard.get_mut(tech).expect("just inserted")
    }

    fn note(&self, tech: &str, outcome: Outcome) {
        let day = unix_now().div_euclid(86_400);
        let mut shard = self.shard(tech);
        Self::state(&mut shard, tech).count(outcome, day, &self.done, tech);
    }

    /// Everything the request path decides without waiting, under one lock.
    fn step(&self, tech: &str) -> Step {
        let now = self.now();
        let unix = unix_now();
        let day = unix.div_euclid(86_400);
        let limited = self.any.load(Ordering::Relaxed)
            || self.default_rate.is_some()
            || self.default_quota.is_some();
        let mut shard = self.shard(tech);
        let st = Self::state(&mut shard, tech);
        let mut refill = [false; 2];
        if !limited {
            st.count(Outcome::Accepted, day, &self.done, tech);
            return Step::Done(Ok(()), refill);
        }
        let rate = st.rate.or(self.default_rate);
        let quota = st.quota.or(self.default_quota);
        // The rate limit first; what it took is given back if the quota refuses.
        let mut undo: Option<Option<u64>> = None;
        if let Some(limit) = rate {
            let shared = self.rates.as_ref().is_some_and(|r| !r.health().is_down());
            if shared {
                let cap = lease_cap(u64::from(limit.count));
                let pool = &mut st.pools().rate;
                match pool.take(now, cap) {
                    Take::Took { refill: r } => {
                        refill[0] = r;
                        undo = Some(None);
                    }
                    Take::Empty(wait) => {
                        st.count(Outcome::Limited, day, &self.done, tech);
                        return Step::Done(Err(rate_limited(Duration::from_nanos(wait))), refill);
                    }
                    Take::Lease => return Step::Lease(Kind::Rate, pool.want(now, cap)),
                }
            } else {
                match gcra(&mut st.tat, limit, now) {
                    Ok(previous) => undo = Some(Some(previous)),
                    Err(wait) => {
                        st.count(Outcome::Limited, day, &self.done, tech);
                        return Step::Done(Err(rate_limited(wait)), refill);
                    }
                }
            }
        }
        if let Some(q) = quota {
            let window = q.window(unix);
            let refused = if self.quotas.health().is_down() {
                !st.local_quota.take(q, window.index)
            } else {
                let cap = lease_cap(q.count);
                let pool = &mut st.pools().quota;
                pool.roll(window.index);
                match pool.take(now, cap) {
                    Take::Took { refill: r } => {
                        refill[1] = r;
                        false
                    }
                    Take::Empty(_) => true,
                    Take::Lease => {
                        let want = pool.want(now, cap);
                        st.undo(undo);
                        if refill[0] {
                            st.pools().rate.refilling = false;
                        }
                        return Step::Lease(Kind::Quota, want);
                    }
                }
            };
            if refused {
                st.undo(undo);
                st.count(Outcome::Limited, day, &self.done, tech);
                let wait = window.ends_at.saturating_sub(unix);
                return Step::Done(
                    Err(AuthError::QuotaExhausted {
                        retry_after_secs: u32::try_from(wait.max(1)).unwrap_or(u32::MAX),
                    }),
                    [refill[0], false],
                );
            }
        }
        st.count(Outcome::Accepted, day, &self.done, tech);
        Step::Done(Ok(()), refill)
    }

    /// The shared bucket of a key's limit of `kind`, as configured now.
    fn bucket<'a>(&self, st: &KeyState, tech: &'a str, kind: Kind) -> Option<Bucket<'a>> {
        match kind {
            Kind::Rate => st
                .rate
                .or(self.default_rate)
                .map(|limit| Bucket::Rate { tech, limit }),
            Kind::Quota => st.quota.or(self.default_quota).map(|quota| {
                let w = quota.window(unix_now());
                Bucket::Quota {
                    tech,
                    quota,
                    window: w.index,
                    ends_at: w.ends_at,
                }
            }),
        }
    }

    /// Asks the shared bucket for `want` tokens and adds them to the key's pool; `None` for a
    /// background refill (its size is worked out, and the refill flag cleared, here).
    async fn lease(&self, tech: &str, kind: Kind, want: Option<u64>) {
        let refill = want.is_none();
        let backend = match kind {
            Kind::Rate => match &self.rates {
                Some(r) => Arc::clone(r),
                None => return,
            },
            Kind::Quota => Arc::clone(&self.quotas),
        };
        let (bucket, want) = {
            let now = self.now();
            let mut shard = self.shard(tech);
            let st = Self::state(&mut shard, tech);
            let Some(bucket) = self.bucket(st, tech, kind) else {
                return;
            };
            let cap = match bucket {
                Bucket::Rate { limit, .. } => lease_cap(u64::from(limit.count)),
                Bucket::Quota { quota, .. } => lease_cap(quota.count),
            };
            let pool = st.pools().pick(kind);
            if let Bucket::Quota { window, .. } = bucket {
                pool.roll(window);
            }
            let want = want.unwrap_or_else(|| pool.want(now, cap));
            (bucket, want)
        };
        let outcome = call(&*backend, backend.take(bucket, want)).await;
        let now = self.now();
        let mut shard = self.shard(tech);
        let st = Self::state(&mut shard, tech);
        let pool = st.pools().pick(kind);
        if refill {
            pool.refilling = false;
        }
        match outcome {
            Ok(grant) => {
                let stale = matches!(bucket, Bucket::Quota { window, .. } if window != pool.window);
                if !stale {
                    let wait = u64::try_from(grant.wait.as_nanos()).unwrap_or(u64::MAX);
                    pool.granted(grant.granted, wait, now);
                }
            }
            Err(e) => {
                drop(shard);
                failed(&backend, &e);
            }
        }
    }

    /// Gives back what idle pools hold.
    async fn sweep(&self) {
        let now = self.now();
        let mut back = Vec::new();
        for shard in &self.shards {
            let mut shard = lock(shard);
            for (tech, st) in shard.iter_mut() {
                let Some(pools) = st.pools.as_mut() else {
                    continue;
                };
                for (kind, pool) in [
                    (Kind::Rate, &mut pools.rate),
                    (Kind::Quota, &mut pools.quota),
                ] {
                    let n = pool.drain_idle(now, IDLE);
                    if n > 0 {
                        back.push((tech.clone(), kind, pool.window, n));
                    }
                }
            }
        }
        for (tech, kind, window, n) in back {
            let (backend, bucket) = {
                let mut shard = self.shard(&tech);
                let st = Self::state(&mut shard, &tech);
                let Some(bucket) = self.bucket(st, &tech, kind) else {
                    continue;
                };
                let backend = match kind {
                    Kind::Rate => self.rates.clone(),
                    Kind::Quota => Some(Arc::clone(&self.quotas)),
                };
                (backend, bucket)
            };
            let Some(backend) = backend else { continue };
            if matches!(bucket, Bucket::Quota { window: w, .. } if w != window) {
                continue;
            }
            if let Err(e) = call(&*backend, backend.give_back(bucket, n)).await {
                failed(&backend, &e);
            }
        }
    }

    /// Writes the request counts gathered so far; on failure they are kept for the next try.
    async fn write_counts(&self) -> StoreResult<()> {
        let mut counts: Vec<(String, UsageDay)> = std::mem::take(&mut *lock(&self.done));
        for shard in &self.shards {
            let mut shard = lock(shard);
            for (tech, st) in shard.iter_mut() {
                if let Some(day) = st.take_counts() {
                    counts.push((tech.clone(), day));
                }
            }
        }
        if counts.is_empty() {
            return Ok(());
        }
        let rows: Vec<UsageCount> = counts
            .iter()
            .map(|(tech, day)| UsageCount {
                tech_name: tech.clone(),
                counts: *day,
            })
            .collect();
        let result = self.store.add_usage(&rows).await;
        if result.is_err() {
            lock(&self.done).extend(counts);
        }
        result
    }
}

impl KeyState {
    /// Gives back the rate token a refused request took.
    fn undo(&mut self, undo: Option<Option<u64>>) {
        match undo {
            Some(Some(previous)) => self.tat = previous,
            Some(None) => self.pools().rate.untake(),
            None => {}
        }
    }
}

impl Pools {
    fn pick(&mut self, kind: Kind) -> &mut Pool {
        match kind {
            Kind::Rate => &mut self.rate,
            Kind::Quota => &mut self.quota,
        }
    }
}

/// Gives back idle leases twice a second and writes request counts every 10 seconds, for as
/// long as the limits live.
async fn housekeeping(inner: std::sync::Weak<Inner>) {
    let mut ticker = tokio::time::interval(SWEEP_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_write = Instant::now();
    loop {
        ticker.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        inner.sweep().await;
        if last_write.elapsed() >= COUNTS_EVERY {
            last_write = Instant::now();
            if let Err(e) = inner.write_counts().await {
                log::warn!("apikey: writing request counts failed (kept for the next try): {e}");
            }
        }
    }
}

/// How many uses of `tech_name`'s quota the current window has taken, wherever the settings
/// count them (Redis with `limits_url`, else the store): what `apikey usage` shows.
pub async fn quota_used(
    settings: &Settings,
    store: &SharedStore,
    tech_name: &str,
    quota: Quota,
) -> Result<u64, String> {
    let window = quota.window(unix_now()).index;
    match &settings.limits_url {
        #[cfg(feature = "redis")]
        Some(url) => {
            let key = redis::quota_key(
                &settings.limits_prefix,
                tech_name,
                quota.period_secs(),
                window,
            );
            redis::quota_used(url, &key).await
        }
        #[cfg(not(feature = "redis"))]
        Some(_) => Err("`limits_url` needs apikey-core's `redis` feature".into()),
        None => store
            .quota_used(tech_name, window)
            .await
            .map_err(|e| e.to_string()),
    }
}
