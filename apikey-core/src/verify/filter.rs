//! A membership filter of every stored digest, so that a digest the store has never held is
//! refused without a store query (a spray of random keys costs a hash and a few memory reads).
//!
//! A blocked Bloom filter: each digest sets [`PROBES`] bits inside one 512-bit block (one cache
//! line), all taken from the digest itself (SHA-256 output is already uniformly random). It
//! holds only the digests that verify (active, unexpired keys; current secrets and those in a
//! rotation grace), so a revoked, expired or rotated-out secret is refused exactly as a
//! never-stored one is: no store query, the same answer. It never forgets a digest it was told
//! of, so it has no false negatives as long as it is told of every new digest; a digest a
//! change made unusable leaves it at the rebuild that follows the change (within a second, or
//! ten times the length of a load at scale) and an expired one at the periodic rebuild; until
//! then its refusal costs a store query, never a wrong answer.
//!
//! It is kept exact through the store's change feed: every change of a key queues a refresh of
//! that key's digests, [`Change::All`] a full rebuild. The filter is trusted only when it is
//! complete: after its first load, with no refresh pending and with a live feed. Otherwise the
//! verifier asks the store, as it would without a filter: availability over speed. It is also
//! rebuilt in full every `cache_ttl` (at least every second, at most every hour), so digests
//! written behind the feed's back (direct SQL, a restored backup) are picked up; the old bits
//! serve until the new ones are ready.
//!
//! A key created by another process is in the store before its notification reaches this
//! one. So that its first request is not refused meanwhile, a digest the filter excludes may
//! still go to the store, a few times a second at most ([`FILTER_MISS_BUDGET`]): sprays of
//! random keys use the budget up in a moment and cost nothing more.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::key::{KeyDigest, MAX_KEY_LEN};
use crate::store::{Change, ChangeListener, SharedLookup, UsableDigest};
use crate::task::Background;

/// Bits set per digest.
const PROBES: usize = 6;
/// Bits of filter per digest of capacity.
const BITS_PER_KEY: usize = 16;
/// The smallest capacity built (digests).
const MIN_CAPACITY: usize = 1 << 16;
/// How often a filter that could not be loaded tries again.
const RETRY: Duration = Duration::from_secs(5);
/// How soon after a change of a key the filter is rebuilt, so that the digests the change
/// made unusable leave it (at least: rebuilds are also spaced by ten times their own length).
const FORGET_AFTER: Duration = Duration::from_secs(1);
/// Store queries per second (of the clock) that digests the filter excludes may still make:
/// what a key created elsewhere needs between its commit and its notification.
pub const FILTER_MISS_BUDGET: u32 = 5;
/// Store queries per second that digests the last complete filter excludes may make while the
/// feed is not live (changes made elsewhere may be missing from it meanwhile): enough for
/// keys created elsewhere, too few for a spray to take the pool from the heartbeat and from
/// real keys exactly when the store struggles.
pub const NOT_LIVE_MISS_BUDGET: u32 = 50;

/// The bits: blocks of 8 words (512 bits), a power of two of them; and the lengths of the
/// keys inserted, when their store could tell them.
struct Bloom {
    words: Box<[AtomicU64]>,
    block_mask: u64,
    capacity: usize,
    len: AtomicUsize,
    lengths: Lengths,
}

/// A set of key lengths (1 ..= [`MAX_KEY_LEN`] bytes), and whether a key of unknown length was
/// added (then every length may be a key's). Lock-free, grows only, like the bits.
pub(crate) struct Lengths {
    bits: [AtomicU64; MAX_KEY_LEN / 64 + 1],
    any: AtomicBool,
}

impl Lengths {
    pub(crate) fn new() -> Self {
        Lengths {
            bits: std::array::from_fn(|_| AtomicU64::new(0)),
            any: AtomicBool::new(false),
        }
    }

