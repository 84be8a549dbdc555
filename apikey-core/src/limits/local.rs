//! Limits kept by one instance alone: a GCRA for rate limits (one timestamp per key) and a
//! counter per quota window. Used without Redis (rate limits) and while a shared backend is
//! unreachable (both).

use std::time::Duration;

use crate::model::{Quota, RateLimit};

/// Counts one request against `limit` with GCRA state `tat` (the theoretical arrival time,
/// ns since an epoch) at `now` (ns since the same epoch). `Ok(previous tat)` lets the caller
/// undo the count; `Err(wait)` when over the limit.
pub(super) fn gcra(tat: &mut u64, limit: RateLimit, now: u64) -> Result<u64, Duration> {
    // Saturating throughout: a limit built by hand with an absurd period must refuse requests,
    // never overflow.
    let period = u64::try_from(limit.period.as_nanos()).unwrap_or(u64::MAX);
    let interval = (period / u64::from(limit.count.max(1))).max(1);
    let tolerance = period.saturating_sub(interval);
    let previous = *tat;
    let start = previous.max(now);
    let ahead = start.saturating_sub(now);
    if ahead > tolerance {
        return Err(Duration::from_nanos(ahead - tolerance));
    }
    *tat = start.saturating_add(interval);
    Ok(previous)
}

/// Uses of a quota counted by this instance alone: `(window index, used)`.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct LocalQuota {
    window: i64,
    used: u64,
}

impl LocalQuota {
    /// Counts one use in `window`; false when the quota is used up.
    pub(super) fn take(&mut self, quota: Quota, window: i64) -> bool {
        if self.window != window {
            *self = LocalQuota { window, used: 0 };
        }
        if self.used >= quota.count {
            return false;
        }
        self.used += 1;
        true
    }

    /// Notes the shared count of `window` as last seen (uses by every instance): a fallback
    /// in that window counts on from it, never from zero.
    pub(super) fn observe(&mut self, window: i64, used: u64) {
        if self.window != window {
            *self = LocalQuota { window, used };
        } else {
            self.used = self.used.max(used);
        }
    }

    /// The uses counted (and last seen shared) in `window`.
    pub(super) fn used(&self, window: i64) -> u64 {
        if self.window == window {
            self.used
        } else {
            0
        }
    }

    /// Whether uses were counted in `window`.
    pub(super) fn used_in(&self, window: i64) -> bool {
        self.window == window && self.used > 0
    }

    /// Gives back a use taken for a request that was refused anyway.
    pub(super) fn untake(&mut self) {
        self.used = self.used.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn limit(text: &str) -> RateLimit {
        text.parse().unwrap()
    }

    #[test]
    fn bursts_up_to_the_count_then_waits() {
        let mut tat = 0;
        let l = limit("3/1h");
        for _ in 0..3 {
            assert!(gcra(&mut tat, l, 0).is_ok());
        }
        let wait = gcra(&mut tat, l, 0).unwrap_err();
        assert!(
            wait > Duration::from_secs(1100) && wait <= Duration::from_secs(1200),
            "{wait:?}"
        );
    }

    #[test]
    fn refills_over_the_period_and_undoes() {
        let mut tat = 0;
        let l = limit("2/100ms");
        assert!(gcra(&mut tat, l, 0).is_ok());
        assert!(gcra(&mut tat, l, 0).is_ok());
        assert!(gcra(&mut tat, l, 0).is_err());
        assert!(
            gcra(&mut tat, l, 60 * MS).is_ok(),
            "one refilled after 50 ms"
        );
        let previous = gcra(&mut tat, l, 60 * MS);
        assert!(previous.is_err());
        let before = tat;
        let prev = gcra(&mut tat, l, 200 * MS).unwrap();
        tat = prev;
        assert_eq!(tat, before, "a count can be undone");
    }

    #[test]
    fn absurd_limits_refuse_and_never_overflow() {
        for period in [Duration::from_secs(1000 * 365 * 86_400), Duration::MAX] {
            let mut tat = 0;
            let l = RateLimit { count: 1, period };
            assert!(gcra(&mut tat, l, 0).is_ok(), "the first request fits");
            let wait = gcra(&mut tat, l, 0).unwrap_err();
            assert!(wait > Duration::from_secs(86_400), "{wait:?}");
        }
        let mut tat = 0;
        let zero = RateLimit {
            count: 0,
            period: Duration::from_secs(1),
        };
        assert!(gcra(&mut tat, zero, 0).is_ok());
    }

    #[test]
    fn local_quota_counts_per_window() {
        let q: Quota = "2/1d".parse().unwrap();
        let mut local = LocalQuota::default();
        assert!(local.take(q, 5));
        assert!(local.take(q, 5));
        assert!(!local.take(q, 5));
        assert!(local.take(q, 6), "a new window starts full");
    }

    #[test]
    fn a_fallback_counts_on_from_the_shared_count() {
        let q: Quota = "5/1d".parse().unwrap();
        let mut local = LocalQuota::default();
        local.observe(7, 3);
        local.observe(7, 2);
        assert!(local.take(q, 7));
        assert!(local.take(q, 7));
        assert!(!local.take(q, 7), "3 used elsewhere, 2 here: 5");
        local.observe(8, 4);
        assert!(local.take(q, 8));
        assert!(!local.take(q, 8));
    }
}
