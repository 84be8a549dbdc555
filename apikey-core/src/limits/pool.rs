//! Leased tokens: one instance's share of a limit held in Redis (or of a quota held in the key
//! store), spent locally so that the request path makes no round trip.
//!
//! An instance asks the shared bucket for a lease of tokens in one atomic step; the bucket
//! never grants more than it holds, so instances together never exceed the limit. Requests
//! spend the lease in memory; when it runs below half, a background refill asks for the next
//! one. Lease sizes follow the traffic (half a second of the key's recent rate) and never
//! exceed [`lease_cap`] (2 % of the limit): tokens an instance holds but does not spend are at
//! most that, and go back to the bucket after [`IDLE`] without use. Limits under 100 per period
//! have a cap of 1: every request makes one round trip ("exact mode").

use std::time::Duration;

/// How long a pool may sit unused before its tokens go back to the shared bucket.
pub(super) const IDLE: Duration = Duration::from_secs(1);

/// How much traffic a lease should cover.
const HORIZON_SECS: f64 = 0.5;

/// The largest lease for a limit of `count` per period: 2 % of it (at least 1; 1 means every
/// request asks the shared bucket).
pub(super) fn lease_cap(count: u64) -> u64 {
    (count / 50).max(1)
}

/// What taking a token from a pool gave.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Take {
    /// A token; `refill` when the pool ran low and should ask for its next lease now.
    Took { refill: bool },
    /// The shared bucket was empty when last asked, and will be until this many ns from now.
    Empty(u64),
    /// No token here: ask the shared bucket before answering.
    Lease,
}

/// One key's leased tokens for one limit.
#[derive(Debug, Default)]
pub(super) struct Pool {
    /// Tokens leased and not yet spent.
    pub tokens: u64,
    /// The quota window the tokens belong to (0 for rate limits).
    pub window: i64,
    /// A refill is under way.
    pub refilling: bool,
    /// A request's lease of a full share is under way (others meanwhile ask for one token).
    pub leasing: bool,
    /// The shared bucket was empty: refuse without asking until this instant (ns).
    empty_until: u64,
    /// The size of the last lease asked for.
    lease: u64,
    /// Tokens spent since the last lease, when it was asked (ns), and the estimated rate of
    /// spending (tokens per second).
    spent: u64,
    leased_at: u64,
    rate: f64,
    /// When a token was last spent (ns).
    pub last_used: u64,
}

impl Pool {
    /// Starts over in quota window `window` when the pool's tokens belong to another one.
    pub(super) fn roll(&mut self, window: i64) {
        if self.window != window {
            *self = Pool {
                window,
                rate: self.rate,
                ..Pool::default()
            };
        }
    }

    /// Takes one token at `now` (ns).
    pub(super) fn take(&mut self, now: u64, cap: u64) -> Take {
        if self.tokens > 0 {
            self.tokens -= 1;
            self.spent += 1;
            self.last_used = now;
            let low = self.tokens <= self.lease / 2;
            let refill = cap > 1 && low && !self.refilling;
            if refill {
                self.refilling = true;
            }
            return Take::Took { refill };
        }
        if now < self.empty_until {
            return Take::Empty(self.empty_until - now);
        }
        Take::Lease
    }

    /// Gives back a token taken by [`take`](Self::take) for a request that was refused
    /// anyway.
    pub(super) fn untake(&mut self) {
        self.tokens += 1;
        self.spent = self.spent.saturating_sub(1);
    }

    /// How many tokens to ask for at `now`: half a second of the recent rate, within 1 and
    /// `cap`.
    pub(super) fn want(&mut self, now: u64, cap: u64) -> u64 {
        if cap <= 1 {
            return 1;
        }
        let elapsed = (now.saturating_sub(self.leased_at) as f64 / 1e9).max(0.05);
        let recent = self.spent as f64 / elapsed;
        self.rate = if self.leased_at == 0 {
            recent
        } else {
            (self.rate + recent) / 2.0
        };
        self.spent = 0;
        self.leased_at = now;
        let want = (self.rate * HORIZON_SECS).ceil() as u64;
        self.lease = want.clamp(1, cap);
        self.lease
    }