    /// Adds a key's length; `None`: unknown, every length may now be a key's.
    pub(crate) fn add(&self, len: Option<usize>) {
        match len {
            Some(n) if n <= MAX_KEY_LEN => {
                self.bits[n / 64].fetch_or(1 << (n % 64), Ordering::Relaxed);
            }
            _ => self.any.store(true, Ordering::Relaxed),
        }
    }

    /// Whether a key of `len` bytes may have been added.
    pub(crate) fn may_contain(&self, len: usize) -> bool {
        len > MAX_KEY_LEN
            || self.any.load(Ordering::Relaxed)
            || self.bits[len / 64].load(Ordering::Relaxed) & (1 << (len % 64)) != 0
    }
}

fn word(d: &KeyDigest, i: usize) -> u64 {
    let b = d.as_bytes();
    u64::from_le_bytes([
        b[i],
        b[i + 1],
        b[i + 2],
        b[i + 3],
        b[i + 4],
        b[i + 5],
        b[i + 6],
        b[i + 7],
    ])
}

impl Bloom {
    fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.max(MIN_CAPACITY);
        let blocks = (capacity * BITS_PER_KEY).div_ceil(512).next_power_of_two();
        Bloom {
            words: (0..blocks * 8).map(|_| AtomicU64::new(0)).collect(),
            block_mask: blocks as u64 - 1,
            capacity,
            len: AtomicUsize::new(0),
            lengths: Lengths::new(),
        }
    }

    /// The block's first word and the bits to test, from bytes the cache's hashing and
    /// sharding do not use (8..24).
    fn positions(&self, d: &KeyDigest) -> (usize, [u16; PROBES]) {
        let block = (word(d, 8) & self.block_mask) as usize * 8;
        let bits = word(d, 16);
        let mut out = [0u16; PROBES];
        for (i, p) in out.iter_mut().enumerate() {
            *p = ((bits >> (9 * i)) & 511) as u16;
        }
        (block, out)
    }

    fn insert(&self, usable: &UsableDigest) {
        self.lengths.add(usable.key_len);
        let d = &usable.digest;
        let (block, bits) = self.positions(d);
        for b in bits {
            let w = &self.words[block + usize::from(b / 64)];
            w.fetch_or(1 << (b % 64), Ordering::Relaxed);
        }
        self.len.fetch_add(1, Ordering::Relaxed);
    }

    fn may_contain(&self, d: &KeyDigest) -> bool {
        let (block, bits) = self.positions(d);
        bits.iter().all(|&b| {
            self.words[block + usize::from(b / 64)].load(Ordering::Relaxed) & (1 << (b % 64)) != 0
        })
    }

    fn bytes(&self) -> usize {
        self.words.len() * 8
    }
}

enum Work {
    /// Re-read one key's digests.
    Key(String),
    /// Re-read everything.
    All,
}

struct State {
    bloom: RwLock<Bloom>,
    /// Work queued and not done yet: the filter is not trusted meanwhile.
    pending: AtomicUsize,
    /// A full load succeeded and no refresh failed since.
    complete: AtomicBool,
    /// A full load succeeded once: the bits are those of a complete filter, perhaps behind.
    ever_complete: AtomicBool,
    /// The store cannot list its digests: there is no filter to load.
    unlisted: AtomicBool,
    queue: mpsc::UnboundedSender<Work>,
}

impl State {
    fn push(&self, work: Work) {
        self.pending.fetch_add(1, Ordering::AcqRel);
        if self.queue.send(work).is_err() {
            // The worker is gone (the runtime is shutting down): never trust again.
            self.complete.store(false, Ordering::Release);
        }
    }
}

impl ChangeListener for State {
    fn on_change(&self, change: &Change) {
        match change {
            Change::Key(name) => self.push(Work::Key(name.clone())),
            Change::All => {
                self.complete.store(false, Ordering::Release);
                self.push(Work::All);
            }
            // Users own no digests.
            Change::User(_) => {}
        }
    }
}

/// The filter of one verifier, with the task that keeps it current.
pub(crate) struct DigestFilter {
    state: Arc<State>,
    store: SharedLookup,
    misses: MissBudget,
    /// The budget of excluded digests while the feed is not live.
    misses_not_live: MissBudget,
    _worker: Background,
}

