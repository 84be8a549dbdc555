//! Where keys live: the [`KeyLookup`] trait the request path reads through, [`KeyMetering`]
//! (its supertrait) for what the request path writes, the [`KeyStore`] trait administration
//! needs on top of them, and the stores that implement all three.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::config::Settings;
use crate::key::KeyDigest;
use crate::model::{
    Actor, AuditFilter, AuditRecord, Imported, ImportedKey, KeyChange, KeyFilter, KeyOrigin,
    KeyRecord, Match, NewKey, NewSecret, UsageCount, UsageDay,
};

mod changes;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;
mod summary;

pub(crate) use changes::ChangeListener;
pub use changes::{Change, ChangeFeed, StoreOptions};
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub(crate) use postgres::describe_connect_failure;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use sql::{Dialect, SchemaStatus, SqlStore, SCHEMA_VERSION};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

/// A digest that verifies right now, as a store lists it for the verifier's filter
/// ([`KeyLookup::all_digests`]), with the length of the key it is the digest of when the
/// store can tell: then a presented value of a length no stored key has is refused before
/// it is hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsableDigest {
    /// The digest.
    pub digest: KeyDigest,
    /// The length in bytes of its key; `None`: it may have any length.
    pub key_len: Option<usize>,
}

impl UsableDigest {
    /// A digest and what its secret's display stub says of its length: a key's current
    /// secret passes the key's stub (a generated key's stub gives its length,
    /// [`KeyFormat::key_len_of_stub`](crate::key::KeyFormat::key_len_of_stub)); a secret in its
    /// rotation grace, whose stub is gone, passes `None` (any length).
    pub fn of(digest: KeyDigest, stub: Option<&str>) -> Self {
        UsableDigest {
            digest,
            key_len: stub.and_then(crate::key::KeyFormat::key_len_of_stub),
        }
    }
}

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
    /// A key's rotation of itself was refused by its rule, checked under the key's lock
    /// ([`OwnRotation`](crate::model::OwnRotation)); nothing was written.
    #[error(transparent)]
    RotationRefused(#[from] crate::model::RotationRefusal),
    /// The store's schema is behind this build and `auto_migrate` is off.
    #[error(
        "the key store's schema is at {found}, this build needs {needed}: run `apikey migrate`"
    )]
    Behind {
        /// The newest migration applied.
        found: i64,
        /// The newest migration this build knows.
        needed: i64,
    },
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

/// What the request path writes, none of it a change (caches are not invalidated): last-used
/// times, quota takes and request counts. Every [`KeyLookup`] meters too.
#[async_trait]
pub trait KeyMetering: Send + Sync {
    /// Records that keys were used at `at`. Not a change: caches are not invalidated.
    async fn touch(&self, names: &[String], at: OffsetDateTime) -> StoreResult<()>;

    /// Takes up to `want` uses from a key's quota of `limit` uses in `window` (a window index,
    /// see [`Quota::window`](crate::model::Quota::window)) in one atomic step; returns how many were granted, 0 once the
    /// quota is used up. Several processes taking at once never get more than `limit` in all.
    async fn take_quota(
        &self,
        tech_name: &str,
        window: i64,
        limit: u64,
        want: u64,
    ) -> StoreResult<u64>;

    /// [`take_quota`](Self::take_quota), also telling how many uses the window holds after
    /// it (all processes), when the store can say so in the same step (`None` otherwise, the
    /// default): the limits use it to tell clients what is left of their quota.
    async fn take_quota_counted(
        &self,
        tech_name: &str,
        window: i64,
        limit: u64,
        want: u64,
    ) -> StoreResult<(u64, Option<u64>)> {
        let granted = self.take_quota(tech_name, window, limit, want).await?;
        Ok((granted, None))
    }

    /// Gives back `n` uses taken from `window` but not spent.
    async fn return_quota(&self, tech_name: &str, window: i64, n: u64) -> StoreResult<()>;

    /// Adds request counts per key and day. Not a change: caches are not invalidated.
    async fn add_usage(&self, counts: &[UsageCount]) -> StoreResult<()>;
}

