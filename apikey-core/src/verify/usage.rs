//! Last-used times: noted on the request path in memory (on the key's cache entry, else here),
//! written in the background.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;

use super::cache::Caches;
use crate::model::Identity;
use crate::store::{SharedLookup, StoreError};
use crate::task::Background;

/// How often noted uses are written.
const USAGE_FLUSH: Duration = Duration::from_secs(60);

/// Uses noted since the last write of keys that are not cached (a cache entry notes its own
/// uses, [`Caches::take_used`] collects them): at most one per key per minute.
struct Pending {
    /// Key name → the minute (unix seconds / 60) its use was last noted.
    noted: Mutex<HashMap<String, i64>>,
    /// Keys to write, as identities: cloning one shares its text.
    queued: Mutex<Vec<Identity>>,
    /// Names whose write failed, for the next try.
    retry: Mutex<Vec<String>>,
    caches: Arc<Caches>,
}

/// Notes uses on the request path and writes them every minute (and on [`flush`](Self::flush)).
pub(super) struct UsageLog {
    pending: Arc<Pending>,
    store: SharedLookup,
    _writer: Background,
}

impl UsageLog {
    /// Starts the background writer, of the uses noted here and on `caches`' entries.
    pub(super) fn start(store: SharedLookup, caches: Arc<Caches>) -> Self {
        let pending = Arc::new(Pending {
            noted: Mutex::default(),
            queued: Mutex::default(),
            retry: Mutex::default(),
            caches,
        });
        let writer = Background(tokio::spawn(write_every(
            Arc::clone(&pending),
            store.clone(),
            USAGE_FLUSH,
        )));
        UsageLog {
            pending,
            store,
            _writer: writer,
        }
    }

    /// Notes a use of `identity`'s key at `now` (unix seconds), when no cache entry noted it.
    /// Never touches the store.
    pub(super) fn note(&self, identity: &Identity, now: i64) {
        self.pending.note(identity, now);
    }

    /// Writes the pending uses now.
    pub(super) async fn flush(&self) -> Result<(), StoreError> {
        self.pending.write(&self.store).await
    }
}

impl Pending {
    fn note(&self, identity: &Identity, now: i64) {
        let name = identity.key_name();
        let minute = now / 60;
        {
            let mut noted = self.noted.lock().unwrap_or_else(|e| e.into_inner());
            match noted.get_mut(name) {
                Some(m) if *m == minute => return,
                Some(m) => *m = minute,
                None => {
                    noted.insert(name.to_owned(), minute);
                }
            }
        }
        self.queued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(identity.clone());
    }

    /// Writes the pending uses, [`BATCH`] names at a time; on failure they are kept for the
    /// next try.
    async fn write(&self, store: &SharedLookup) -> Result<(), StoreError> {
        let mut names = std::mem::take(&mut *self.retry.lock().unwrap_or_else(|e| e.into_inner()));
        let queued = std::mem::take(&mut *self.queued.lock().unwrap_or_else(|e| e.into_inner()));
        names.extend(queued.iter().map(|c| c.key_name().to_owned()));
        drop(queued);
        let mut walk = self.caches.used_walk();
        let mut result = Ok(());
        loop {
            let more = self.caches.take_used(&mut walk, &mut names);
            if !names.is_empty() && (!more || names.len() >= BATCH) {
                names.sort_unstable();
                names.dedup();
                if result.is_ok() {
                    result = store.touch(&names, OffsetDateTime::now_utc()).await;
                }
                if result.is_err() {
                    self.retry
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .append(&mut names);
                }
                names.clear();
            }
            if !more {
                return result;
            }
        }
    }
}

/// The most names a write of last-used times sends (and holds) at once.
const BATCH: usize = 4_096;

/// The background writer.
async fn write_every(pending: Arc<Pending>, store: SharedLookup, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        if let Err(e) = pending.write(&store).await {
            crate::obs::warning!("apikey: recording when keys were last used failed: {e}");
        }
    }
}