/// [`FILTER_MISS_BUDGET`] store queries per second of the clock, lock-free: the current
/// second (high 32 bits) and the queries taken in it (low 32 bits). It reads no clock of its
/// own: the verifier's reading of the request's time serves.
struct MissBudget(AtomicU64, u32);

impl MissBudget {
    fn new(per_second: u32) -> Self {
        MissBudget(AtomicU64::new(0), per_second)
    }

    /// Whether the packed value `seen` says the budget of `second` (already shifted) is used up.
    fn used_up(&self, seen: u64, second: u64) -> bool {
        seen & !0xFFFF_FFFF == second && seen & 0xFFFF_FFFF >= u64::from(self.1)
    }

    /// Whether the budget of second `now` is used up (nothing taken).
    fn spent(&self, now: i64) -> bool {
        self.used_up(self.0.load(Ordering::Relaxed), (now as u64) << 32)
    }

    /// Takes one query from the budget of second `now`, if one is left.
    fn take(&self, now: i64) -> bool {
        let second = (now as u64) << 32;
        let mut seen = self.0.load(Ordering::Relaxed);
        loop {
            if self.used_up(seen, second) {
                return false;
            }
            let next = if seen & !0xFFFF_FFFF == second {
                seen + 1
            } else {
                second | 1
            };
            match self
                .0
                .compare_exchange_weak(seen, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(actual) => seen = actual,
            }
        }
    }
}

/// What the filter holds, for metrics and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterStats {
    /// Whether the filter is trusted right now.
    pub trusted: bool,
    /// Digests inserted since the last rebuild.
    pub digests: usize,
    /// Memory of the bit array, in bytes.
    pub bytes: usize,
}

impl DigestFilter {
    /// A filter over `store`, loaded in the background and rebuilt in full every `rebuild`
    /// (clamped to one second .. one hour); registers itself on the store's change feed
    /// before the load starts, so that no change can slip between.
    pub fn start(store: SharedLookup, rebuild: Duration) -> Self {
        let rebuild = rebuild.clamp(Duration::from_secs(1), Duration::from_secs(3600));
        let (tx, rx) = mpsc::unbounded_channel();
        let state = Arc::new(State {
            bloom: RwLock::new(Bloom::with_capacity(MIN_CAPACITY)),
            pending: AtomicUsize::new(0),
            complete: AtomicBool::new(false),
            ever_complete: AtomicBool::new(false),
            unlisted: AtomicBool::new(false),
            queue: tx,
        });
        let listener: Arc<dyn ChangeListener> = state.clone();
        store.changes().listen(Arc::downgrade(&listener));
        state.push(Work::All);
        let worker = Background(tokio::spawn(work(
            Arc::clone(&state),
            store.clone(),
            rx,
            rebuild,
        )));
        DigestFilter {
            state,
            store,
            misses: MissBudget::new(FILTER_MISS_BUDGET),
            misses_not_live: MissBudget::new(NOT_LIVE_MISS_BUDGET),
            _worker: worker,
        }
    }

    /// Whether a digest the filter excludes may be asked for anyway in second `now` (unix
    /// seconds; see [`FILTER_MISS_BUDGET`]).
    pub fn may_ask_anyway(&self, now: i64) -> bool {
        self.misses.take(now)
    }

    /// Whether [`may_ask_anyway`](Self::may_ask_anyway) would say no in second `now`, without
    /// taking anything: a spray that used the budget up is refused without waiting.
    pub fn miss_budget_spent(&self, now: i64) -> bool {
        self.misses.spent(now)
    }