    /// Adds a lease's grant; none at all means the bucket is empty for `wait`.
    pub(super) fn granted(&mut self, granted: u64, wait: Duration, now: u64) {
        self.tokens += granted;
        if granted == 0 {
            let wait_ns = u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX);
            self.empty_until = now.saturating_add(wait_ns.max(1));
        } else {
            self.empty_until = 0;
        }
    }

    /// How many tokens a request that found the pool empty asks for, and whether it asks for
    /// the pool's share (`true`) or, while another request already does, for itself only.
    pub(super) fn ask(&mut self, now: u64, cap: u64) -> (u64, bool) {
        if self.leasing {
            (1, false)
        } else {
            self.leasing = true;
            (self.want(now, cap), true)
        }
    }

    /// Whether the pool holds nothing and nothing is under way.
    pub(super) fn is_empty(&self) -> bool {
        self.tokens == 0 && !self.refilling && !self.leasing
    }

    /// Adds the tokens that came with a request's own lease; the request's own token counts
    /// as spent at `now`.
    pub(super) fn add(&mut self, n: u64, now: u64) {
        self.tokens += n;
        self.empty_until = 0;
        self.spent += 1;
        self.last_used = now;
    }

    /// The tokens of a pool unused since `now - idle`, taken out to give back.
    pub(super) fn drain_idle(&mut self, now: u64, idle: Duration) -> u64 {
        let idle = u64::try_from(idle.as_nanos()).unwrap_or(u64::MAX);
        if self.tokens == 0
            || self.refilling
            || self.leasing
            || now.saturating_sub(self.last_used) < idle
        {
            return 0;
        }
        std::mem::take(&mut self.tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn caps_are_two_percent_and_small_limits_are_exact() {
        assert_eq!(lease_cap(20), 1);
        assert_eq!(lease_cap(99), 1);
        assert_eq!(lease_cap(100), 2);
        assert_eq!(lease_cap(10_000), 200);
        let mut p = Pool::default();
        assert_eq!(p.want(S, 1), 1);
        assert_eq!(p.take(S, 1), Take::Lease);
        p.granted(1, Duration::ZERO, S);
        assert_eq!(
            p.take(S, 1),
            Take::Took { refill: false },
            "exact mode never prefetches"
        );
    }

    #[test]
    fn leases_follow_the_traffic_within_the_cap() {
        let mut p = Pool::default();
        assert_eq!(p.want(S, 10_000), 1, "no traffic seen yet");
        p.granted(1, Duration::ZERO, S);
        // 1000 requests a second for a second.
        p.tokens = 1000;
        for i in 0..1000 {
            let _ = p.take(S + i * S / 1000, 10_000);
        }
        let want = p.want(2 * S, 10_000);
        assert!((200..=600).contains(&want), "{want}");
        assert_eq!(p.want(2 * S + S / 10, 3), 3, "never beyond the cap");
    }

    #[test]
    fn refills_at_half_once_and_waits_when_empty() {
        let mut p = Pool {
            lease: 10,
            ..Pool::default()
        };
        p.granted(10, Duration::ZERO, 0);
        let mut refills = 0;
        for _ in 0..10 {
            if let Take::Took { refill: true } = p.take(1, 100) {
                refills += 1;
            }
        }
        assert_eq!(refills, 1, "one refill in flight at a time");
        assert_eq!(p.take(1, 100), Take::Lease);
        p.granted(0, Duration::from_nanos(5 * S), 1);
        assert_eq!(p.take(2, 100), Take::Empty(5 * S - 1));
        assert_eq!(p.take(5 * S + 1, 100), Take::Lease);
        p.untake();
        assert_eq!(p.tokens, 1);
    }

    #[test]
    fn idle_tokens_go_back_and_windows_roll() {
        let mut p = Pool::default();
        p.granted(7, Duration::ZERO, 0);
        let _ = p.take(S, 100);
        assert_eq!(p.drain_idle(S + S / 2, IDLE), 0, "used recently");
        assert_eq!(p.drain_idle(3 * S, IDLE), 6);
        assert_eq!(p.tokens, 0);
        p.granted(4, Duration::ZERO, 0);
        p.roll(1);
        assert_eq!(
            (p.tokens, p.window),
            (0, 1),
            "a new window drops the old lease"
        );
    }
}