/// What the request path asks of a store: lookups by digest (the hot path), the few reads
/// that config sections need, and the change feed that keeps caches honest (with
/// [`KeyMetering`], what it writes).
///
/// Every implementation must pass the conformance suite (`store_conformance!`, feature
/// `conformance`).
#[async_trait]
pub trait KeyLookup: KeyMetering + fmt::Debug + 'static {
    /// The key whose current (or rotated, still in grace) secret has this digest.
    async fn find_by_digest(&self, digest: &KeyDigest) -> StoreResult<Option<Match>>;

    /// The key with this tech name.
    async fn get_by_tech_name(&self, tech_name: &str) -> StoreResult<Option<KeyRecord>>;

    /// Whether a user is active (users never disabled are).
    async fn user_active(&self, user: &str) -> StoreResult<bool>;

    /// Changes made through this store, and (for database stores) by other processes.
    fn changes(&self) -> &ChangeFeed;

    /// Every digest that verifies right now (secrets of active, unexpired keys: current ones
    /// and those in a rotation grace), for the verifier's membership filter: a revoked, expired
    /// or rotated-out secret is then refused exactly as a never-stored one is. `Ok(None)`: this
    /// store cannot list them, and the verifier then asks the store about every digest it has
    /// not cached. Each comes with its key's length when the store can tell it
    /// ([`UsableDigest::of`]).
    async fn all_digests(&self) -> StoreResult<Option<Vec<UsableDigest>>> {
        Ok(None)
    }

    /// The digests of one key (empty when there is no such key); `Ok(None)` as for
    /// [`all_digests`](Self::all_digests).
    async fn digests_of(&self, name: &str) -> StoreResult<Option<Vec<UsableDigest>>> {
        let _ = name;
        Ok(None)
    }
}

/// Key administration: reads for people and every write. Writes are atomic (on error nothing
/// was changed), announce their [`Change`] before they return, and record who made them (`by`)
/// in the audit trail in the same transaction. Values arrive typed and checked
/// ([`KeyChange`], [`Groups`](crate::model::Groups), [`RateLimit`](crate::model::RateLimit)); a
/// store checks only what it alone can know (a name being taken).
#[async_trait]
pub trait KeyStore: KeyLookup {
    /// The key with this name.
    async fn get(&self, name: &str) -> StoreResult<Option<KeyRecord>>;

    /// The keys `filter` selects ([`KeyFilter::all`]: every key), sorted by name, in one
    /// query.
    async fn list(&self, filter: &KeyFilter) -> StoreResult<Vec<KeyRecord>>;

    /// Stores a new key. Fails with [`StoreError::Duplicate`] when the name or tech name is
    /// taken.
    async fn create(&self, new: NewKey, by: &Actor) -> StoreResult<KeyRecord>;

    /// Changes one key ([`KeyChange`]: active, groups, limits, networks, expiry) in one atomic
    /// operation under the key's lock, audited as the change's action with a summary of the
    /// key as it left it. Returns the key as changed.
    async fn change(&self, name: &str, change: KeyChange, by: &Actor) -> StoreResult<KeyRecord>;

    /// Deletes a key and all its secrets.
    async fn delete(&self, name: &str, by: &Actor) -> StoreResult<()>;

    /// Gives a key a new secret. The secrets it had keep working until
    /// `secret.old_valid_until` (never again when `None` or in the past). With `secret.own`
    /// (a key rotating itself), its rule is decided under the key's lock, counting every
    /// rotation of the key: [`StoreError::RotationRefused`] and nothing written when it fails.
    async fn rotate(&self, name: &str, secret: NewSecret, by: &Actor) -> StoreResult<KeyRecord>;

    /// The request counts of a key (by tech name) from `since_day` (days since the epoch) on,
    /// oldest first; days without requests are left out.
    async fn usage(&self, tech_name: &str, since_day: i64) -> StoreResult<Vec<UsageDay>>;

    /// How many uses of a key's quota were taken in `window`.
    async fn quota_used(&self, tech_name: &str, window: i64) -> StoreResult<u64>;

