//! What the SQLite and PostgreSQL stores share: rows, errors, the change encoding, and every
//! query, written once (`tx`: the transaction steps, `lookup`: the request path, `admin`: the
//! writes).
//!
//! The stores are built on sqlx. Both run the same queries (sqlx binds `$n` on both)
//! and differ only in connection setup, migrations and how other processes are told of
//! changes: PostgreSQL by `LISTEN`/`NOTIFY`, SQLite by polling `PRAGMA data_version` and a
//! change log.

use std::sync::Arc;

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::Pool;
use time::OffsetDateTime;

use super::{Change, ChangeFeed, StoreError, StoreResult, UsableDigest};
use crate::key::KeyDigest;
use crate::model::{AllowIp, AuditRecord, Groups, KeyRecord, Meta, Quota, RateLimit, UsageDay};

mod admin;
mod dialect;
mod lookup;
pub(crate) mod migrations;
mod tx;

pub use dialect::{Column, Dialect, Param};
pub(super) use dialect::{FromSql, Sql, Tx};

/// Keys in an SQL database: [`SqliteStore`](super::SqliteStore) (`SqlStore<sqlx::Sqlite>`) or
/// [`PostgresStore`](super::PostgresStore) (`SqlStore<sqlx::Postgres>`). One implementation of
/// [`KeyLookup`](super::KeyLookup), [`KeyMetering`](super::KeyMetering) and
/// [`KeyStore`](super::KeyStore) serves both; what differs is the [`Dialect`].
#[derive(Debug)]
pub struct SqlStore<D: Dialect> {
    pool: Pool<D>,
    changes: Arc<ChangeFeed>,
    /// The change feed's background work, and what notifying needs.
    feed: D::Feed,
}

impl<D: Dialect> SqlStore<D> {
    /// A store on `pool`, migrated, whose changes `changes` announces.
    pub(super) fn new(pool: Pool<D>, changes: Arc<ChangeFeed>, feed: D::Feed) -> Self {
        SqlStore {
            pool,
            changes,
            feed,
        }
    }
}

/// Newest schema version this binary knows (the last migration's number).
pub const SCHEMA_VERSION: i64 = 9;

/// A key's columns, in [`KeyRow`]'s order.
pub(super) const KEY_COLUMNS: &str = "k.name, k.tech_name, k.user_name, k.group_names, k.active, \
     COALESCE(u.active, TRUE) AS user_active, k.stub, k.expires_at, k.created_at, \
     k.last_used_at, k.rate_limit, k.quota, k.allow_ip, k.scopes, k.description, k.meta";
pub(super) const KEY_FROM: &str =
    "FROM apikey_keys k LEFT JOIN apikey_users u ON u.name = k.user_name";

/// A key as [`KEY_COLUMNS`] select it.
pub(super) struct KeyRow {
    pub(super) name: String,
    pub(super) tech_name: String,
    pub(super) user_name: String,
    pub(super) group_names: String,
    pub(super) active: bool,
    pub(super) user_active: bool,
    pub(super) stub: String,
    pub(super) expires_at: Option<i64>,
    pub(super) created_at: i64,
    pub(super) last_used_at: Option<i64>,
    pub(super) rate_limit: Option<String>,
    pub(super) quota: Option<String>,
    pub(super) allow_ip: Option<String>,
    pub(super) scopes: String,
    pub(super) description: Option<String>,
    pub(super) meta: Option<String>,
}

/// An audit trail row.
pub(super) struct AuditRow {
    at: i64,
    actor: String,
    action: String,
    name: String,
    summary: String,
}

impl AuditRow {
    pub(super) fn into_record(self) -> StoreResult<AuditRecord> {
        Ok(AuditRecord {
            at: ts(self.at)?,
            actor: self.actor,
            action: self.action,
            name: self.name,
            summary: self.summary,
        })
    }
}

/// A usage row: one key's requests on one day.
pub(super) struct UsageRow {
    day: i64,
    accepted: i64,
    forbidden: i64,
    limited: i64,
}

impl From<UsageRow> for UsageDay {
    fn from(r: UsageRow) -> Self {
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        UsageDay {
            day: r.day,
            accepted: n(r.accepted),
            forbidden: n(r.forbidden),
            limited: n(r.limited),
        }
    }
}

/// A count as SQL stores it (a signed 64-bit integer).
pub(super) fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A key and one of its secrets.
pub(super) struct MatchRow {
    pub(super) key: KeyRow,
    pub(super) digest: Vec<u8>,
    pub(super) valid_until: Option<i64>,
}

impl KeyRow {
    /// The number of columns [`KEY_COLUMNS`] selects.
    const WIDTH: usize = 16;

