//! Verification caches: valid digests → identity, and (separately, bounded) unknown digests.
//!
//! A purpose-built sharded table rather than a general cache crate: digests are uniformly
//! random (no hashing needed), entries are small and inline (16 bytes of digest and 64 of value
//! plus the identity's text), the table stays 70–87.5 % full (`table.rs`), expiry is checked
//! lazily on read, and the whole thing costs a read lock and a probe per hit. A general-purpose
//! cache measured 350 bytes of overhead per entry and 2 µs per hit at a million keys (see
//! BENCHMARKS.md).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use crate::clock::SharedClock;

use crate::key::{slugify, KeyDigest};
use crate::limits::KeyMeter;
use crate::model::{AllowIp, Identity};
use crate::store::{Change, ChangeListener};
use table::{tag_of, Table};

mod table;

/// Most valid keys cached at once.
pub const POSITIVE_CAPACITY: usize = 1 << 21;
/// Most unknown digests remembered at once. Kept apart from valid keys so that a flood of
/// wrong keys cannot evict them.
pub const NEGATIVE_CAPACITY: usize = 1 << 16;

const SHARDS: usize = 64;

/// A verified key as cached: the identity and the instant (unix seconds) after which it must no
/// longer be accepted, re-checked on every hit. One `i64` holds both that instant and whether
/// it ends a rotation grace (stored negated), so the entry stays at 96 bytes.
#[derive(Debug, Clone)]
pub(crate) struct Valid {
    pub identity: Identity,
    /// The key's limits and counts, reached without a lookup (`None` in unit tests).
    pub meter: Option<KeyMeter>,
    /// The networks the key is accepted from; `None`: from anywhere.
    pub allow: Option<Arc<AllowIp>>,
    /// `i64::MAX`: never; negative: `-until`, the end of a rotated-out secret's grace.
    until: i64,
}

impl Valid {
    /// A key valid until `not_after` (never when `None`); `grace` when that instant ends a
    /// rotated-out secret's grace period.
    pub fn new(identity: Identity, not_after: Option<i64>, grace: bool) -> Self {
        let until = match not_after {
            None => i64::MAX,
            // Instants before 1970 are long past: clamp them to "already over".
            Some(t) if grace => -(t.max(1)),
            Some(t) => t.max(1),
        };
        Valid {
            identity,
            meter: None,
            allow: None,
            until,
        }
    }

    /// The same, accepted only from inside `allow` (from anywhere when it is empty).
    pub fn with_allow(mut self, allow: &AllowIp) -> Self {
        self.allow = (!allow.is_empty()).then(|| Arc::new(allow.clone()));
        self
    }

    /// The same, with the key's limits and counts.
    pub fn with_meter(mut self, meter: KeyMeter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// The instant (unix seconds) after which the key is refused; `i64::MAX` when never.
    pub fn not_after(&self) -> i64 {
        self.until.abs()
    }

    /// Whether [`not_after`](Self::not_after) ends a rotation grace period.
    pub fn in_grace(&self) -> bool {
        self.until < 0
    }
}

/// A cached value, when it was cached (seconds since the cache started: 136 years of range)
/// and the minute its use was last noted (for last-used times). 56 bytes for a `Valid`.
struct Slot<V> {
    value: V,
    inserted: u32,
    noted: AtomicU32,
}

type Map<V> = Table<Slot<V>>;

/// A bounded map with a time to live, split in shards to keep lock holds short.
struct Shards<V> {
    shards: Vec<RwLock<Map<V>>>,
    per_shard: usize,
    ttl_secs: u32,
    clock: SharedClock,
    /// The clock's monotonic reading when the cache started.
    epoch: Duration,
}

fn shard_of(d: &KeyDigest) -> usize {
    // Bits the in-shard hash does not use.
    d.as_bytes()[31] as usize % SHARDS
}

impl<V: Clone> Shards<V> {
    fn new(capacity: usize, ttl: Duration, clock: SharedClock) -> Self {
        Shards {
            shards: (0..SHARDS).map(|_| RwLock::new(Map::default())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            // Whole seconds, at least one: the cache works at a one-second granularity.
            ttl_secs: u32::try_from(ttl.as_secs().max(1)).unwrap_or(u32::MAX),
            epoch: clock.monotonic(),
            clock,
        }
    }

    /// The cache's second at the clock's monotonic reading `at`.
    fn secs(&self, at: Duration) -> u32 {
        u32::try_from(at.saturating_sub(self.epoch).as_secs()).unwrap_or(u32::MAX)
    }

    fn now_secs(&self) -> u32 {
        self.secs(self.clock.monotonic())
    }

    fn fresh(&self, slot: &Slot<V>, now: u32) -> bool {
        now.saturating_sub(slot.inserted) < self.ttl_secs
    }

    // A panic never leaves a shard half-updated (HashMap operations are atomic with respect
    // to unwinding), so a poisoned lock still guards a consistent map.
    fn read(&self, i: usize) -> RwLockReadGuard<'_, Map<V>> {
        self.shards[i].read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self, i: usize) -> RwLockWriteGuard<'_, Map<V>> {
        self.shards[i].write().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, d: &KeyDigest, at: Duration) -> Option<V> {
        self.get_noting(d, 0, at).map(|(v, _)| v)
    }

