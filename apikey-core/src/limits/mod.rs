//! Per-key limits and request counts: rate limits, quotas, and what each key did each day.
//!
//! Without `limits_url`, rate limits hold per instance (`local.rs`: a GCRA in memory) and quotas
//! are counted in the key store. With it, both hold across every instance sharing that Redis.
//! Shared limits are leased (`pool.rs`): the request path spends tokens an instance holds and
//! makes no round trip, except for limits under 100 per period, which ask Redis on every
//! request. When the shared backend fails, limits fall back to per instance until it answers
//! again (`backend.rs`); keys are verified all along.
//!
//! Request counts (accepted, 403, 429) are kept per key and day in memory on the request path
//! and added to the store in the background every 10 seconds.

use crate::model::AuthError;
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::Settings;
use crate::model::{Quota, RateLimit, UsageDay};
use crate::store::{SharedLookup, SharedStore, StoreResult};
use crate::task::Background;
use admit::{Held, Kind, Leased, Next};
use backend::{Backend, Health, StoreQuotas};
pub(crate) use state::KeyMeter;
pub(crate) use state::Outcome;
use state::Shards;

pub use budget::{Budget, Policy};
pub use error::LimitsError;

mod admit;
mod backend;
mod budget;
mod error;
mod housekeeping;
mod local;
mod pool;
#[cfg(feature = "redis")]
mod redis;
mod state;
#[cfg(test)]
mod tests;

/// How often request counts are written to the store.
const COUNTS_EVERY: Duration = Duration::from_secs(10);
/// How often idle leases are given back.
const SWEEP_EVERY: Duration = Duration::from_millis(500);

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

pub(super) struct Inner {
    default_rate: Option<RateLimit>,
    default_quota: Option<Quota>,
    keys: Shards,
    epoch: Instant,
    /// Where rate limits are shared (Redis), if anywhere.
    rates: Option<Arc<dyn Backend>>,
    /// Where quotas are counted: Redis, else the store.
    quotas: Arc<dyn Backend>,
    store: SharedLookup,
    /// Counts of days that ended, waiting to be written.
    done: Mutex<Vec<(String, UsageDay)>>,
    /// Where the counts of keys without limits are kept (the verifier's cache entries).
    elsewhere: OnceLock<Arc<dyn CountSource>>,
    /// Whether any key has limits of its own.
    any: AtomicBool,
}

/// Where [`Limits::admit_now`] stopped: what the request holds of its limits, and the lease it
/// decided on (a step that asks for a lease has noted it in the pool already, so it is made as
/// decided, not decided again).
#[derive(Debug)]
pub(crate) struct Pending {
    held: [Held; 2],
    lease: Option<(Kind, u64, bool)>,
}

/// Request counts kept outside the limits: a key without limits (and without a default that
/// applies) has no state here, its requests are counted where the request path finds it
/// anyway (its cache entries), and taken from there when the counts are written.
pub(crate) trait CountSource: Send + Sync {
    /// How many parts the counts are taken in (so that a write holds a part's rows at a time,
    /// however many keys counted).
    fn parts(&self) -> usize;

    /// Moves the counts of part `part` out, by tech name and day (accepted requests only: the
    /// 403s of such keys are noted here, by name).
    fn take_counts(&self, part: usize, out: &mut Vec<(String, UsageDay)>);
}

/// The limits and counts of one verifier.
pub(crate) struct Limits {
    inner: Arc<Inner>,
    _tasks: Background,
}

