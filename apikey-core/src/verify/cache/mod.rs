//! Verification caches: valid digests → identity, and (separately, bounded) unknown digests.
//!
//! A purpose-built sharded table rather than a general cache crate: digests are uniformly
//! random (no hashing needed), entries are small and inline (16 bytes of digest and 56 of value
//! plus the identity's text), the table stays 70–87.5 % full (`table.rs`), expiry is checked
//! lazily on read, and the whole thing costs a read lock and a probe per hit. A key without
//! limits (most keys) has nothing else: its entries note its uses and count its requests, and
//! the writers walk the entries. A general-purpose
//! cache measured 350 bytes of overhead per entry and 2 µs per hit at a million keys (see
//! BENCHMARKS.md).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use crate::clock::{Reading, SharedClock};

use crate::key::{slugify, KeyDigest};
use crate::limits::{CountSource, KeyMeter};
use crate::model::{AllowIp, Identity, UsageDay};
use crate::store::{Change, ChangeListener};
use table::{tag_of, Table};

mod table;

/// Most valid keys cached at once.
pub const POSITIVE_CAPACITY: usize = 1 << 21;
/// Most unknown digests remembered at once. Kept apart from valid keys so that a flood of
/// wrong keys cannot evict them.
pub const NEGATIVE_CAPACITY: usize = 1 << 16;

const SHARDS: usize = 64;

/// A verified key as cached: the identity, what only some keys have (limits, an allowlist),
/// and the instant (unix seconds) after which it must no longer be accepted, re-checked on
/// every hit. One `i64` holds both that instant and whether it ends a rotation grace (stored
/// negated), so the value stays at 40 bytes.
#[derive(Debug, Clone)]
pub(crate) struct Valid {
    pub identity: Identity,
    /// `None` for a key without limits or allowlist (most keys). A key without limits is
    /// counted on its cache entries, with or without an allowlist.
    extra: Option<Arc<Extra>>,
    /// `i64::MAX`: never; negative: `-until`, the end of a rotated-out secret's grace.
    until: i64,
}

/// What only some keys have, behind one pointer.
#[derive(Debug)]
struct Extra {
    /// The key's limits and counts, reached without a lookup.
    meter: Option<KeyMeter>,
    /// The networks the key is accepted from; empty: from anywhere.
    allow: AllowIp,
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
            extra: None,
            until,
        }
    }

    /// The same, with the key's limits and counts (`None`: it has no limits, its entries
    /// count its requests), accepted only from inside `allow` (from anywhere when empty).
    pub fn with_limits(mut self, meter: Option<KeyMeter>, allow: &AllowIp) -> Self {
        self.extra = (meter.is_some() || !allow.is_empty()).then(|| {
            Arc::new(Extra {
                meter,
                allow: allow.clone(),
            })
        });
        self
    }

    /// The key's limits and counts, if it has limits.
    pub fn meter(&self) -> Option<&KeyMeter> {
        self.extra.as_ref().and_then(|e| e.meter.as_ref())
    }

    /// The networks the key is accepted from; `None`: from anywhere.
    pub fn allow(&self) -> Option<&AllowIp> {
        self.extra
            .as_ref()
            .map(|e| &e.allow)
            .filter(|a| !a.is_empty())
    }

    /// The instant (unix seconds) after which the key is refused; `i64::MAX` when never.
    pub fn not_after(&self) -> i64 {
        self.until.abs()
    }

    /// Whether [`not_after`](Self::not_after) ends a rotation grace period.
    pub fn in_grace(&self) -> bool {
        self.until < 0
    }

    /// Whether a request of this key is counted on its cache entry at `unix`: a key without
    /// limits (no state of its own: [`Limits::configure`](crate::limits::Limits::configure)
    /// gave none), not expired. A key with an allowlist too: a request from outside it is
    /// taken back off the entry ([`Caches::uncount`]) when it is refused.
    fn counted_here(&self, unix: i64) -> bool {
        self.meter().is_none() && self.not_after() > unix
    }
}

/// What the cache needs of a value besides holding it: the identity whose uses and counts an
/// entry keeps (none for the unknown digests).
trait Entry: Clone {
    fn identity(&self) -> Option<&Identity>;
    /// See [`Valid::counted_here`].
    fn counted_here(&self, unix: i64) -> bool;
}

impl Entry for Valid {
    fn identity(&self) -> Option<&Identity> {
        Some(&self.identity)
    }

    fn counted_here(&self, unix: i64) -> bool {
        Valid::counted_here(self, unix)
    }
}

impl Entry for () {
    fn identity(&self) -> Option<&Identity> {
        None
    }

    fn counted_here(&self, _: i64) -> bool {
        false
    }
}