    /// Reads [`KEY_COLUMNS`] from column `at` on.
    fn read_at<D: Dialect>(row: &D::Row, at: usize) -> Result<Self, sqlx::Error> {
        Ok(KeyRow {
            name: D::get(row, at)?,
            tech_name: D::get(row, at + 1)?,
            user_name: D::get(row, at + 2)?,
            group_names: D::get(row, at + 3)?,
            active: D::get(row, at + 4)?,
            user_active: D::get(row, at + 5)?,
            stub: D::get(row, at + 6)?,
            expires_at: D::get(row, at + 7)?,
            created_at: D::get(row, at + 8)?,
            last_used_at: D::get(row, at + 9)?,
            rate_limit: D::get(row, at + 10)?,
            quota: D::get(row, at + 11)?,
            allow_ip: D::get(row, at + 12)?,
            scopes: D::get(row, at + 13)?,
            description: D::get(row, at + 14)?,
            meta: D::get(row, at + 15)?,
        })
    }
}

impl FromSql for KeyRow {
    fn read<D: Dialect>(row: &D::Row) -> Result<Self, sqlx::Error> {
        Self::read_at::<D>(row, 0)
    }
}

impl FromSql for MatchRow {
    /// [`KEY_COLUMNS`], then the secret's digest and end of grace.
    fn read<D: Dialect>(row: &D::Row) -> Result<Self, sqlx::Error> {
        Ok(MatchRow {
            key: KeyRow::read_at::<D>(row, 0)?,
            digest: D::get(row, KeyRow::WIDTH)?,
            valid_until: D::get(row, KeyRow::WIDTH + 1)?,
        })
    }
}

impl FromSql for AuditRow {
    /// `at, actor, action, name, summary`.
    fn read<D: Dialect>(row: &D::Row) -> Result<Self, sqlx::Error> {
        Ok(AuditRow {
            at: D::get(row, 0)?,
            actor: D::get(row, 1)?,
            action: D::get(row, 2)?,
            name: D::get(row, 3)?,
            summary: D::get(row, 4)?,
        })
    }
}

impl FromSql for UsageRow {
    /// `day, accepted, forbidden, limited`.
    fn read<D: Dialect>(row: &D::Row) -> Result<Self, sqlx::Error> {
        Ok(UsageRow {
            day: D::get(row, 0)?,
            accepted: D::get(row, 1)?,
            forbidden: D::get(row, 2)?,
            limited: D::get(row, 3)?,
        })
    }
}

pub(super) fn ts(secs: i64) -> StoreResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(secs)
        .map_err(|_| StoreError::Unavailable(format!("corrupt timestamp {secs} in the store")))
}

pub(super) fn opt_ts(secs: Option<i64>) -> StoreResult<Option<OffsetDateTime>> {
    secs.map(ts).transpose()
}

impl KeyRow {
    pub(super) fn into_record(self) -> StoreResult<KeyRecord> {
        let groups: Vec<String> = serde_json::from_str(&self.group_names).map_err(|_| {
            StoreError::Unavailable(format!(
                "corrupt groups of key {:?} in the store",
                self.name
            ))
        })?;
        let rate_limit = self
            .rate_limit
            .map(|l| l.parse::<RateLimit>())
            .transpose()
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "corrupt rate limit of key {:?} in the store",
                    self.name
                ))
            })?;
        let quota = self
            .quota
            .map(|q| q.parse::<Quota>())
            .transpose()
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "corrupt quota of key {:?} in the store",
                    self.name
                ))
            })?;
        let allow_ip = AllowIp::from_stored(self.allow_ip.as_deref()).map_err(|_| {
            StoreError::Unavailable(format!(
                "corrupt address allowlist of key {:?} in the store",
                self.name
            ))
        })?;
        let corrupt = |what: &str| {
            StoreError::Unavailable(format!(
                "corrupt {what} of key {:?} in the store",
                self.name
            ))
        };
        let scopes: Vec<String> =
            serde_json::from_str(&self.scopes).map_err(|_| corrupt("scopes"))?;
        let meta = Meta::from_json(self.meta.as_deref()).map_err(|_| corrupt("metadata"))?;
        Ok(KeyRecord {
            scopes,
            description: self.description,
            meta,
            rate_limit,
            quota,
            allow_ip,
            expires_at: opt_ts(self.expires_at)?,
            created_at: ts(self.created_at)?,
            last_used_at: opt_ts(self.last_used_at)?,
            name: self.name,
            tech_name: self.tech_name,
            user: self.user_name,
            groups,
            active: self.active,
            user_active: self.user_active,
            stub: self.stub,
        })
    }
}

