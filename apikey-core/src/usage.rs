//! Last-used times: noted on the request path in memory, written in the background.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;

use crate::store::{SharedStore, StoreError};
use crate::Caller;

/// How often noted uses are written.
pub(crate) const USAGE_FLUSH: Duration = Duration::from_secs(60);

/// Uses noted since the last write: at most one per key per minute.
#[derive(Default)]
pub(crate) struct Usage {
    /// Key name → the minute (unix seconds / 60) its use was last noted.
    noted: Mutex<HashMap<String, i64>>,
    /// Keys to write, as callers: cloning one shares its text, so a queued use costs 32 bytes.
    pending: Mutex<Vec<Caller>>,
}

impl Usage {
    /// Queues a use of `caller`'s key to be written (the caller of this knows it is the
    /// first this minute).
    pub fn push(&self, caller: &Caller) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(caller.clone());
    }

    /// Notes a use at `now` (unix seconds) when no cache entry can track it; cheap, never
    /// touches the store.
    pub fn note(&self, caller: &Caller, now: i64) {
        let name = caller.key_name();
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
        self.push(caller);
    }

    /// Writes the pending uses; on failure they are kept for the next try.
    pub async fn write(&self, store: &SharedStore) -> Result<(), StoreError> {
        let queued = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        if queued.is_empty() {
            return Ok(());
        }
        let mut names: Vec<String> = queued.iter().map(|c| c.key_name().to_owned()).collect();
        names.sort();
        names.dedup();
        let result = store.touch(&names, OffsetDateTime::now_utc()).await;
        if result.is_err() {
            self.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(queued);
        }
        result
    }

    /// The background writer.
    pub async fn write_every(usage: Arc<Usage>, store: SharedStore, every: Duration) {
        let mut ticker = tokio::time::interval(every);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            if let Err(e) = usage.write(&store).await {
                log::warn!("apikey: recording when keys were last used failed: {e}");
            }
        }
    }
}
