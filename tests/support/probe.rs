//! A store wrapper that counts, delays, parks and fails lookups.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use apikey_core::clock::{SharedClock, SystemClock};
use apikey_core::model::{KeyChange, KeyOrigin, UsageCount};
use apikey_core::{
    Actor, ApiKeyConfig, AuditFilter, AuditRecord, ChangeFeed, Imported, ImportedKey, KeyDigest,
    KeyLookup, KeyManager, KeyMetering, KeyRecord, KeyStore, Match, NewKey, NewSecret, Settings,
    SharedStore, StoreError, StoreResult, UsableDigest, UsageDay, Verifier,
};
use time::OffsetDateTime;

/// A store wrapper that counts lookups and can be switched off (every call then fails as an
/// unreachable database would).
#[derive(Debug)]
pub struct Probe {
    inner: SharedStore,
    /// Lookups by digest so far.
    pub lookups: std::sync::atomic::AtomicUsize,
    /// When true, every call fails with `StoreError::Unavailable`.
    pub down: std::sync::atomic::AtomicBool,
    /// Milliseconds every lookup by digest waits first (to make lookups overlap).
    pub delay_ms: std::sync::atomic::AtomicU64,
    /// When true, the store says it cannot list digests (the verifier then has no filter).
    pub hide_digests: std::sync::atomic::AtomicBool,
    /// Imports that may still succeed; the store is down for imports after them (negative:
    /// no limit).
    pub imports_left: std::sync::atomic::AtomicI64,
    /// A gate for the next lookup by digest: it reads the store, then waits (see
    /// [`Probe::park_next_lookup`]).
    gate: std::sync::Mutex<Option<Gate>>,
}

#[derive(Debug)]
struct Gate {
    parked: tokio::sync::oneshot::Sender<()>,
    release: tokio::sync::oneshot::Receiver<()>,
}

/// A lookup parked by [`Probe::park_next_lookup`].
pub struct Parked {
    /// Resolves once the lookup has read the store and is waiting.
    pub parked: tokio::sync::oneshot::Receiver<()>,
    /// Send (or drop) to let it answer.
    pub release: tokio::sync::oneshot::Sender<()>,
}

impl Probe {
    /// Wraps `inner`.
    pub fn new(inner: SharedStore) -> Arc<Self> {
        Arc::new(Probe {
            inner,
            lookups: Default::default(),
            down: Default::default(),
            delay_ms: Default::default(),
            hide_digests: Default::default(),
            imports_left: std::sync::atomic::AtomicI64::new(-1),
            gate: Default::default(),
        })
    }

    /// Makes the next lookup by digest read the store and then wait until released, so a
    /// test can change the store while an answer from before the change is in flight.
    pub fn park_next_lookup(&self) -> Parked {
        let (parked_tx, parked_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel();
        *self.gate.lock().unwrap() = Some(Gate {
            parked: parked_tx,
            release: release_rx,
        });
        Parked {
            parked: parked_rx,
            release: release_tx,
        }
    }

    /// A verifier over this probe with `settings`, and an administrator of the same store.
    pub async fn verifier(self: &Arc<Self>, settings: Settings) -> (Arc<Verifier>, KeyManager) {
        self.verifier_on(settings, Arc::new(SystemClock)).await
    }

    /// [`verifier`](Self::verifier), reading the time from `clock` (a `ManualClock` moved by the
    /// test instead of sleeping).
    pub async fn verifier_on(
        self: &Arc<Self>,
        settings: Settings,
        clock: SharedClock,
    ) -> (Arc<Verifier>, KeyManager) {
        let store: SharedStore = self.clone();
        let config = ApiKeyConfig {
            settings,
            sections: vec![],
        };
        let admin = KeyManager::new(store.clone(), &config);
        let verifier = Verifier::with_clock(config, store, clock)
            .await
            .expect("a verifier");
        (Arc::new(verifier), admin)
    }

    /// Lookups by digest so far.
    pub fn lookups(&self) -> usize {
        self.lookups.load(Ordering::SeqCst)
    }

    fn up(&self) -> StoreResult<&SharedStore> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable("connection refused".into()))
        } else {
            Ok(&self.inner)
        }
    }
}