impl Limits {
    /// Starts the limits the settings ask for (connecting to Redis when `limits_url` is set;
    /// an unreachable Redis is not an error: limits start per instance).
    pub(crate) async fn start(
        settings: &Settings,
        store: SharedLookup,
    ) -> Result<Self, LimitsError> {
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
            keys: Shards::new(),
            epoch: Instant::now(),
            rates: redis,
            quotas,
            store,
            done: Mutex::default(),
            elsewhere: OnceLock::new(),
            any: AtomicBool::new(false),
        });
        let tasks = Background(tokio::spawn(housekeeping::housekeeping(Arc::downgrade(
            &inner,
        ))));
        Ok(Limits {
            inner,
            _tasks: tasks,
        })
    }

    /// Records a key's own limits (as just read from the store or config); returns the key's
    /// state, for its cache entries. `None`: nothing limits the key, its requests are only
    /// counted, which needs no state here (a million such keys would each hold an entry and a
    /// copy of their tech name): its cache entries count them ([`count_from`](Self::count_from)),
    /// or the map when the key is not cached.
    pub(crate) fn configure(
        &self,
        tech: &str,
        rate: Option<RateLimit>,
        quota: Option<Quota>,
    ) -> Option<KeyMeter> {
        if rate.is_some() || quota.is_some() {
            self.inner.any.store(true, Ordering::Relaxed);
        }
        let unlimited = rate.is_none()
            && quota.is_none()
            && self.inner.default_rate.is_none()
            && self.inner.default_quota.is_none();
        let meter = if unlimited {
            // A state from earlier limits (a request not cached meanwhile made one) loses
            // them: the map counts the key's uncached requests, and must not limit them.
            self.inner.keys.existing(tech)?
        } else {
            self.inner.keys.meter(tech)
        };
        let mut st = meter.lock();
        if st.rate() != rate || st.quota() != quota {
            let st = st.lim();
            st.rate = rate;
            st.quota = quota;
            // Tokens leased for the old limits stay in their bucket.
            st.pools = None;
        }
        drop(st);
        (!unlimited).then_some(meter)
    }

    /// Takes the counts `source` keeps (of keys without limits) whenever counts are written.
    /// Set once.
    pub(crate) fn count_from(&self, source: Arc<dyn CountSource>) {
        let _ = self.inner.elsewhere.set(source);
    }

    /// Counts one request of a valid key, at `unix` (seconds), against its limits; `Err` is a
    /// 429. `meter` is the key's state as [`configure`](Self::configure) returned it, when the
    /// caller kept it. (The verifier goes through [`admit_now`](Self::admit_now) and
    /// [`admit_from`](Self::admit_from).)
    #[cfg(test)]
    pub(crate) async fn admit(
        &self,
        meter: Option<&KeyMeter>,
        tech: &str,
        unix: i64,
    ) -> Result<Budget, AuthError> {
        let pending = Pending {
            held: [Held::No; 2],
            lease: None,
        };
        self.admit_from(meter, tech, unix, pending).await
    }

    /// [`admit`](Self::admit) for a request [`admit_now`](Self::admit_now) left waiting, with
    /// what it holds already.
    pub(crate) async fn admit_from(
        &self,
        meter: Option<&KeyMeter>,
        tech: &str,
        unix: i64,
        pending: Pending,
    ) -> Result<Budget, AuthError> {
        let meter = &*self.meter_of(meter, tech);
        let Pending {
            mut held,
            lease: mut due,
        } = pending;
        // Each round either answers, or gets the request a token, or finds the backend down
        // (the next round limits locally): a few rounds always suffice.
        for _ in 0..6 {
            let (kind, want, main) = match due.take() {
                Some(lease) => lease,
                None => {
                    let step = self.inner.step(meter, tech, unix, &mut held);
                    self.refill(meter, tech, step.refill);
                    match step.next {
                        Next::Done(result) => return result,
                        Next::Lease(kind, want, main) => (kind, want, main),
                    }
                }
            };
            match self
                .inner
                .lease(meter, tech, (kind, want, main), unix)
                .await
            {
                Leased::Got => held[kind as usize] = Held::Pool,
                Leased::Empty(wait) => {
                    return Err(self.inner.refuse(meter, tech, &mut held, kind, wait))
                }
                Leased::Nothing => {}
            }
        }
        let wait = Duration::from_secs(1);
        Err(self.inner.refuse(meter, tech, &mut held, Kind::Rate, wait))
    }

    /// [`admit`](Self::admit) as far as it goes without a wait, which is all the way unless
    /// the key's pool of leased tokens is empty (limits shared through a backend, or a quota
    /// kept in the store): a key without limits is counted, a key with per-instance limits
    /// decided under its lock. `Err`: a lease is due; [`admit_from`](Self::admit_from) goes on
    /// with what the request holds so far.
    pub(crate) fn admit_now(
        &self,
        meter: Option<&KeyMeter>,
        tech: &str,
        unix: i64,
    ) -> Result<Result<Budget, AuthError>, Pending> {
        let meter = &*self.meter_of(meter, tech);
        let mut held = [Held::No; 2];
        let step = self.inner.step(meter, tech, unix, &mut held);
        self.refill(meter, tech, step.refill);
        match step.next {
            Next::Done(result) => Ok(result),
            Next::Lease(kind, want, main) => Err(Pending {
                held,
                lease: Some((kind, want, main)),
            }),
        }
    }

    /// The key's state as its cache entry holds it, else the map's.
    fn meter_of<'a>(&self, meter: Option<&'a KeyMeter>, tech: &str) -> Cow<'a, KeyMeter> {
        meter.map_or_else(|| Cow::Owned(self.inner.keys.meter(tech)), Cow::Borrowed)
    }

    /// Refills, in the background, the pools a step found running low (outside a runtime,
    /// the next lease does it instead).
    fn refill(&self, meter: &KeyMeter, tech: &str, refill: [bool; 2]) {
        for (kind, go) in [(Kind::Rate, refill[0]), (Kind::Quota, refill[1])] {
            if !go {
                continue;
            }
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return;
            };
            let (inner, meter) = (Arc::clone(&self.inner), meter.clone());
            let tech = tech.to_owned();
            runtime.spawn(async move { inner.refill(&meter, &tech, kind).await });
        }
    }

    /// Counts a request refused with 403: by its route after verification let it in
    /// ([`Outcome::Forbidden`]), or for its address before ([`Outcome::Barred`]).
    pub(crate) fn note(&self, tech: &str, outcome: Outcome) {
        let day = unix_now().div_euclid(86_400);
        let meter = self.inner.keys.meter(tech);
        meter.lock().count(outcome, day, &self.inner.done, tech);
    }

    /// Writes the request counts now.
    pub(crate) async fn flush(&self) -> StoreResult<()> {
        self.inner.write_counts().await
    }

    /// Gives back every leased token not spent (at shutdown), waiting up to half a second
    /// for leases still under way.
    pub(crate) async fn give_back(&self) {
        for _ in 0..50 {
            self.inner.sweep(Duration::ZERO).await;
            if self.inner.quiet() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Where limits are kept and how that goes.
    /// Tells, whenever asked, whether shared limits fall back to per instance right now.
    #[cfg(feature = "metrics")]
    pub(crate) fn fallback_probe(&self) -> impl Fn() -> bool + Send + Sync + 'static {
        let inner = Arc::clone(&self.inner);
        move || inner.quotas.health().is_down()
    }

    pub(crate) fn stats(&self) -> LimitsStats {
        let inner = &self.inner;
        let health = inner.quotas.health();
        let down = health.is_down();
        LimitsStats {
            rate_limits: match &inner.rates {
                Some(r) if !r.health().is_down() => "redis",
                _ => "instance",
            },
            quotas: if down {
                "instance"
            } else {
                inner.quotas.name()
            },
            fallback: down,
            outages: health.outages(),
            round_trips: health.round_trips.load(Ordering::Relaxed),
        }
    }
}

