//! The storage seam: [`KeyStore`] and the stores that implement it.

use std::fmt;
use std::sync::Arc;

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

    /// Disables or enables a user; returns how many keys the user has.
    async fn set_user_active(&self, user: &str, active: bool) -> Result<u64, StoreError>;

    /// Whether a user is active (users never disabled are).
    async fn user_active(&self, user: &str) -> Result<bool, StoreError>;

    /// Changes made through this store, and (for database stores) by other processes.
    fn subscribe(&self) -> broadcast::Receiver<Change>;
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
    Ok(tech)
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