#[async_trait::async_trait]
impl KeyLookup for Probe {
    async fn find_by_digest(&self, digest: &KeyDigest) -> StoreResult<Option<Match>> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        }
        let found = self.up()?.find_by_digest(digest).await;
        let gate = self.gate.lock().unwrap().take();
        if let Some(gate) = gate {
            let _ = gate.parked.send(());
            let _ = gate.release.await;
        }
        found
    }
    async fn get_by_tech_name(&self, tech_name: &str) -> StoreResult<Option<KeyRecord>> {
        self.up()?.get_by_tech_name(tech_name).await
    }
    async fn user_active(&self, user: &str) -> StoreResult<bool> {
        self.up()?.user_active(user).await
    }
    fn changes(&self) -> &ChangeFeed {
        self.inner.changes()
    }
    async fn all_digests(&self) -> StoreResult<Option<Vec<UsableDigest>>> {
        if self.hide_digests.load(Ordering::SeqCst) {
            return Ok(None);
        }
        self.up()?.all_digests().await
    }
    async fn digests_of(&self, name: &str) -> StoreResult<Option<Vec<UsableDigest>>> {
        if self.hide_digests.load(Ordering::SeqCst) {
            return Ok(None);
        }
        self.up()?.digests_of(name).await
    }
}

#[async_trait::async_trait]
impl KeyMetering for Probe {
    async fn touch(&self, names: &[String], at: OffsetDateTime) -> StoreResult<()> {
        self.up()?.touch(names, at).await
    }
    async fn take_quota(&self, tech: &str, window: i64, limit: u64, want: u64) -> StoreResult<u64> {
        self.up()?.take_quota(tech, window, limit, want).await
    }
    async fn take_quota_counted(
        &self,
        tech: &str,
        window: i64,
        limit: u64,
        want: u64,
    ) -> StoreResult<(u64, Option<u64>)> {
        self.up()?
            .take_quota_counted(tech, window, limit, want)
            .await
    }
    async fn return_quota(&self, tech: &str, window: i64, n: u64) -> StoreResult<()> {
        self.up()?.return_quota(tech, window, n).await
    }
    async fn add_usage(&self, counts: &[UsageCount]) -> StoreResult<()> {
        self.up()?.add_usage(counts).await
    }
}

/// Administration passes through (failing while the probe is down).
#[async_trait::async_trait]
impl KeyStore for Probe {
    async fn get(&self, name: &str) -> StoreResult<Option<KeyRecord>> {
        self.up()?.get(name).await
    }
    async fn list(&self, filter: &apikey_core::KeyFilter) -> StoreResult<Vec<KeyRecord>> {
        self.up()?.list(filter).await
    }
    async fn create(&self, new: NewKey, by: &Actor) -> StoreResult<KeyRecord> {
        self.up()?.create(new, by).await
    }
    async fn change(&self, name: &str, c: KeyChange, by: &Actor) -> StoreResult<KeyRecord> {
        self.up()?.change(name, c, by).await
    }
    async fn delete(&self, name: &str, by: &Actor) -> StoreResult<()> {
        self.up()?.delete(name, by).await
    }
    async fn rotate(&self, name: &str, s: NewSecret, by: &Actor) -> StoreResult<KeyRecord> {
        self.up()?.rotate(name, s, by).await
    }
    async fn usage(&self, tech: &str, since_day: i64) -> StoreResult<Vec<UsageDay>> {
        self.up()?.usage(tech, since_day).await
    }
    async fn quota_used(&self, tech: &str, window: i64) -> StoreResult<u64> {
        self.up()?.quota_used(tech, window).await
    }
    async fn set_user_active(&self, user: &str, on: bool, by: &Actor) -> StoreResult<u64> {
        self.up()?.set_user_active(user, on, by).await
    }
    async fn import(&self, key: ImportedKey, by: &Actor) -> StoreResult<Imported> {
        if self.imports_left.fetch_sub(1, Ordering::SeqCst) == 0 {
            self.imports_left.store(0, Ordering::SeqCst);
            return Err(StoreError::Unavailable("connection reset".into()));
        }
        self.up()?.import(key, by).await
    }
    async fn deactivate_all(&self, by: &Actor) -> StoreResult<u64> {
        self.up()?.deactivate_all(by).await
    }
    async fn audit(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditRecord>> {
        self.up()?.audit(filter).await
    }
    async fn origin(&self, name: &str) -> StoreResult<Option<KeyOrigin>> {
        self.up()?.origin(name).await
    }
    async fn claim_report(
        &self,
        digest: &[u8; 32],
        now: time::OffsetDateTime,
        window: std::time::Duration,
    ) -> StoreResult<bool> {
        self.up()?.claim_report(digest, now, window).await
    }

    async fn release_report(&self, digest: &[u8; 32]) -> StoreResult<()> {
        self.up()?.release_report(digest).await
    }

    async fn note(&self, action: &str, name: &str, summary: &str, by: &Actor) -> StoreResult<()> {
        self.up()?.note(action, name, summary, by).await
    }
}