/// The minute of an entry no request used yet (inserted by an administrative lookup).
const UNUSED: u32 = u32::MAX;
const MINUTES_A_DAY: u32 = 1_440;

/// An entry's uses in one word, changed atomically under the shard's read lock: the minute
/// (unix seconds / 60) of its last use in the high half, in the low half the requests counted
/// accepted on it (keys without limits) since the counts were last taken, all of that minute's
/// day.
fn uses(minute: u32, count: u32) -> u64 {
    (u64::from(minute) << 32) | u64::from(count)
}

fn minute_and_count(uses: u64) -> (u32, u32) {
    ((uses >> 32) as u32, uses as u32)
}

/// A cached value, when it was cached (seconds since the cache started: 136 years of range),
/// and its uses ([`uses`]).
struct Slot<V> {
    value: V,
    inserted: u32,
    uses: AtomicU64,
}

/// What entries leave behind when they are dropped (a change, an expiry, an eviction) or when
/// a day ends, for the next write: counts, and uses not yet written.
#[derive(Default)]
struct Left {
    counts: Mutex<Vec<(String, UsageDay)>>,
    used: Mutex<Vec<Identity>>,
    /// Uses from this minute on are not written yet (the end of a [`Caches::take_used`] walk
    /// moves it).
    unwritten_from: AtomicU32,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn day_counts(tech: &str, minute: u32, accepted: u32) -> (String, UsageDay) {
    (
        tech.to_owned(),
        UsageDay {
            day: i64::from(minute / MINUTES_A_DAY),
            accepted: u64::from(accepted),
            forbidden: 0,
            limited: 0,
        },
    )
}

impl Left {
    /// Sets aside what a dropped entry had not written yet.
    fn keep<V: Entry>(&self, slot: &Slot<V>) {
        let Some(identity) = slot.value.identity() else {
            return;
        };
        let (minute, count) = minute_and_count(slot.uses.load(Ordering::Acquire));
        self.count(identity, minute, count);
        if minute != UNUSED && minute >= self.unwritten_from.load(Ordering::Relaxed) {
            lock(&self.used).push(identity.clone());
        }
    }