    /// Every key's requests (accepted, 403 and 429 together) from `since_day` on, by tech
    /// name; keys without requests are left out. The default asks [`usage`](Self::usage) key by
    /// key; the SQL and memory stores answer in one query.
    async fn usage_totals(&self, since_day: i64) -> StoreResult<HashMap<String, u64>> {
        let mut totals = HashMap::new();
        for r in self.list(&KeyFilter::all()).await? {
            let n: u64 = self
                .usage(&r.tech_name, since_day)
                .await?
                .iter()
                .map(|d| d.accepted + d.forbidden + d.limited)
                .sum();
            if n > 0 {
                totals.insert(r.tech_name, n);
            }
        }
        Ok(totals)
    }

    /// Disables or enables a user; returns how many keys the user has.
    async fn set_user_active(&self, user: &str, active: bool, by: &Actor) -> StoreResult<u64>;

    /// Creates a key brought over from another system (marked as imported), or brings the
    /// existing key of that name in line with it (secret, user, groups, active flag), in one
    /// transaction. A key of that name that an import did not create is never touched:
    /// [`StoreError::Invalid`]; one it created but that was changed here since (any write
    /// other than an import's, or its user enabled) is left as it is: [`Imported::Conflict`].
    async fn import(&self, key: ImportedKey, by: &Actor) -> StoreResult<Imported>;

    /// Where the key of this name came from (`None`: no such key).
    async fn origin(&self, name: &str) -> StoreResult<Option<KeyOrigin>>;

    /// Deactivates every key in one transaction (a store restored into another environment);
    /// returns how many were active.
    async fn deactivate_all(&self, by: &Actor) -> StoreResult<u64>;

    /// The audit trail entries `filter` selects, oldest first.
    async fn audit(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditRecord>>;

    /// Claims the report whose body has the SHA-256 `digest` as first seen at `now`: `true` when
    /// no claim of it is younger than `window` (the report is to be processed), `false` for a
    /// replay. One atomic step: of concurrent claims on any instance sharing the store, one
    /// wins. Older claims may be forgotten.
    async fn claim_report(
        &self,
        digest: &[u8; 32],
        now: OffsetDateTime,
        window: std::time::Duration,
    ) -> StoreResult<bool>;

    /// Gives up a claim (the report could not be processed: a retry must be taken).
    async fn release_report(&self, digest: &[u8; 32]) -> StoreResult<()>;

    /// Records an event that changes no key (an admin page login or logout) in the audit
    /// trail: `action` about `name`, summed up in `summary`. Not a change: nothing is
    /// announced.
    async fn note(&self, action: &str, name: &str, summary: &str, by: &Actor) -> StoreResult<()>;
}

/// What a store call gives: the value, or why there is none.
pub type StoreResult<T> = Result<T, StoreError>;

/// A shared, type-erased store.
pub type SharedStore = Arc<dyn KeyStore>;

/// A shared, type-erased lookup side of a store (what a verifier holds).
pub type SharedLookup = Arc<dyn KeyLookup>;

/// Checks a new key's name and user; returns its tech name.
pub(crate) fn validate_new(new: &NewKey) -> StoreResult<String> {
    new.tech_name().map_err(StoreError::Invalid)
}

/// The origin stored with keys an import created.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) const IMPORT_ORIGIN: &str = "import";

/// The origin of keys an import created and that were changed here since (revoked, rotated,
/// groups, limits, networks, their user enabled): a later import leaves them as they are.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) const CHANGED_ORIGIN: &str = "import-changed";

/// What an import reports of a key changed here since it imported it.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) const CONFLICT: &str = "changed here since it was imported; left as is";

/// Why an import leaves a key alone.
pub(crate) fn not_imported(name: &str) -> StoreError {
    StoreError::Invalid(format!(
        "a key named {name:?} exists here and was not created by an import: left as it is"
    ))
}

/// Checks a user name given on its own (enable, disable).
pub(crate) fn validate_user(user: &str) -> StoreResult<()> {
    if user.trim().is_empty() {
        return Err(StoreError::Invalid("a user name cannot be empty".into()));
    }
    crate::model::check_name("user", user).map_err(StoreError::Invalid)
}

/// The absolute path of the file a SQLite `database_url` names (`None` for an in-memory SQLite
/// database and for any other scheme): where the store is, whatever the working directory.
#[cfg(feature = "sqlite")]
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    use std::str::FromStr;
    if !url.starts_with("sqlite:") || sqlite::in_memory(url) {
        return None;
    }
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url).ok()?;
    std::path::absolute(options.get_filename()).ok()
}