    /// The value, and whether this is its first use in `minute` (noted atomically, under the
    /// read lock), at the clock's monotonic reading `at`.
    fn get_noting(&self, d: &KeyDigest, minute: u32, at: Duration) -> Option<(V, bool)> {
        let now = self.secs(at);
        let shard = self.read(shard_of(d));
        let slot = shard.get(tag_of(d.as_bytes()))?;
        if !self.fresh(slot, now) {
            return None;
        }
        let first = slot.noted.swap(minute, Ordering::Relaxed) != minute;
        Some((slot.value.clone(), first))
    }

    /// Inserts unless `still_current()`, asked under the shard's write lock, says no. A change
    /// ([`Caches::apply`]) bumps the generation before it takes any shard lock to drop entries,
    /// so an insert either sees the new generation (and gives up) or lands before the change
    /// drops it: a stale entry can never outlive the change.
    fn insert_if(&self, d: KeyDigest, v: V, minute: u32, still_current: impl FnOnce() -> bool) {
        let now = self.now_secs();
        let mut shard = self.write(shard_of(&d));
        if !still_current() {
            return;
        }
        #[cfg(test)]
        tests::hook::run();
        let tag = tag_of(d.as_bytes());
        if shard.len() >= self.per_shard && !shard.contains(tag) {
            let ttl = self.ttl_secs;
            shard.retain(|slot| now.saturating_sub(slot.inserted) < ttl);
            if shard.len() >= self.per_shard {
                // Still full of live entries: drop one at random (where the new digest points).
                let from = u64::from_le_bytes(d.as_bytes()[16..24].try_into().unwrap_or([0; 8]));
                if let Some(victim) = shard.some_tag(from) {
                    shard.remove(victim);
                }
            }
        }
        shard.insert(
            tag,
            Slot {
                value: v,
                inserted: now,
                noted: AtomicU32::new(minute),
            },
        );
    }

    #[cfg(test)]
    fn insert(&self, d: KeyDigest, v: V, minute: u32) {
        self.insert_if(d, v, minute, || true);
    }

    fn remove(&self, d: &KeyDigest) {
        self.write(shard_of(d)).remove(tag_of(d.as_bytes()));
    }

    fn retain(&self, keep: impl Fn(&V) -> bool) {
        for i in 0..SHARDS {
            self.write(i).retain(|slot| keep(&slot.value));
        }
    }

    fn clear(&self) {
        for i in 0..SHARDS {
            self.write(i).clear();
        }
    }

    fn len(&self) -> usize {
        (0..SHARDS).map(|i| self.read(i).len()).sum()
    }
}

/// The two caches and the generation counter that keeps a lookup racing a change from caching
/// a stale answer.
pub(crate) struct Caches {
    positive: Option<Shards<Valid>>,
    negative: Option<Shards<()>>,
    generation: AtomicU64,
}

impl Caches {
    /// Caches with these TTLs, counted on `clock`; a zero TTL disables that cache.
    pub fn new(ttl: Duration, negative_ttl: Duration, clock: &SharedClock) -> Self {
        Caches {
            positive: (!ttl.is_zero()).then(|| Shards::new(POSITIVE_CAPACITY, ttl, clock.clone())),
            negative: (!negative_ttl.is_zero())
                .then(|| Shards::new(NEGATIVE_CAPACITY, negative_ttl, clock.clone())),
            generation: AtomicU64::new(0),
        }
    }

    /// The current generation; every change bumps it.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A cached valid key, and whether this is its first use in `minute`, at the clock's
    /// monotonic reading `at` (read once per request: [`Clock::now`](crate::clock::Clock::now)).
    pub fn get(&self, digest: &KeyDigest, minute: u32, at: Duration) -> Option<(Valid, bool)> {
        self.positive.as_ref()?.get_noting(digest, minute, at)
    }

    /// Whether valid keys are cached at all.
    pub fn enabled(&self) -> bool {
        self.positive.is_some()
    }

    pub fn is_known_unknown(&self, digest: &KeyDigest, at: Duration) -> bool {
        self.negative
            .as_ref()
            .is_some_and(|n| n.get(digest, at).is_some())
    }

    /// Caches a valid key (its use noted in `minute`), unless something changed since
    /// `generation`.
    pub fn remember(&self, digest: KeyDigest, valid: Valid, generation: u64, minute: u32) {
        if let Some(p) = &self.positive {
            p.insert_if(digest, valid, minute, || self.generation() == generation);
        }
    }

    /// Remembers an unknown digest, unless something changed since `generation`.
    pub fn remember_unknown(&self, digest: KeyDigest, generation: u64) {
        if let Some(n) = &self.negative {
            n.insert_if(digest, (), 0, || self.generation() == generation);
        }
    }

    pub fn forget(&self, digest: &KeyDigest) {
        if let Some(p) = &self.positive {
            p.remove(digest);
        }
    }

    /// How many valid keys are cached.
    pub fn len(&self) -> usize {
        self.positive.as_ref().map_or(0, Shards::len)
    }

    /// Drops exactly what `change` affects. Any change may make an unknown digest valid (a new
    /// key, a rotation, a re-activation), so the negative cache is dropped whole.
    pub fn apply(&self, change: &Change) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(n) = &self.negative {
            n.clear();
        }
        let Some(p) = &self.positive else { return };
        match change {
            Change::Key(name) => {
                let tech = slugify(name);
                p.retain(|v| v.identity.key_name() != name && v.identity.tech_name() != tech);
            }
            Change::User(user) => p.retain(|v| v.identity.user() != user),
            Change::All => p.clear(),
        }
    }
}

impl ChangeListener for Caches {
    fn on_change(&self, change: &Change) {
        self.apply(change);
    }
}

#[cfg(test)]
mod tests;