    /// Sets aside `count` requests of `identity`'s key counted in `minute`'s day, if any.
    fn count(&self, identity: &Identity, minute: u32, count: u32) {
        if count > 0 {
            lock(&self.counts).push(day_counts(identity.tech_name(), minute, count));
        }
    }
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
    left: Left,
}

fn shard_of(d: &KeyDigest) -> usize {
    // Bits the in-shard hash does not use.
    d.as_bytes()[31] as usize % SHARDS
}

impl<V: Entry> Shards<V> {
    fn new(capacity: usize, ttl: Duration, clock: SharedClock) -> Self {
        Shards {
            shards: (0..SHARDS).map(|_| RwLock::new(Map::default())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            // Whole seconds, at least one: the cache works at a one-second granularity.
            ttl_secs: u32::try_from(ttl.as_secs().max(1)).unwrap_or(u32::MAX),
            epoch: clock.monotonic(),
            clock,
            left: Left::default(),
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
        let shard = self.read(shard_of(d));
        let slot = shard.get(tag_of(d.as_bytes()))?;
        self.fresh(slot, self.secs(at)).then(|| slot.value.clone())
    }

    /// The value at the clock's reading `at`, with the request noted on its entry unless
    /// `minute` is [`UNUSED`]: its use in `minute`, and when the value is counted here
    /// ([`Entry::counted_here`]), one more request accepted. `true`: counted.
    fn get_noting(&self, d: &KeyDigest, minute: u32, at: Reading) -> Option<(V, bool)> {
        let now = self.secs(at.monotonic);
        let shard = self.read(shard_of(d));
        let slot = shard.get(tag_of(d.as_bytes()))?;
        if !self.fresh(slot, now) {
            return None;
        }
        let counted = minute != UNUSED && self.note(slot, minute, at.unix_secs);
        Some((slot.value.clone(), counted))
    }

    /// Notes a request on an entry in `minute` (see [`uses`]): a new day sets the previous
    /// one's count aside. `true`: counted.
    fn note(&self, slot: &Slot<V>, minute: u32, unix: i64) -> bool {
        let count = slot.value.counted_here(unix);
        let mut old = slot.uses.load(Ordering::Relaxed);
        loop {
            let (was, n) = minute_and_count(old);
            if was == minute && !count {
                return false;
            }
            let same_day = was / MINUTES_A_DAY == minute / MINUTES_A_DAY;
            let kept = if same_day { n } else { 0 };
            let new = uses(minute, kept.saturating_add(u32::from(count)));
            match slot
                .uses
                .compare_exchange_weak(old, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    if let (false, Some(id)) = (same_day, slot.value.identity()) {
                        self.left.count(id, was, n);
                    }
                    return count;
                }
                Err(current) => old = current,
            }
        }
    }

    /// Inserts unless `still_current()`, asked under the shard's write lock, says no, noting
    /// a request in `minute` as [`get_noting`](Self::get_noting) does (at `unix`). `None`: not
    /// inserted; else whether the request was counted. A change ([`Caches::apply`]) bumps the
    /// generation before it takes any shard lock to drop entries, so an insert either sees the
    /// new generation (and gives up) or lands before the change drops it: a stale entry can
    /// never outlive the change.
    fn insert_if(
        &self,
        d: KeyDigest,
        v: V,
        minute: u32,
        unix: i64,
        still_current: impl FnOnce() -> bool,
    ) -> Option<bool> {
        let now = self.now_secs();
        let mut shard = self.write(shard_of(&d));
        if !still_current() {
            return None;
        }
        #[cfg(test)]
        tests::hook::run();
        let tag = tag_of(d.as_bytes());
        if shard.len() >= self.per_shard && !shard.contains(tag) {
            self.retain_in(&mut shard, |slot| self.fresh(slot, now));
            if shard.len() >= self.per_shard {
                // Still full of live entries: drop one at random (where the new digest points).
                let from = u64::from_le_bytes(d.as_bytes()[16..24].try_into().unwrap_or([0; 8]));
                if let Some(victim) = shard.some_tag(from).and_then(|t| shard.remove(t)) {
                    self.left.keep(&victim);
                }
            }
        }
        let counted = minute != UNUSED && v.counted_here(unix);
        let replaced = shard.insert(
            tag,
            Slot {
                value: v,
                inserted: now,
                uses: AtomicU64::new(uses(minute, u32::from(counted))),
            },
        );
        if let Some(old) = replaced {
            self.left.keep(&old);
        }
        Some(counted)
    }

    #[cfg(test)]
    fn insert(&self, d: KeyDigest, v: V, minute: u32) {
        self.insert_if(d, v, minute, 0, || true);
    }

    fn remove(&self, d: &KeyDigest) {
        if let Some(slot) = self.write(shard_of(d)).remove(tag_of(d.as_bytes())) {
            self.left.keep(&slot);
        }
    }

    fn retain(&self, keep: impl Fn(&V) -> bool) {
        for i in 0..SHARDS {
            self.retain_in(&mut self.write(i), |slot| keep(&slot.value));
        }
    }

    /// Keeps the entries of `shard` that `keep` says yes to; the others leave what they had
    /// not written yet.
    fn retain_in(&self, shard: &mut Map<V>, keep: impl Fn(&Slot<V>) -> bool) {
        shard.retain(|slot| {
            let kept = keep(slot);
            if !kept {
                self.left.keep(slot);
            }
            kept
        });
    }

    fn clear(&self) {
        for i in 0..SHARDS {
            let mut shard = self.write(i);
            shard.values().for_each(|slot| self.left.keep(slot));
            shard.clear();
        }
    }

    /// Moves the count of every entry of shard `part` out (the minutes of their last use
    /// stay); part 0 also takes the counts that dropped entries and ended days left.
    fn take_counts(&self, part: usize, out: &mut Vec<(String, UsageDay)>) {
        if part == 0 {
            out.append(&mut lock(&self.left.counts));
        }
        for slot in self.read(part).values() {
            if slot.uses.load(Ordering::Relaxed) as u32 == 0 {
                continue;
            }
            let taken = slot.uses.fetch_and(!u64::from(u32::MAX), Ordering::AcqRel);
            let (minute, n) = minute_and_count(taken);
            if let (true, Some(id)) = (n > 0, slot.value.identity()) {
                out.push(day_counts(id.tech_name(), minute, n));
            }
        }
    }

    /// The names of the keys of shard `part` used from minute `since` on.
    fn take_used(&self, part: usize, since: u32, out: &mut Vec<String>) {
        for slot in self.read(part).values() {
            let (last, _) = minute_and_count(slot.uses.load(Ordering::Relaxed));
            if let (true, Some(id)) = (last != UNUSED && last >= since, slot.value.identity()) {
                out.push(id.key_name().to_owned());
            }
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

    /// A cached valid key at the clock's reading `at` (read once per request:
    /// [`Clock::now`](crate::clock::Clock::now)), with the request noted on its entry: used in
    /// `at`'s minute, and counted accepted when the key has no limits or allowlist (`true`);
    /// the entry keeps both until they are written ([`take_used`](Self::take_used), and
    /// [`CountSource`]). An administrative look asks with `noted` false.
    pub fn get(&self, digest: &KeyDigest, at: Reading, noted: bool) -> Option<(Valid, bool)> {
        let minute = noted_in(at, noted);
        self.positive.as_ref()?.get_noting(digest, minute, at)
    }

    pub fn is_known_unknown(&self, digest: &KeyDigest, at: Duration) -> bool {
        self.negative
            .as_ref()
            .is_some_and(|n| n.get(digest, at).is_some())
    }

    /// Caches a valid key, unless something changed since `generation`, with a request noted
    /// on it as [`get`](Self::get) notes it (`noted`, at `at`). `None`: not cached (the caller
    /// notes the request itself); else whether it was counted.
    pub fn remember(
        &self,
        digest: KeyDigest,
        valid: Valid,
        generation: u64,
        at: Reading,
        noted: bool,
    ) -> Option<bool> {
        let minute = noted_in(at, noted);
        self.positive
            .as_ref()?
            .insert_if(digest, valid, minute, at.unix_secs, || {
                self.generation() == generation
            })
    }

    /// Remembers an unknown digest, unless something changed since `generation`.
    pub fn remember_unknown(&self, digest: KeyDigest, generation: u64) {
        if let Some(n) = &self.negative {
            n.insert_if(digest, (), UNUSED, 0, || self.generation() == generation);
        }
    }

    /// Takes back a request counted on `digest`'s entry at `unix` (refused after all: from
    /// outside the key's networks). `false` when the count is no longer there to take back
    /// (written meanwhile, or the entry dropped).
    pub fn uncount(&self, digest: &KeyDigest, unix: i64) -> bool {
        let Some(p) = &self.positive else {
            return false;
        };
        let shard = p.read(shard_of(digest));
        let Some(slot) = shard.get(tag_of(digest.as_bytes())) else {
            return false;
        };
        let day = minute_of(unix) / MINUTES_A_DAY;
        slot.uses
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |old| {
                let (minute, n) = minute_and_count(old);
                (n > 0 && minute / MINUTES_A_DAY == day).then(|| uses(minute, n - 1))
            })
            .is_ok()
    }

    /// A walk of the uses the entries noted since the last walk ended (the last-used times to
    /// write), a shard at a time.
    pub fn used_walk(&self) -> UsedWalk {
        let (since, minute) = self.positive.as_ref().map_or((0, 0), |p| {
            let since = p.left.unwritten_from.load(Ordering::Relaxed);
            (since, minute_of(p.clock.now().unix_secs))
        });
        UsedWalk {
            since,
            minute,
            next: 0,
        }
    }

    /// Adds the names of the keys used in the walk's next shard; `false` once every shard was
    /// walked: then the names that dropped entries left are added, and uses from the minute
    /// the walk started in are taken again by the next walk (a use may have come after its
    /// entry was walked).
    pub fn take_used(&self, walk: &mut UsedWalk, out: &mut Vec<String>) -> bool {
        let Some(p) = &self.positive else {
            return false;
        };
        if walk.next < SHARDS {
            p.take_used(walk.next, walk.since, out);
            walk.next += 1;
            return true;
        }
        if walk.next == SHARDS {
            // After the walk: an entry dropped meanwhile was either walked or left its use.
            let left = std::mem::take(&mut *lock(&p.left.used));
            out.extend(left.iter().map(|id| id.key_name().to_owned()));
            p.left.unwritten_from.store(walk.minute, Ordering::Relaxed);
            walk.next += 1;
        }
        false
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

/// Where a walk of the entries' uses is ([`Caches::used_walk`]).
pub(crate) struct UsedWalk {
    since: u32,
    minute: u32,
    next: usize,
}

impl CountSource for Caches {
    fn parts(&self) -> usize {
        if self.positive.is_some() {
            SHARDS
        } else {
            0
        }
    }

    fn take_counts(&self, part: usize, out: &mut Vec<(String, UsageDay)>) {
        if let Some(p) = self.positive.as_ref().filter(|_| part < SHARDS) {
            p.take_counts(part, out);
        }
    }
}

/// The minute (unix seconds / 60) of `unix`, as entries note it.
fn minute_of(unix: i64) -> u32 {
    u32::try_from(unix.div_euclid(60)).unwrap_or(UNUSED - 1)
}

/// The minute a request at `at` is noted in; [`UNUSED`] when it is not (`noted` false: an
/// administrative look).
fn noted_in(at: Reading, noted: bool) -> u32 {
    if noted {
        minute_of(at.unix_secs)
    } else {
        UNUSED
    }
}

impl ChangeListener for Caches {
    fn on_change(&self, change: &Change) {
        self.apply(change);
    }
}

#[cfg(test)]
mod tests;
