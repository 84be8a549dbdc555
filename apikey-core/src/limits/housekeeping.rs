//! The background work of the limits: giving back leased tokens that sit unused, and writing
//! the request counts (forgetting the state of keys no longer in use on the way).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::admit::Kind;
use super::backend::{call, failed, Bucket};
use super::pool::IDLE;
use super::state::lock;
use super::{unix_now, Inner, COUNTS_EVERY, SWEEP_EVERY};
use crate::model::{UsageCount, UsageDay};
use crate::store::StoreResult;

impl Inner {
    /// Whether no pool holds tokens or waits for a lease.
    pub(super) fn quiet(&self) -> bool {
        self.keys.each().all(|shard| {
            shard.values().all(|meter| {
                let st = meter.lock();
                st.limited
                    .as_ref()
                    .and_then(|l| l.pools.as_ref())
                    .is_none_or(|p| p.rate.is_empty() && p.quota.is_empty())
            })
        })
    }

    /// Gives back what pools unused for `idle` hold.
    pub(super) async fn sweep(&self, idle: Duration) {
        let now = self.now();
        let mut back = Vec::new();
        for shard in self.keys.each() {
            for (tech, meter) in shard.iter() {
                let mut st = meter.lock();
                let Some(pools) = st.limited.as_mut().and_then(|l| l.pools.as_mut()) else {
                    continue;
                };
                for kind in [Kind::Rate, Kind::Quota] {
                    let pool = pools.pick(kind);
                    let n = pool.drain_idle(now, idle);
                    if n > 0 {
                        back.push((meter.clone(), tech.to_string(), kind, pool.window, n));
                    }
                }
            }
        }
        let unix = unix_now();
        for (meter, tech, kind, window, n) in back {
            let found = self.bucket(&meter.lock(), &tech, kind, unix);
            let Some((backend, bucket)) = found else {
                continue;
            };
            // Quota uses of a window that has ended are not worth giving back.
            if matches!(bucket, Bucket::Quota { window: w, .. } if w != window) {
                continue;
            }
            if let Err(e) = call(&*backend, backend.give_back(bucket, n)).await {
                failed(&backend, &e);
            }
        }
    }

    /// Writes the request counts gathered so far, [`BATCH`] rows at a time; on failure they
    /// are kept for the next try.
    pub(super) async fn write_counts(&self) -> StoreResult<()> {
        let mut counts: Vec<(String, UsageDay)> = std::mem::take(&mut *lock(&self.done));
        // 403s noted by name (in the map) for requests counted accepted elsewhere.
        let mut taken_back: Vec<(String, i64, u32)> = Vec::new();
        let now = self.now();
        let unix = unix_now();
        for mut shard in self.keys.each() {
            shard.retain(|tech, meter| {
                let mut st = meter.lock();
                if let Some(day) = st.take_counts() {
                    counts.push((tech.to_string(), day));
                }
                let back = st.take_back();
                if back > 0 {
                    taken_back.push((tech.to_string(), st.day(), back));
                }
                // Keys no cache entry holds any more are forgotten once their state is at
                // rest, so the map follows the keys in use.
                meter.shared() || !st.at_rest(now, |q| q.window(unix).index)
            });
        }
        let mut back = TakeBack::new(taken_back);
        let mut result = Ok(());
        let source = self.elsewhere.get();
        let parts = source.map_or(0, |s| s.parts());
        // Part `parts` takes nothing: what is left is written then.
        for part in 0..=parts {
            let last = part == parts;
            if let (false, Some(source)) = (last, source) {
                source.take_counts(part, &mut counts);
            }
            if counts.is_empty() || (!last && counts.len() < BATCH) {
                continue;
            }
            back.apply(&mut counts);
            let batch = std::mem::take(&mut counts);
            if result.is_ok() {
                let rows: Vec<UsageCount> = batch
                    .iter()
                    .map(|(tech, day)| UsageCount {
                        tech_name: tech.clone(),
                        counts: *day,
                    })
                    .collect();
                result = self.store.add_usage(&rows).await;
            }
            if result.is_err() {
                lock(&self.done).extend(batch);
            }
        }
        result
    }
}

/// The most rows a write of counts sends (and holds) at once.
const BATCH: usize = 4_096;

/// Each key's 403s noted apart, to take off its accepted count of the same day among the counts
/// written together (a request counted accepted and refused by its route in different writes
/// stays counted accepted, as it always did). One pass over the counts, whatever their number.
struct TakeBack(HashMap<String, Vec<(i64, u64)>>);

impl TakeBack {
    fn new(taken_back: Vec<(String, i64, u32)>) -> Self {
        // Tech name → (day, 403s left to take off).
        let mut left: HashMap<String, Vec<(i64, u64)>> = HashMap::new();
        for (tech, day, n) in taken_back {
            left.entry(tech).or_default().push((day, u64::from(n)));
        }
        TakeBack(left)
    }

    fn apply(&mut self, counts: &mut [(String, UsageDay)]) {
        if self.0.is_empty() {
            return;
        }
        for (tech, d) in counts.iter_mut() {
            let Some(days) = self.0.get_mut(tech.as_str()) else {
                continue;
            };
            for (_, n) in days.iter_mut().filter(|(day, _)| *day == d.day) {
                let off = (*n).min(d.accepted);
                d.accepted -= off;
                *n -= off;
            }
        }
    }
}

/// Gives back idle leases twice a second and writes request counts every 10 seconds, for as
/// long as the limits live.
pub(super) async fn housekeeping(inner: std::sync::Weak<Inner>) {
    let mut ticker = tokio::time::interval(SWEEP_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_write = Instant::now();
    loop {
        ticker.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        inner.sweep(IDLE).await;
        if last_write.elapsed() >= COUNTS_EVERY {
            last_write = Instant::now();
            if let Err(e) = inner.write_counts().await {
                crate::obs::warning!(
                    "apikey: writing request counts failed (kept for the next try): {e}"
                );
            }
        }
    }
}