    /// While the feed is not live: whether the last complete filter excludes `digest` and the
    /// budget of [`NOT_LIVE_MISS_BUDGET`] store queries in second `now` is spent, so that it is
    /// refused without a store query. `false` before any complete load, and while a refresh
    /// is pending (the bits may lack a key just announced).
    pub fn refuses_while_not_live(&self, digest: &KeyDigest, now: i64) -> bool {
        if !self.state.ever_complete.load(Ordering::Acquire)
            || self.state.pending.load(Ordering::Acquire) > 0
        {
            return false;
        }
        let excluded = {
            let bloom = self.state.bloom.read().unwrap_or_else(|e| e.into_inner());
            !bloom.may_contain(digest)
        };
        excluded && !self.misses_not_live.take(now)
    }

    /// Whether the filter has been loaded in full once (or the store has no digests to list).
    pub fn loaded(&self) -> bool {
        self.state.ever_complete.load(Ordering::Acquire)
            || self.state.unlisted.load(Ordering::Acquire)
    }

    /// Whether `digest` is certainly not in the store: only when the filter is complete,
    /// nothing is pending and the store's feed is live.
    pub fn excludes(&self, digest: &KeyDigest) -> bool {
        if !self.trusted() {
            return false;
        }
        let bloom = self.state.bloom.read().unwrap_or_else(|e| e.into_inner());
        !bloom.may_contain(digest)
    }

    /// Whether no stored key has `len` bytes, so that a value of that length is certainly
    /// not a key: on the same terms as [`excludes`](Self::excludes), before any hash.
    pub fn excludes_length(&self, len: usize) -> bool {
        if !self.trusted() {
            return false;
        }
        let bloom = self.state.bloom.read().unwrap_or_else(|e| e.into_inner());
        !bloom.lengths.may_contain(len)
    }

    fn trusted(&self) -> bool {
        self.state.complete.load(Ordering::Acquire)
            && self.state.pending.load(Ordering::Acquire) == 0
            && self.store.changes().is_live()
    }

    /// What the filter holds.
    pub fn stats(&self) -> FilterStats {
        let bloom = self.state.bloom.read().unwrap_or_else(|e| e.into_inner());
        FilterStats {
            trusted: self.trusted(),
            digests: bloom.len.load(Ordering::Relaxed),
            bytes: bloom.bytes(),
        }
    }
}