pub(super) fn unavailable(e: sqlx::Error) -> StoreError {
    // sqlx errors name hosts and SQL, never bound values, so they are safe to show.
    StoreError::Unavailable(e.to_string())
}

/// A unique violation on a write: a taken name, or (on the digest) a reused secret.
pub(super) fn write_error(e: sqlx::Error, name: &str) -> StoreError {
    if let Some(db) = e.as_database_error() {
        if db.is_unique_violation() {
            let on_digest = db.constraint().is_some_and(|c| c.contains("secrets"))
                || db.message().contains("apikey_secrets");
            return if on_digest {
                StoreError::Invalid("that secret is already used by a key".into())
            } else {
                StoreError::Duplicate(name.to_owned())
            };
        }
    }
    unavailable(e)
}

/// Where a store's schema stands against this build: the migrations applied (read with a
/// plain query: no DDL) and those this build would apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaStatus {
    /// The newest migration applied (0: none, a new store).
    pub at: i64,
    /// The newest migration this build knows.
    pub needed: i64,
    /// The migrations this build would apply, oldest first: version and description.
    pub pending: Vec<(i64, String)>,
}

impl SchemaStatus {
    /// Compares the applied versions with `migrator`'s; a store ahead of this build is
    /// [`StoreError::TooNew`].
    pub(super) fn of(applied: &[i64], migrator: &Migrator) -> StoreResult<Self> {
        let needed = migrator.iter().map(|m| m.version).max().unwrap_or(0);
        let at = applied.iter().copied().max().unwrap_or(0);
        if at > needed {
            return Err(StoreError::TooNew {
                found: at,
                supported: needed,
            });
        }
        let pending = migrator
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .map(|m| (m.version, m.description.to_string()))
            .collect();
        Ok(SchemaStatus {
            at,
            needed,
            pending,
        })
    }

    /// A store with nothing to apply (the memory store).
    pub fn current() -> Self {
        SchemaStatus {
            at: SCHEMA_VERSION,
            needed: SCHEMA_VERSION,
            pending: Vec::new(),
        }
    }

    /// Whether the store needs no migration.
    pub fn is_current(&self) -> bool {
        self.pending.is_empty()
    }

    /// What opening the store does about it: nothing when current (no DDL at all); with
    /// `auto_migrate` migrate; without it, refuse naming `apikey migrate`.
    pub(super) fn must_migrate(&self, auto_migrate: bool) -> StoreResult<bool> {
        match (self.is_current(), auto_migrate) {
            (true, _) => Ok(false),
            (false, true) => Ok(true),
            (false, false) => Err(StoreError::Behind {
                found: self.at,
                needed: self.needed,
            }),
        }
    }
}

/// The outcome of running `migrator`: a store too new for this binary is named as such.
pub(super) fn migrated(result: Result<(), MigrateError>, migrator: &Migrator) -> StoreResult<()> {
    result.map_err(|e| match e {
        MigrateError::VersionMissing(found) => StoreError::TooNew {
            found,
            supported: migrator.iter().map(|m| m.version).max().unwrap_or(0),
        },
        other => StoreError::Unavailable(format!("migrating the key store failed: {other}")),
    })
}

pub(super) fn now_secs() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

pub(super) fn encode_change(change: &Change) -> (&'static str, &str) {
    match change {
        Change::Key(name) => ("k", name),
        Change::User(name) => ("u", name),
        Change::All => ("*", ""),
    }
}

pub(super) fn decode_change(kind: &str, name: &str) -> Change {
    match kind {
        "k" => Change::Key(name.to_owned()),
        "u" => Change::User(name.to_owned()),
        _ => Change::All,
    }
}

/// Groups as stored: a JSON array of strings.
pub(super) fn groups_json(groups: &Groups) -> StoreResult<String> {
    serde_json::to_string(groups).map_err(|e| StoreError::Invalid(e.to_string()))
}

/// Scopes as stored: a JSON array (already checked and sorted).
pub(super) fn scopes_json(scopes: &[String]) -> String {
    serde_json::to_string(scopes).unwrap_or_else(|_| "[]".into())
}

/// Rows of a digest and, for a key's current secret, the key's stub.
pub(super) fn usable_digests(
    rows: Vec<(Vec<u8>, Option<String>)>,
) -> StoreResult<Vec<UsableDigest>> {
    rows.iter()
        .map(|(d, stub)| {
            KeyDigest::from_slice(d)
                .map(|digest| UsableDigest::of(digest, stub.as_deref()))
                .ok_or_else(|| StoreError::Unavailable("corrupt digest in the store".into()))
        })
        .collect()
}
