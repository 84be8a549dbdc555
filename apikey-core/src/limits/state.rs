//! What one instance keeps per key: its own limits, local limiter state, leased tokens and the
//! day's request counts, in a map sharded by tech name.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use super::local::LocalQuota;
use super::pool::Pool;
use crate::model::{Quota, RateLimit, UsageDay};

/// What happened to a request, for the counts per day.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outcome {
    /// Let in.
    Accepted = 0,
    /// Refused with 403 after verification let it in.
    Forbidden = 1,
    /// Refused with 429.
    Limited = 2,
    /// Refused with 403 before admission (from outside the key's allowlist): counted with
    /// the forbidden ones, never counted accepted.
    Barred = 3,
}

/// FNV-1a: cheap, and good enough for tech names.
#[derive(Default)]
pub(super) struct Fnv(u64);

impl Hasher for Fnv {
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

/// One key's state, shared by the map and by the cache entries of the key's secrets (so that
/// the request path reaches it without a map lookup).
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyMeter(Arc<Mutex<KeyState>>);

impl KeyMeter {
    /// The state, locked.
    pub(super) fn lock(&self) -> MutexGuard<'_, KeyState> {
        lock(&self.0)
    }

    /// Whether something besides the map holds it (a cache entry, a request, a refill).
    pub(super) fn shared(&self) -> bool {
        Arc::strong_count(&self.0) > 1
    }
}

/// Per-key state by tech name.
pub(super) type KeyMap = HashMap<Box<str>, KeyMeter, BuildHasherDefault<Fnv>>;

const SHARDS: usize = 16;

/// The per-key state, in shards.
pub(super) struct Shards(Vec<Mutex<KeyMap>>);

impl Shards {
    pub(super) fn new() -> Self {
        Shards((0..SHARDS).map(|_| Mutex::default()).collect())
    }

    /// The shard of `tech`, locked.
    pub(super) fn of(&self, tech: &str) -> MutexGuard<'_, KeyMap> {
        let mut h = Fnv::default();
        h.write(tech.as_bytes());
        lock(&self.0[(h.finish() % SHARDS as u64) as usize])
    }

    /// The state of `tech`, created on first use.
    pub(super) fn meter(&self, tech: &str) -> KeyMeter {
        let mut shard = self.of(tech);
        match shard.get(tech) {
            Some(m) => m.clone(),
            None => {
                let m = KeyMeter::default();
                shard.insert(tech.into(), m.clone());
                m
            }
        }
    }

    /// The state of `tech`, if the map holds one.
    pub(super) fn existing(&self, tech: &str) -> Option<KeyMeter> {
        self.of(tech).get(tech).cloned()
    }

    /// Every shard, one at a time.
    pub(super) fn each(&self) -> impl Iterator<Item = MutexGuard<'_, KeyMap>> {
        self.0.iter().map(lock)
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The leased tokens of a key, for keys whose limits are shared.
#[derive(Debug, Default)]
pub(super) struct Pools {
    pub(super) rate: Pool,
    pub(super) quota: Pool,
}

/// What an instance keeps for a key with limits (its own, or the defaults'): boxed, so that a
/// key without limits costs only its counts.
#[derive(Debug, Default)]
pub(super) struct Limited {
    /// The key's own limits; `None`: the defaults.
    pub(super) rate: Option<RateLimit>,
    pub(super) quota: Option<Quota>,
    /// Local GCRA state (ns since the limits' epoch).
    pub(super) tat: u64,
    pub(super) local_quota: LocalQuota,
    pub(super) pools: Option<Box<Pools>>,
}

impl Limited {
    pub(super) fn pools(&mut self) -> &mut Pools {
        self.pools.get_or_insert_with(Box::default)
    }
}

/// What one instance knows of one key.
#[derive(Debug, Default)]
pub(crate) struct KeyState {
    pub(super) limited: Option<Box<Limited>>,
    /// The day being counted (days since the epoch), and its counts since they were last
    /// written (every 10 seconds: 32 bits are plenty).
    day: i32,
    counts: [u32; 3],
    /// Requests refused by their route (403) that were counted accepted elsewhere (a key
    /// without limits is counted on its cache entries, a 403 is noted by name, through the
    /// map): taken off that day's accepted count when the counts are written together.
    taken_back: u32,
}

impl KeyState {
    /// The key's limit state, created on first use.
    pub(super) fn lim(&mut self) -> &mut Limited {
        self.limited.get_or_insert_with(Box::default)
    }

    /// The key's own rate limit.
    pub(super) fn rate(&self) -> Option<RateLimit> {
        self.limited.as_ref().and_then(|l| l.rate)
    }

    /// The key's own quota.
    pub(super) fn quota(&self) -> Option<Quota> {
        self.limited.as_ref().and_then(|l| l.quota)
    }

    /// Counts an outcome on `day`; a new day sets the previous one aside in `done`.
    pub(super) fn count(
        &mut self,
        outcome: Outcome,
        day: i64,
        done: &Mutex<Vec<(String, UsageDay)>>,
        tech: &str,
    ) {
        let day = i32::try_from(day).unwrap_or(i32::MAX);
        if self.day != day {
            if let Some(previous) = self.take_counts() {
                lock(done).push((tech.to_owned(), previous));
            }
            self.taken_back = 0;
            self.day = day;
        }
        let slot = match outcome {
            Outcome::Accepted => 0,
            // A 403 from the route comes after the key was admitted (and counted accepted) by
            // verification.
            Outcome::Forbidden => {
                match self.counts[0].checked_sub(1) {
                    Some(n) => self.counts[0] = n,
                    None => self.taken_back = self.taken_back.saturating_add(1),
                }
                1
            }
            Outcome::Barred => 1,
            Outcome::Limited => 2,
        };
        let n = &mut self.counts[slot];
        *n = n.saturating_add(1);
    }

    /// The counts so far, reset.
    pub(super) fn take_counts(&mut self) -> Option<UsageDay> {
        if self.counts == [0; 3] {
            return None;
        }
        let [accepted, forbidden, limited] = std::mem::take(&mut self.counts);
        Some(UsageDay {
            day: i64::from(self.day),
            accepted: u64::from(accepted),
            forbidden: u64::from(forbidden),
            limited: u64::from(limited),
        })
    }

    /// The day being counted (days since the epoch).
    pub(super) fn day(&self) -> i64 {
        i64::from(self.day)
    }

    /// The 403s to take off another state's accepted count of the same day, reset.
    pub(super) fn take_back(&mut self) -> u32 {
        std::mem::take(&mut self.taken_back)
    }

    /// Whether forgetting this state loses nothing: no counts to write, and limits (if any) at
    /// rest (a full local bucket, no local quota use this window, no leased tokens).
    pub(super) fn at_rest(&self, now: u64, window_of: impl Fn(Quota) -> i64) -> bool {
        if self.counts != [0; 3] || self.taken_back != 0 {
            return false;
        }
        let Some(l) = &self.limited else {
            return true;
        };
        let pools_idle = l
            .pools
            .as_ref()
            .is_none_or(|p| p.rate.is_empty() && p.quota.is_empty());
        let quota_idle = l.quota.is_none_or(|q| !l.local_quota.used_in(window_of(q)));
        l.tat <= now && pools_idle && quota_idle
    }
}
