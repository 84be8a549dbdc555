//! What a request of a key with limits learns of them: each policy and what is left of it, for
//! the `RateLimit-Policy` and `RateLimit` response fields.

use super::state::KeyState;
use crate::model::{Quota, RateLimit};

/// The limits of one admitted request's key (none for a key without limits).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Budget {
    /// Its rate limit.
    pub rate: Option<Policy>,
    /// Its quota.
    pub quota: Option<Policy>,
}

impl Budget {
    /// Whether the key has no limit.
    pub fn is_empty(&self) -> bool {
        self.rate.is_none() && self.quota.is_none()
    }
}

/// One limit: its size, and what is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Requests allowed per window.
    pub quota: u64,
    /// The window, in seconds (at least 1).
    pub window_secs: u64,
    /// What is left, once this request is counted, as this instance knows it: exactly for a
    /// rate limit it keeps itself, an estimate for a shared quota (its count when last asked,
    /// plus the uses this instance holds), `None` for a rate limit shared through Redis.
    pub remaining: Option<u64>,
    /// Seconds until it is whole again: the rate limit's bucket full, the quota's window over.
    pub reset_secs: u64,
}

const NS: u64 = 1_000_000_000;

/// The rate limit's policy after this request, at `now` (ns); `local`: the instance's own
/// limiter counted the request (else a token leased from Redis).
pub(super) fn rate(limit: RateLimit, local: bool, st: &KeyState, now: u64) -> Policy {
    let period = u64::try_from(limit.period.as_nanos()).unwrap_or(u64::MAX);
    let window_secs = period.div_ceil(NS).max(1);
    let count = u64::from(limit.count);
    let (remaining, reset_secs) = match (local, &st.limited) {
        (true, Some(l)) => {
            let interval = (period / count.max(1)).max(1);
            let ahead = l.tat.saturating_sub(now);
            (
                Some(period.saturating_sub(ahead) / interval),
                ahead.div_ceil(NS),
            )
        }
        _ => (None, 0),
    };
    Policy {
        quota: count,
        window_secs,
        remaining,
        reset_secs,
    }
}

/// The quota's policy after this request, at `unix` (seconds); `leased`: the request spent a
/// token this instance holds (tokens it still holds count as left).
pub(super) fn quota(quota: Quota, leased: bool, st: &KeyState, unix: i64) -> Policy {
    let window = quota.window(unix);
    let remaining = st.limited.as_ref().map(|l| {
        let used = l.local_quota.used(window.index);
        let held_here = match (leased, &l.pools) {
            (true, Some(p)) if p.quota.window == window.index => p.quota.tokens,
            _ => 0,
        };
        quota
            .count
            .saturating_sub(used)
            .saturating_add(held_here)
            .min(quota.count)
    });
    Policy {
        quota: quota.count,
        window_secs: quota.period.as_secs().max(1),
        remaining,
        reset_secs: u64::try_from(window.ends_at - unix).unwrap_or(0),
    }
}
