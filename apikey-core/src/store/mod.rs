//! The storage seam: [`KeyStore`] and the stores that implement it.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio::sync::broadcast;

use crate::{Change, Digest, KeyRecord, Match, NewKey};

mod memory;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;

pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use sql::PostgresStore;
#[cfg(feature = "sqlite")]
pub use sql::SqliteStore;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use sql::SCHEMA_VERSION;

/// Errors of a key store. Messages name keys and users, never secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A key with this name (or the same tech name) exists already; nothing was written.
    #[error("a key named {0:?} (or with the same tech name) already exists")]
    Duplicate(String),
    /// No key has this name.
    #[error("no key named {0:?}")]
    NotFound(String),
    /// The request itself is not acceptable (empty name, empty user, ...).
    #[error("{0}")]
    Invalid(String),
    /// The store cannot be reached or failed; requests that need it get 503.
    #[error("the key store is unavailable: {0}")]
    Unavailable(String),
    /// The store was migrated by a newer version of apikey than this one.
    #[error(
        "the key store has schema version {found}, newer than the {supported} this binary \
         knows; upgrade apikey before using this store"
    )]
    TooNew {
        /// Version found in the store.
        found: i64,
        /// Newest version this binary knows.
        supported: i64,
    },
}

/// Where keys live. Lookups by digest are the hot path; the rest is administration.
///
/// Every implementation must pass the conformance suite (`store_conformance!`, feature
/// `conformance`). Writes are atomic: on error nothing was changed.
#[async_trait]
pub trait KeyStore: Send + Sync + fmt::Debug + 'static {
    /// The key whose current (or rotated, still in grace) secret has this digest.
    async fn find_by_digest(&self, digest: &Digest) -> Result<Option<Match>, StoreError>;

    /// The key with this name.
    async fn get(&self, name: &str) -> Result<Option<KeyRecord>, StoreError>;

    /// The key with this tech name.
    async fn get_by_tech_name(&self, tech_name: &str) -> Result<Option<KeyRecord>, StoreError>;

    /// All keys, sorted by name.
    async fn list(&self) -> Result<Vec<KeyRecord>, StoreError>;

    /// Stores a new key. Fails with [`StoreError::Duplicate`] when the name or tech name is
    /// taken.
    async fn create(&self, new: NewKey) -> Result<KeyRecord, StoreError>;

    /// Revokes (`false`) or re-activates (`true`) a key.
    async fn set_active(&self, name: &str, active: bool) -> Result<KeyRecord, StoreError>;

    /// Deletes a key and all its secrets.
    async fn delete(&self, name: &str) -> Result<(), StoreError>;

    /// Gives a key a new secret. The secrets it had keep working until `old_valid_until`
    /// (never again when `None` or in the past).
    async fn rotate(
        &self,
        name: &str,
        digest: Digest,
        stub: String,
        old_valid_until: Option<OffsetDateTime>,
    ) -> Result<KeyRecord, StoreError>;

    /// Replaces a key's groups.
    async fn set_groups(&self, name: &str, groups: Vec<String>) -> Result<KeyRecord, StoreError>;

    /// Adds `add` to and then removes `remove` from a key's groups, in one atomic operation
    /// (two concurrent edits never lose each other's change).
    async fn edit_groups(
        &self,
        name: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<KeyRecord, StoreError>;

    /// Sets or clears a key's rate limit (validated by the caller).
    async fn set_rate_limit(
        &self,
        name: &str,
        rate_limit: Option<String>,
    ) -> Result<KeyRecord, StoreError>;

    /// Records that keys were used at `at`. Not a change: caches are not invalidated.
    async fn touch(&self, names: &[String], at: OffsetDateTime) -> Result<(), StoreError>;

    /// Disables or enables a user; returns how many keys the user has.
    async fn set_user_active(&self, user: &str, active: bool) -> Result<u64, StoreError>;

    /// Whether a user is active (users never disabled are).
    async fn user_active(&self, user: &str) -> Result<bool, StoreError>;

    /// Changes made through this store, and (for database stores) by other processes.
    fn changes(&self) -> &ChangeFeed;

    /// Every digest the store holds (current secrets and those in a rotation grace), for the
    /// verifier's membership filter. `Ok(None)`: this store cannot list them, and the verifier
    /// then asks the store about every digest it has not cached.
    async fn all_digests(&self) -> Result<Option<Vec<Digest>>, StoreError> {
        Ok(None)
    }

    /// The digests of one key (empty when there is no such key); `Ok(None)` as for
    /// [`all_digests`](Self::all_digests).
    async fn digests_of(&self, name: &str) -> Result<Option<Vec<Digest>>, StoreError> {
        let _ = name;
        Ok(None)
    }
}

