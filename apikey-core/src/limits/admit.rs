//! The request path: one decision under the key's shard lock, and when the key's pool is
//! empty, a lease from the shared bucket (the only await, and for leased limits a rare one).

use std::sync::Arc;
use std::time::Duration;

use super::backend::{call, failed, Backend, Bucket};
use super::budget::{self, Budget};
use super::local::gcra;
use super::pool::Pool;
use super::pool::{lease_cap, Take};
use super::state::{KeyMeter, KeyState, Outcome, Pools};
use super::AuthError;
use super::{unix_now, Inner};

/// Which limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Rate = 0,
    Quota = 1,
}

/// How a request holds its share of one limit so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Held {
    /// Not yet.
    No,
    /// A leased token (given back to the pool if the request is refused after all).
    Pool,
    /// Counted by the instance's own limiter.
    Local,
}

/// What the request path does next.
pub(super) enum Next {
    /// Answer (with the key's limits, when it has any).
    Done(Result<Budget, AuthError>),
    /// Lease `want` tokens of `kind` (`main`: the pool's share, else one for this request).
    Lease(Kind, u64, bool),
}

/// A decision, and the pools that ran low and should be refilled in the background.
pub(super) struct Step {
    pub next: Next,
    pub refill: [bool; 2],
}

/// What a request's lease gave.
pub(super) enum Leased {
    /// A token for this request (the rest of the grant went to the pool).
    Got,
    /// The shared bucket is empty for this long.
    Empty(Duration),
    /// The backend failed (now marked down), or the key has no such limit any more.
    Nothing,
}

fn rate_limited(wait: Duration) -> AuthError {
    let s = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    AuthError::RateLimited {
        retry_after_secs: u32::try_from(s.max(1)).unwrap_or(u32::MAX),
    }
}

/// Notes the shared count a quota grant reported, for a fallback to start from.
fn observe(st: &mut KeyState, bucket: Bucket<'_>, grant: &super::backend::Grant) {
    if let (Bucket::Quota { window, .. }, Some(used)) = (bucket, grant.used) {
        st.lim().local_quota.observe(window, used);
    }
}

fn quota_exhausted(wait: Duration) -> AuthError {
    AuthError::QuotaExhausted {
        retry_after_secs: u32::try_from(wait.as_secs().max(1)).unwrap_or(u32::MAX),
    }
}

impl Pools {
    /// The pool of the limit of `kind`.
    pub(super) fn pick(&mut self, kind: Kind) -> &mut Pool {
        match kind {
            Kind::Rate => &mut self.rate,
            Kind::Quota => &mut self.quota,
        }
    }
}

impl KeyState {
    /// Gives back what a refused request held.
    fn release(&mut self, held: &mut [Held; 2]) {
        for kind in [Kind::Rate, Kind::Quota] {
            if held[kind as usize] == Held::Pool {
                self.lim().pools().pick(kind).untake();
            } else if kind == Kind::Quota && held[1] == Held::Local {
                self.lim().local_quota.untake();
            }
            held[kind as usize] = Held::No;
        }
    }
}

impl Inner {
    /// Everything the request path decides without waiting, under one lock: takes what the
    /// request does not hold yet of each limit, and counts the outcome.
    pub(super) fn step(
        &self,
        meter: &KeyMeter,
        tech: &str,
        unix: i64,
        held: &mut [Held; 2],
    ) -> Step {
        let day = unix.div_euclid(86_400);
        let mut st = meter.lock();
        let st = &mut *st;
        let mut refill = [false; 2];
        let done = |st: &mut KeyState, held: &mut [Held; 2], result: Result<Budget, AuthError>| {
            let outcome = if result.is_ok() {
                Outcome::Accepted
            } else {
                st.release(held);
                Outcome::Limited
            };
            st.count(outcome, day, &self.done, tech);
            Next::Done(result)
        };
        if !self.limited() {
            let next = done(st, held, Ok(Budget::default()));
            return Step { next, refill };
        }
        let now = self.now();
        if let (Some(limit), Held::No) = (self.rate_of(st), held[0]) {
            if self.rates.as_ref().is_some_and(|r| !r.health().is_down()) {
                let cap = lease_cap(u64::from(limit.count));
                let pool = &mut st.lim().pools().rate;
                match pool.take(now, cap) {
                    Take::Took { refill: r } => {
                        refill[0] = r;
                        held[0] = Held::Pool;
                    }
                    Take::Empty(wait) => {
                        let next = done(st, held, Err(rate_limited(Duration::from_nanos(wait))));
                        return Step { next, refill };
                    }
                    Take::Lease => {
                        let (want, main) = pool.ask(now, cap);
                        let next = Next::Lease(Kind::Rate, want, main);
                        return Step { next, refill };
                    }
                }
            } else {
                match gcra(&mut st.lim().tat, limit, now) {
                    Ok(_) => held[0] = Held::Local,
                    Err(wait) => {
                        let next = done(st, held, Err(rate_limited(wait)));
                        return Step { next, refill };
                    }
                }
            }
        }
        if let (Some(quota), Held::No) = (self.quota_of(st), held[1]) {
            let window = quota.window(unix);
            let left = Duration::from_secs(u64::try_from(window.ends_at - unix).unwrap_or(1));
            if self.quotas.health().is_down() {
                if !st.lim().local_quota.take(quota, window.index) {
                    let next = done(st, held, Err(quota_exhausted(left)));
                    return Step { next, refill };
                }
                held[1] = Held::Local;
            } else {
                let cap = lease_cap(quota.count);
                let pool = &mut st.lim().pools().quota;
                pool.roll(window.index);
                match pool.take(now, cap) {
                    Take::Took { refill: r } => {
                        refill[1] = r;
                        held[1] = Held::Pool;
                    }
                    Take::Empty(_) => {
                        let next = done(st, held, Err(quota_exhausted(left)));
                        return Step { next, refill };
                    }
                    Take::Lease => {
                        let (want, main) = pool.ask(now, cap);
                        let next = Next::Lease(Kind::Quota, want, main);
                        return Step { next, refill };
                    }
                }
            }
        }
        let budget = Budget {
            rate: self
                .rate_of(st)
                .map(|limit| budget::rate(limit, held[0] == Held::Local, st, now)),
            quota: self
                .quota_of(st)
                .map(|quota| budget::quota(quota, held[1] == Held::Pool, st, unix)),
        };
        let next = done(st, held, Ok(budget));
        Step { next, refill }
    }