/// The worker: applies queued work in order. A failure (store down, or a store that cannot
/// list digests) leaves the filter incomplete; a full load is then retried every few seconds.
/// A complete filter is rebuilt every `rebuild`, trusted meanwhile.
async fn work(
    state: Arc<State>,
    store: SharedLookup,
    mut rx: mpsc::UnboundedReceiver<Work>,
    rebuild: Duration,
) {
    let mut loaded = Instant::now();
    // How long the last full load took: rebuilds after changes are spaced ten times that
    // (at least a second), so they never take more than a tenth of the store's time.
    let mut took = Duration::ZERO;
    // A change may have made digests unusable (revoked, deleted, rotated out): a Bloom filter
    // cannot forget, so a rebuild is due by then.
    let mut forget_by: Option<Instant> = None;
    loop {
        let next = if state.complete.load(Ordering::Acquire) {
            let periodic = loaded + rebuild;
            let due = forget_by.map_or(periodic, |f| f.min(periodic));
            match tokio::time::timeout(due.saturating_duration_since(Instant::now()), rx.recv())
                .await
            {
                Ok(next) => next,
                Err(_) => {
                    let start = Instant::now();
                    load_all(&state, &store).await;
                    (loaded, took, forget_by) = (Instant::now(), start.elapsed(), None);
                    continue;
                }
            }
        } else {
            match tokio::time::timeout(RETRY, rx.recv()).await {
                Ok(next) => next,
                // Nothing queued for a while and still incomplete: try a full load again.
                Err(_) => {
                    state.pending.fetch_add(1, Ordering::AcqRel);
                    Some(Work::All)
                }
            }
        };
        let Some(item) = next else { return };
        match item {
            Work::All => {
                let start = Instant::now();
                load_all(&state, &store).await;
                (loaded, took, forget_by) = (Instant::now(), start.elapsed(), None);
            }
            Work::Key(name) => match store.digests_of(&name).await {
                Ok(Some(digests)) => {
                    let grow = {
                        let bloom = state.bloom.read().unwrap_or_else(|e| e.into_inner());
                        for d in &digests {
                            bloom.insert(d);
                        }
                        bloom.len.load(Ordering::Relaxed) > bloom.capacity
                    };
                    if grow {
                        // Past its capacity the false-positive rate climbs: rebuild bigger.
                        let start = Instant::now();
                        load_all(&state, &store).await;
                        (loaded, took, forget_by) = (Instant::now(), start.elapsed(), None);
                    } else if forget_by.is_none() {
                        let spacing = (took * 10).max(FORGET_AFTER);
                        forget_by = Some(loaded.max(Instant::now()) + spacing);
                    }
                }
                Ok(None) => state.complete.store(false, Ordering::Release),
                Err(e) => {
                    crate::obs::warning!("apikey: refreshing the digest filter failed: {e}");
                    state.complete.store(false, Ordering::Release);
                }
            },
        }
        state.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn load_all(state: &State, store: &SharedLookup) {
    match store.all_digests().await {
        Ok(Some(digests)) => {
            let bloom = Bloom::with_capacity(digests.len() * 2);
            for d in &digests {
                bloom.insert(d);
            }
            *state.bloom.write().unwrap_or_else(|e| e.into_inner()) = bloom;
            state.complete.store(true, Ordering::Release);
            state.ever_complete.store(true, Ordering::Release);
        }
        Ok(None) => {
            state.complete.store(false, Ordering::Release);
            state.unlisted.store(true, Ordering::Release);
        }
        Err(e) => {
            crate::obs::warning!("apikey: loading the digest filter failed (retrying): {e}");
            state.complete.store(false, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyHasher;

    #[test]
    fn no_false_negatives_and_a_low_false_positive_rate_at_capacity() {
        let h = KeyHasher::new(None);
        let n = 200_000;
        let bloom = Bloom::with_capacity(n);
        for i in 0..n {
            bloom.insert(&UsableDigest::of(h.digest(&format!("key {i}")), None));
        }
        for i in 0..n {
            assert!(bloom.may_contain(&h.digest(&format!("key {i}"))));
        }
        let trials = 200_000;
        let hits = (0..trials)
            .filter(|i| bloom.may_contain(&h.digest(&format!("other {i}"))))
            .count();
        let rate = hits as f64 / trials as f64;
        assert!(rate < 0.005, "false-positive rate {rate}");
    }

    #[test]
    fn lengths_hold_what_was_added_and_unknown_means_any() {
        let lengths = Lengths::new();
        for n in [1, 9, 53, 63, 64, 65, 511, MAX_KEY_LEN] {
            assert!(!lengths.may_contain(n), "{n}");
            lengths.add(Some(n));
            assert!(lengths.may_contain(n), "{n}");
        }
        for n in [2, 8, 10, 52, 54, 66, 510] {
            assert!(!lengths.may_contain(n), "{n}");
        }
        // Longer than any key: never excluded here (the format check refuses it).
        assert!(lengths.may_contain(MAX_KEY_LEN + 1));
        lengths.add(None);
        assert!((1..=MAX_KEY_LEN).all(|n| lengths.may_contain(n)));
    }

    #[test]
    fn a_generated_keys_stub_gives_its_length_and_others_none() {
        let bloom = Bloom::with_capacity(16);
        let h = KeyHasher::new(None);
        let generated = crate::KeyFormat::new("xyz").unwrap().generate().unwrap();
        let len = generated.key.expose().len();
        bloom.insert(&UsableDigest::of(
            h.digest(generated.key.expose()),
            Some(&generated.stub),
        ));
        assert!(bloom.lengths.may_contain(len));
        assert!(!bloom.lengths.may_contain(len - 1) && !bloom.lengths.may_contain(9));
        // A free-form key's marker, and a secret in its grace (no stub): any length.
        bloom.insert(&UsableDigest::of(h.digest("custom"), Some("(custom)")));
        assert!(bloom.lengths.may_contain(9));
    }
}