#[cfg(feature = "redis")]
async fn shared(settings: &Settings) -> Result<Option<Arc<dyn Backend>>, LimitsError> {
    match &settings.limits_url {
        Some(url) => {
            let target = redis::Target::new(url, settings.limits_ca.as_deref())?;
            let redis: Arc<dyn Backend> =
                redis::RedisLimits::start(target, &settings.limits_prefix).await?;
            Ok(Some(redis))
        }
        None => Ok(None),
    }
}

#[cfg(not(feature = "redis"))]
async fn shared(settings: &Settings) -> Result<Option<Arc<dyn Backend>>, LimitsError> {
    match settings.limits_url {
        Some(_) => Err(LimitsError::Config(
            "`limits_url` needs apikey-core's `redis` feature".into(),
        )),
        None => Ok(None),
    }
}

impl Inner {
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The rate limit that applies to a key: its own (the key's, or its config section's, as
    /// [`Limits::configure`] recorded it), else the default. The one place it is worked out.
    fn rate_of(&self, st: &state::KeyState) -> Option<RateLimit> {
        st.rate().or(self.default_rate)
    }

    /// The quota that applies to a key: its own, else the default.
    fn quota_of(&self, st: &state::KeyState) -> Option<Quota> {
        st.quota().or(self.default_quota)
    }

    /// Whether any limit applies at all (else requests are only counted).
    fn limited(&self) -> bool {
        self.any.load(Ordering::Relaxed)
            || self.default_rate.is_some()
            || self.default_quota.is_some()
    }
}

pub(super) fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// How many uses of `tech_name`'s quota the current window has taken, wherever the settings
/// count them (Redis with `limits_url`, else the store): what `apikey usage` shows.
pub async fn quota_used(
    settings: &Settings,
    store: &SharedStore,
    tech_name: &str,
    quota: Quota,
) -> Result<u64, LimitsError> {
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
            let target = redis::Target::new(url, settings.limits_ca.as_deref())?;
            redis::quota_used(&target, &key).await
        }
        #[cfg(not(feature = "redis"))]
        Some(_) => Err(LimitsError::Config(
            "`limits_url` needs apikey-core's `redis` feature".into(),
        )),
        None => Ok(store.quota_used(tech_name, window).await?),
    }
}