/// A short-lived pool on the store `settings.database_url` names, for its schema alone.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
enum SchemaPool {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
async fn schema_pool(settings: &Settings) -> StoreResult<Option<SchemaPool>> {
    use std::str::FromStr;
    let url = settings.database_url.as_str();
    match url.split(':').next().unwrap_or_default() {
        #[cfg(feature = "sqlite")]
        "sqlite" => {
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::Invalid(format!("bad SQLite database_url: {e}")))?;
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            Ok(Some(SchemaPool::Sqlite(pool)))
        }
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => {
            let options = postgres::connect_options(url, "database_url")?
                .options([("search_path", "apikey")]);
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(settings.pool_timeout)
                .connect_with(options.clone())
                .await
                .map_err(|e| StoreError::Unavailable(describe_connect_failure(&options, &e)))?;
            Ok(Some(SchemaPool::Postgres(pool)))
        }
        _ => Ok(None),
    }
}

/// Where the schema of the store `settings.database_url` names stands against this build
/// (plain reads: no DDL, no change feed). The memory store is always current.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub async fn schema_status(settings: &Settings) -> StoreResult<SchemaStatus> {
    match schema_pool(settings).await? {
        #[cfg(feature = "sqlite")]
        Some(SchemaPool::Sqlite(pool)) => sqlite::schema_status(&pool).await,
        #[cfg(feature = "postgres")]
        Some(SchemaPool::Postgres(pool)) => postgres::schema_status(&pool).await,
        None => Ok(SchemaStatus::current()),
    }
}

/// Applies the migrations the store `settings.database_url` names lacks (creating the
/// PostgreSQL schema if needed); returns where it stood before (its `pending` are what was
/// applied). Idempotent. What `apikey migrate` runs, with a role that has DDL rights.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub async fn migrate(settings: &Settings) -> StoreResult<SchemaStatus> {
    match schema_pool(settings).await? {
        #[cfg(feature = "sqlite")]
        Some(SchemaPool::Sqlite(pool)) => sqlite::migrate(&pool).await,
        #[cfg(feature = "postgres")]
        Some(SchemaPool::Postgres(pool)) => postgres::migrate(&pool, "apikey").await,
        None => Ok(SchemaStatus::current()),
    }
}

/// Opens the store named by `settings.database_url` (`memory:`, `sqlite:…` or
/// `postgres://…`) and brings its schema up to date. The one way services, the demo and the
/// CLI open a store.
pub async fn open(settings: &Settings) -> StoreResult<SharedStore> {
    let url = settings.database_url.as_str();
    let scheme = url.split(':').next().unwrap_or_default();
    match scheme {
        "memory" => Ok(Arc::new(MemoryStore::new())),
        #[cfg(feature = "sqlite")]
        "sqlite" => {
            let store =
                SqliteStore::connect_with(url, &StoreOptions::from_settings(settings)).await?;
            if let Some(path) = sqlite_file(url) {
                crate::obs::info!(
                    "apikey: the key store is the SQLite file {}",
                    path.display()
                );
            }
            Ok(Arc::new(store))
        }
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => Ok(Arc::new(
            PostgresStore::connect_with(url, "apikey", &StoreOptions::from_settings(settings))
                .await?,
        )),
        _ => Err(StoreError::Invalid(format!(
            "unsupported database_url scheme {scheme:?}: use sqlite:, postgres:// or memory:"
        ))),
    }
}
