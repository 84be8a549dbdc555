//! Verification caches: valid digests → caller, and (separately, bounded) unknown digests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;

use crate::store::ChangeListener;
use crate::{slugify, Caller, Change, Digest};

/// Most valid keys cached at once (each costs about 200 bytes; see BENCHMARKS.md).
pub const POSITIVE_CAPACITY: u64 = 2 << 20;
/// Most unknown digests remembered at once. Kept apart from valid keys so that a flood of
/// wrong keys cannot evict them.
pub const NEGATIVE_CAPACITY: u64 = 1 << 16;

/// A verified key as cached: the caller and the instant (unix seconds) after which it must no
/// longer be accepted, re-checked on every hit.
#[derive(Debug, Clone)]
pub(crate) struct Valid {
    pub caller: Caller,
    pub not_after: Option<i64>,
}

/// The two caches and the generation counter that keeps a lookup racing a change from caching
/// a stale answer.
pub(crate) struct Caches {
    positive: Option<Cache<Digest, Arc<Valid>>>,
    negative: Option<Cache<Digest, ()>>,
    generation: AtomicU64,
}

impl Caches {
    /// Caches with these TTLs; a zero TTL disables that cache.
    pub fn new(ttl: Duration, negative_ttl: Duration) -> Self {
        let positive = (!ttl.is_zero()).then(|| {
            Cache::builder()
                .max_capacity(POSITIVE_CAPACITY)
                .time_to_live(ttl)
                .support_invalidation_closures()
                .build()
        });
        let negative = (!negative_ttl.is_zero()).then(|| {
            Cache::builder()
                .max_capacity(NEGATIVE_CAPACITY)
                .time_to_live(negative_ttl)
                .build()
        });
        Caches {
            positive,
            negative,
            generation: AtomicU64::new(0),
        }
    }

    pub fn positive(&self) -> Option<&Cache<Digest, Arc<Valid>>> {
        self.positive.as_ref()
    }

    /// The current generation; changes bump it.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub async fn get(&self, digest: &Digest) -> Option<Arc<Valid>> {
        self.positive.as_ref()?.get(digest).await
    }

    pub async fn is_known_unknown(&self, digest: &Digest) -> bool {
        match &self.negative {
            Some(n) => n.contains_key(digest),
            None => false,
        }
    }

    /// Remembers an unknown digest, unless something changed since `generation`.
    pub async fn remember_unknown(&self, digest: Digest, generation: u64) {
        if let Some(n) = &self.negative {
            if self.generation() == generation {
                n.insert(digest, ()).await;
            }
        }
    }

    pub async fn forget(&self, digest: &Digest) {
        if let Some(p) = &self.positive {
            p.invalidate(digest).await;
        }
    }

    /// Drops exactly what `change` affects. Any change may make an unknown digest valid (a new
    /// key, a rotation, a re-activation), so the negative cache is dropped whole.
    pub fn apply(&self, change: &Change) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(n) = &self.negative {
            n.invalidate_all();
        }
        let Some(p) = &self.positive else { return };
        let outcome = match change {
            Change::Key(name) => {
                let name = name.clone();
                let tech = slugify(&name);
                p.invalidate_entries_if(move |_, v| {
                    v.caller.key_name() == name || v.caller.tech_name() == tech
                })
            }
            Change::User(user) => {
                let user = user.clone();
                p.invalidate_entries_if(move |_, v| v.caller.user() == user)
            }
            Change::All => {
                p.invalidate_all();
                return;
            }
        };
        if outcome.is_err() {
            // Cannot happen (closures are enabled at build); dropping everything is safe.
            p.invalidate_all();
        }
    }
}

impl ChangeListener for Caches {
    fn on_change(&self, change: &Change) {
        self.apply(change);
    }
}
