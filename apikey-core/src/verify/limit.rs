//! Enforcing per-key rate limits ([`RateLimit`]): a GCRA (one timestamp per key) in memory, per instance: no store query, no
//! coordination between instances (N instances allow up to N times the limit in total).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::model::RateLimit;

struct KeyState {
    /// The key's own limit; `None` uses the default.
    limit: Option<RateLimit>,
    /// GCRA's theoretical arrival time, in ns since the limiter's epoch.
    tat: u64,
}

const SHARDS: usize = 16;

/// The limiter of one verifier.
pub(crate) struct Limiter {
    default: Option<RateLimit>,
    /// Whether any key has a limit of its own (else, without a default, checks are skipped).
    any: AtomicBool,
    shards: Vec<Mutex<HashMap<String, KeyState>>>,
    epoch: Instant,
}

fn shard_of(key: &str) -> usize {
    // FNV-1a: cheap and good enough to spread tech names over a few shards.
    let h = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (h % SHARDS as u64) as usize
}

impl Limiter {
    pub fn new(default: Option<RateLimit>) -> Self {
        Limiter {
            default,
            any: AtomicBool::new(false),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            epoch: Instant::now(),
        }
    }

    /// Records the limit of a key (as just read from the store or config).
    pub fn configure(&self, key: &str, limit: Option<RateLimit>) {
        if limit.is_none() && !self.any.load(Ordering::Relaxed) {
            return;
        }
        if limit.is_some() {
            self.any.store(true, Ordering::Relaxed);
        }
        let mut shard = self.shards[shard_of(key)]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match shard.get_mut(key) {
            Some(state) => state.limit = limit,
            None => {
                shard.insert(key.to_owned(), KeyState { limit, tat: 0 });
            }
        }
    }

    /// Counts one request of `key`; `Err(wait)` when over its limit.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        if self.default.is_none() && !self.any.load(Ordering::Relaxed) {
            return Ok(());
        }
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let mut shard = self.shards[shard_of(key)]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let state = match shard.get_mut(key) {
            Some(s) => s,
            None => shard.entry(key.to_owned()).or_insert(KeyState {
                limit: None,
                tat: 0,
            }),
        };
        let Some(limit) = state.limit.or(self.default) else {
            return Ok(());
        };
        // Saturating throughout: a limit built by hand with an absurd period must refuse
        // requests, never overflow.
        let period = u64::try_from(limit.period.as_nanos()).unwrap_or(u64::MAX);
        let interval = (period / u64::from(limit.count.max(1))).max(1);
        let tolerance = period.saturating_sub(interval);
        let tat = state.tat.max(now);
        let ahead = tat.saturating_sub(now);
        if ahead > tolerance {
            return Err(Duration::from_nanos(ahead - tolerance));
        }
        state.tat = tat.saturating_add(interval);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_up_to_the_count_then_waits() {
        let l = Limiter::new(None);
        l.configure("k", Some("3/1h".parse().unwrap()));
        assert!(l.check("k").is_ok());
        assert!(l.check("k").is_ok());
        assert!(l.check("k").is_ok());
        let wait = l.check("k").unwrap_err();
        assert!(
            wait > Duration::from_secs(1100) && wait <= Duration::from_secs(1200),
            "{wait:?}"
        );
        assert!(l.check("other").is_ok(), "keys are limited apart");
    }

    #[test]
    fn refills_over_the_period() {
        let l = Limiter::new(Some("2/100ms".parse().unwrap()));
        assert!(l.check("k").is_ok());
        assert!(l.check("k").is_ok());
        assert!(l.check("k").is_err());
        std::thread::sleep(Duration::from_millis(60));
        assert!(l.check("k").is_ok(), "one refilled after 50 ms");
        assert!(l.check("k").is_err());
    }

    #[test]
    fn a_key_limit_overrides_the_default_and_none_means_unlimited() {
        let l = Limiter::new(Some("1/1h".parse().unwrap()));
        l.configure("big", Some("100/1h".parse().unwrap()));
        for _ in 0..100 {
            assert!(l.check("big").is_ok());
        }
        assert!(l.check("small").is_ok());
        assert!(l.check("small").is_err());
        let none = Limiter::new(None);
        for _ in 0..10_000 {
            assert!(none.check("k").is_ok());
        }
    }

    #[test]
    fn absurd_limits_refuse_and_never_overflow() {
        let l = Limiter::new(None);
        for (key, period) in [
            ("a", Duration::from_secs(1000 * 365 * 86_400)),
            ("b", Duration::MAX),
        ] {
            l.configure(key, Some(RateLimit { count: 1, period }));
            assert!(l.check(key).is_ok(), "the first request fits");
            let wait = l.check(key).unwrap_err();
            assert!(wait > Duration::from_secs(86_400), "{wait:?}");
            assert!(l.check(key).is_err());
        }
        l.configure(
            "z",
            Some(RateLimit {
                count: 0,
                period: Duration::from_secs(1),
            }),
        );
        assert!(l.check("z").is_ok());
    }
}
