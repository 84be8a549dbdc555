//! Last-used times: noted on the request path in memory, written in the background.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;

use crate::model::Identity;
use crate::store::{SharedLookup, StoreError};
use crate::task::Background;

/// How often noted uses are written.
const USAGE_FLUSH: Duration = Duration::from_secs(60);

/// Uses noted since the last write: at most one per key per minute.
#[derive(Default)]
struct Pending {
    /// Key name → the minute (unix seconds / 60) its use was last noted.
    noted: Mutex<HashMap<String, i64>>,
    /// Keys to write, as identities: cloning one shares its text, so a queued use costs 32
    /// bytes.
    queued: Mutex<Vec<Identity>>,
}

/// Notes uses on the request path and writes them every minute (and on [`flush`](Self::flush)).
pub(super) struct UsageLog {
    pending: Arc<Pending>,
    store: SharedLookup,
    _writer: Background,
}

impl UsageLog {
    /// Starts the background writer.
    pub(super) fn start(store: SharedLookup) -> Self {
        let pending = Arc::new(Pending::default());
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

    /// Notes a use of `identity`'s key at `now` (unix seconds). `first_this_minute` comes from
    /// the cache entry; `None` when the cache is off and the log must tell by itself. Cheap,
    /// never touches the store.
    pub(super) fn record(&self, identity: &Identity, now: i64, first_this_minute: Option<bool>) {
        match first_this_minute {
            Some(true) => self.pending.push(identity),
            Some(false) => {}
            None => self.pending.note(identity, now),
        }
    }

    /// Writes the pending uses now.
    pub(super) async fn flush(&self) -> Result<(), StoreError> {
        self.pending.write(&self.store).await
    }
}

impl Pending {
    fn push(&self, identity: &Identity) {
        self.queued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(identity.clone());
    }

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
        self.push(identity);
    }

    /// Writes the pending uses; on failure they are kept for the next try.
    async fn write(&self, store: &SharedLookup) -> Result<(), StoreError> {
        let queued = std::mem::take(&mut *self.queued.lock().unwrap_or_else(|e| e.into_inner()));
        if queued.is_empty() {
            return Ok(());
        }
        let mut names: Vec<String> = queued.iter().map(|c| c.key_name().to_owned()).collect();
        names.sort();
        names.dedup();
        let result = store.touch(&names, OffsetDateTime::now_utc()).await;
        if result.is_err() {
            self.queued
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(queued);
        }
        result
    }
}

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