    /// Refuses a request whose lease found the shared bucket empty.
    pub(super) fn refuse(
        &self,
        meter: &KeyMeter,
        tech: &str,
        held: &mut [Held; 2],
        kind: Kind,
        wait: Duration,
    ) -> AuthError {
        let day = unix_now().div_euclid(86_400);
        let mut st = meter.lock();
        st.release(held);
        st.count(Outcome::Limited, day, &self.done, tech);
        match kind {
            Kind::Rate => rate_limited(wait),
            Kind::Quota => quota_exhausted(wait),
        }
    }

    /// The backend and shared bucket of a key's limit of `kind`, as configured now, at `unix`
    /// (seconds; it picks the quota window).
    pub(super) fn bucket<'a>(
        &self,
        st: &KeyState,
        tech: &'a str,
        kind: Kind,
        unix: i64,
    ) -> Option<(Arc<dyn Backend>, Bucket<'a>)> {
        match kind {
            Kind::Rate => {
                let limit = self.rate_of(st)?;
                Some((
                    Arc::clone(self.rates.as_ref()?),
                    Bucket::Rate { tech, limit },
                ))
            }
            Kind::Quota => {
                let quota = self.quota_of(st)?;
                let w = quota.window(unix);
                let bucket = Bucket::Quota {
                    tech,
                    quota,
                    window: w.index,
                    ends_at: w.ends_at,
                };
                Some((Arc::clone(&self.quotas), bucket))
            }
        }
    }

    /// A request's lease at `unix`: `want` tokens, one of them for the request itself.
    pub(super) async fn lease(
        &self,
        meter: &KeyMeter,
        tech: &str,
        (kind, want, main): (Kind, u64, bool),
        unix: i64,
    ) -> Leased {
        let found = self.bucket(&meter.lock(), tech, kind, unix);
        let Some((backend, bucket)) = found else {
            return Leased::Nothing;
        };
        let outcome = call(&*backend, backend.take(bucket, want)).await;
        let now = self.now();
        let mut st = meter.lock();
        let pool = st.lim().pools().pick(kind);
        if main {
            pool.leasing = false;
        }
        match outcome {
            Ok(grant) if grant.granted > 0 => {
                // The tokens belong to the window they were taken from.
                if let Bucket::Quota { window, .. } = bucket {
                    pool.roll(window);
                }
                pool.add(grant.granted - 1, now);
                observe(&mut st, bucket, &grant);
                Leased::Got
            }
            Ok(grant) => {
                pool.granted(0, grant.wait, now);
                observe(&mut st, bucket, &grant);
                Leased::Empty(grant.wait)
            }
            Err(e) => {
                drop(st);
                failed(&backend, &e);
                Leased::Nothing
            }
        }
    }

    /// A background refill of a pool that ran low: its share, worked out now.
    pub(super) async fn refill(&self, meter: &KeyMeter, tech: &str, kind: Kind) {
        let found = {
            let now = self.now();
            let mut st = meter.lock();
            let found = self.bucket(&st, tech, kind, unix_now());
            let pool = st.lim().pools().pick(kind);
            match found {
                Some((backend, bucket)) => {
                    let cap = match bucket {
                        Bucket::Rate { limit, .. } => lease_cap(u64::from(limit.count)),
                        Bucket::Quota { quota, .. } => lease_cap(quota.count),
                    };
                    Some((backend, bucket, pool.want(now, cap)))
                }
                None => {
                    pool.refilling = false;
                    None
                }
            }
        };
        let Some((backend, bucket, want)) = found else {
            return;
        };
        let outcome = call(&*backend, backend.take(bucket, want)).await;
        let now = self.now();
        let mut st = meter.lock();
        let pool = st.lim().pools().pick(kind);
        pool.refilling = false;
        match outcome {
            Ok(grant) => {
                let stale = matches!(bucket, Bucket::Quota { window, .. } if window != pool.window);
                if !stale {
                    pool.granted(grant.granted, grant.wait, now);
                }
                observe(&mut st, bucket, &grant);
            }
            Err(e) => {
                drop(st);
                failed(&backend, &e);
            }
        }
    }
}