/// Adds and removes groups: the edit every store applies under its write lock.
pub(crate) fn edited_groups(current: &[String], add: &[String], remove: &[String]) -> Vec<String> {
    let mut groups: Vec<String> = current.iter().chain(add).cloned().collect();
    let remove: Vec<&str> = remove.iter().map(|g| g.trim()).collect();
    groups.retain(|g| !remove.contains(&g.trim()));
    crate::normalize_groups(&groups)
}

/// Something that must learn of changes synchronously (caches).
pub trait ChangeListener: Send + Sync {
    /// Called for every change, before the write that made it returns (for changes made in
    /// this process) or as soon as it is noticed (for changes made elsewhere).
    fn on_change(&self, change: &Change);
}

/// How a store announces changes: synchronously to listeners (so a cache never serves a key
/// after the call that revoked it returned), then to broadcast subscribers.
pub struct ChangeFeed {
    listeners: Mutex<Vec<Weak<dyn ChangeListener>>>,
    broadcast: broadcast::Sender<Change>,
    /// False while changes made elsewhere may go unnoticed (notification connection lost,
    /// change check failing): what is derived from the feed must not be trusted meanwhile.
    live: AtomicBool,
}

impl fmt::Debug for ChangeFeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangeFeed").finish_non_exhaustive()
    }
}

impl Default for ChangeFeed {
    fn default() -> Self {
        ChangeFeed {
            listeners: Mutex::new(Vec::new()),
            broadcast: broadcast::channel(1024).0,
            live: AtomicBool::new(true),
        }
    }
}

impl ChangeFeed {
    /// Announces a change to every live listener, then to subscribers.
    pub fn announce(&self, change: Change) {
        let listeners: Vec<Arc<dyn ChangeListener>> = {
            let mut all = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
            all.retain(|l| l.strong_count() > 0);
            all.iter().filter_map(Weak::upgrade).collect()
        };
        for l in listeners {
            l.on_change(&change);
        }
        // No subscriber is not an error.
        let _ = self.broadcast.send(change);
    }

    /// Registers a listener for as long as it lives.
    pub fn listen(&self, listener: Weak<dyn ChangeListener>) {
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(listener);
    }

    /// Whether every change made elsewhere reaches this feed right now.
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Marks the feed as missing changes (`false`) or as complete again (`true`). Going back
    /// to live announces [`Change::All`] first, since changes may have been missed.
    pub fn set_live(&self, live: bool) {
        if live {
            if !self.live.load(Ordering::Acquire) {
                self.announce(Change::All);
                self.live.store(true, Ordering::Release);
            }
        } else {
            // Caches keep what they hold (their TTL bounds it); consumers that need every
            // change check `is_live`.
            self.live.store(false, Ordering::Release);
        }
    }

    /// A receiver of the changes announced from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.broadcast.subscribe()
    }
}

/// A shared, type-erased store.
pub type SharedStore = Arc<dyn KeyStore>;

/// Checks a new key's name and user; returns its tech name.
pub(crate) fn validate_new(new: &NewKey) -> Result<String, StoreError> {
    let tech = crate::slugify(&new.name);
    if new.name.trim().is_empty() || tech.is_empty() {
        return Err(StoreError::Invalid(format!(
            "the key name {:?} has no letters or digits to make a tech name from",
            new.name
        )));
    }
    if new.user.trim().is_empty() {
        return Err(StoreError::Invalid("a key needs a user".into()));
    }
    crate::check_groups(&new.groups).map_err(StoreError::Invalid)?;
    check_rate_limit(new.rate_limit.as_deref())?;
    Ok(tech)
}

/// Checks an optional rate limit's syntax.
pub(crate) fn check_rate_limit(limit: Option<&str>) -> Result<(), StoreError> {
    match limit {
        Some(l) => l
            .parse::<crate::RateLimit>()
            .map(|_| ())
            .map_err(StoreError::Invalid),
        None => Ok(()),
    }
}

/// Opens the store named by a URL: `memory:`, `sqlite:…` or `postgres://…`, and brings its
/// schema up to date.
pub async fn open(url: &str) -> Result<SharedStore, StoreError> {
    let scheme = url.split(':').next().unwrap_or_default();
    match scheme {
        "memory" => Ok(Arc::new(MemoryStore::new())),
        #[cfg(feature = "sqlite")]
        "sqlite" => Ok(Arc::new(SqliteStore::connect(url).await?)),
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => Ok(Arc::new(PostgresStore::connect(url).await?)),
        _ => Err(StoreError::Invalid(format!(
            "unsupported database_url scheme {scheme:?}: use sqlite:, postgres:// or memory:"
        ))),
    }
}
