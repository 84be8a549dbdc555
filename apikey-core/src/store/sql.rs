//! SQLite and PostgreSQL stores on sqlx. Both run the same queries (sqlx binds `$n` on both)
//! and differ only in connection setup, migrations and how other processes are told of
//! changes: PostgreSQL by `LISTEN`/`NOTIFY`, SQLite by polling `PRAGMA data_version` and a
//! change log.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::FromRow;
use std::sync::Arc;
use time::OffsetDateTime;

use super::{edited_groups, validate_new, ChangeFeed, KeyStore, StoreError};
use crate::task::Background;
use crate::{normalize_groups, Change, Digest, KeyRecord, Match, NewKey};

/// Newest schema version this binary knows (the last migration's number).
pub const SCHEMA_VERSION: i64 = 2;

const KEY_COLUMNS: &str = "k.name, k.tech_name, k.user_name, k.group_names, k.active, \
     COALESCE(u.active, TRUE) AS user_active, k.stub, k.expires_at, k.created_at, \
     k.last_used_at, k.rate_limit";
const KEY_FROM: &str = "FROM apikey_keys k LEFT JOIN apikey_users u ON u.name = k.user_name";

#[derive(FromRow)]
struct KeyRow {
    name: String,
    tech_name: String,
    user_name: String,
    group_names: String,
    active: bool,
    user_active: bool,
    stub: String,
    expires_at: Option<i64>,
    created_at: i64,
    last_used_at: Option<i64>,
    rate_limit: Option<String>,
}

#[derive(FromRow)]
struct MatchRow {
    #[sqlx(flatten)]
    key: KeyRow,
    digest: Vec<u8>,
    valid_until: Option<i64>,
}

fn ts(secs: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp(secs)
        .map_err(|_| StoreError::Unavailable(format!("corrupt timestamp {secs} in the store")))
}

fn opt_ts(secs: Option<i64>) -> Result<Option<OffsetDateTime>, StoreError> {
    secs.map(ts).transpose()
}

impl KeyRow {
    fn into_record(self) -> Result<KeyRecord, StoreError> {
        let groups: Vec<String> = serde_json::from_str(&self.group_names).map_err(|_| {
            StoreError::Unavailable(format!(
                "corrupt groups of key {:?} in the store",
                self.name
            ))
        })?;
        Ok(KeyRecord {
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
            rate_limit: self.rate_limit,
        })
    }
}

fn unavailable(e: sqlx::Error) -> StoreError {
    // sqlx errors name hosts and SQL, never bound values, so they are safe to show.
    StoreError::Unavailable(e.to_string())
}

/// A unique violation on a write: a taken name, or (on the digest) a reused secret.
fn write_error(e: sqlx::Error, name: &str) -> StoreError {
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

fn migrate_error(e: MigrateError, migrator: &Migrator) -> StoreError {
    match e {
        MigrateError::VersionMissing(found) => StoreError::TooNew {
            found,
            supported: migrator.iter().map(|m| m.version).max().unwrap_or(0),
        },
        other => StoreError::Unavailable(format!("migrating the key store failed: {other}")),
    }
}

fn now_secs() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn encode_change(change: &Change) -> (&'static str, &str) {
    match change {
        Change::Key(name) => ("k", name),
        Change::User(name) => ("u", name),
        Change::All => ("*", ""),
    }
}

fn decode_change(kind: &str, name: &str) -> Change {
    match kind {
        "k" => Change::Key(name.to_owned()),
        "u" => Change::User(name.to_owned()),
        _ => Change::All,
    }
}

/// The store operations, written once for both databases.
macro_rules! sql_store {
    ($store:ident, $db:ty) => {
        impl $store {
            /// Locks the key named `name` for the rest of the transaction and returns its id.
            /// A write comes first on purpose: on PostgreSQL it takes the row lock (so concurrent
            /// read-modify-writes of one key run one after the other, each seeing the last one's
            /// result), on SQLite the database's write lock (a read first would let two
            /// transactions read the same state).
            async fn lock_key(
                tx: &mut sqlx::Transaction<'static, $db>,
                name: &str,
            ) -> Result<i64, StoreError> {
                sqlx::query_scalar::<_, i64>(
                    "UPDATE apikey_keys SET id = id WHERE name = $1 RETURNING id",
                )
                .bind(name)
                .fetch_optional(&mut **tx)
                .await
                .map_err(unavailable)?
                .ok_or_else(|| StoreError::NotFound(name.to_owned()))
            }

            /// The key as this transaction sees it.
            async fn record_in(
                tx: &mut sqlx::Transaction<'static, $db>,
                name: &str,
            ) -> Result<KeyRecord, StoreError> {
                let sql = format!("SELECT {KEY_COLUMNS} {KEY_FROM} WHERE k.name = $1");
                let row: Option<KeyRow> = sqlx::query_as(&sql)
                    .bind(name)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(unavailable)?;
                row.ok_or_else(|| StoreError::NotFound(name.to_owned()))?
                    .into_record()
            }

            /// Sets one column of the key named `name`, atomically, and announces the change.
            async fn update_key<T>(
                &self,
                name: &str,
                sql: &'static str,
                value: T,
            ) -> Result<KeyRecord, StoreError>
            where
                T: for<'q> sqlx::Encode<'q, $db> + sqlx::Type<$db> + Send + 'static,
            {
                let mut tx = self.pool.begin().await.map_err(unavailable)?;
                let done = sqlx::query(sql)
                    .bind(value)
                    .bind(name)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(name.to_owned()));
                }
                self.finish(tx, name).await
            }

            /// Commits a change of the key `name` and returns the key as the transaction left it.
            async fn finish(
                &self,
                mut tx: sqlx::Transaction<'static, $db>,
                name: &str,
            ) -> Result<KeyRecord, StoreError> {
                let record = Self::record_in(&mut tx, name).await?;
                self.commit(tx, Change::Key(name.to_owned())).await?;
                Ok(record)
            }

            /// Announces the change to other processes (inside the transaction), commits, and
            /// announces it in this process. The commit and the announcement run in a task of
            /// their own, so a caller that stops waiting (a cancelled future) cannot leave a
            /// committed change unannounced here. The change is announced even when the commit
            /// reports an error: the commit may have landed all the same, and a needless
            /// invalidation costs only a lookup.
            async fn commit(
                &self,
                mut tx: sqlx::Transaction<'static, $db>,
                change: Change,
            ) -> Result<(), StoreError> {
                self.notify(&mut tx, &change).await?;
                let changes = Arc::clone(&self.changes);
                tokio::spawn(async move {
                    let done = tx.commit().await.map_err(unavailable);
                    changes.announce(change);
                    done
                })
                .await
                .map_err(|e| StoreError::Unavailable(format!("committing failed: {e}")))?
            }
        }

        #[async_trait]
        impl KeyStore for $store {
            async fn find_by_digest(&self, digest: &Digest) -> Result<Option<Match>, StoreError> {
                let sql = format!(
                    "SELECT {KEY_COLUMNS}, s.digest, s.valid_until FROM apikey_secrets s \
                     JOIN apikey_keys k ON k.id = s.key_id \
                     LEFT JOIN apikey_users u ON u.name = k.user_name WHERE s.digest = $1"
                );
                let row: Option<MatchRow> = sqlx::query_as(&sql)
                    .bind(digest.as_bytes().to_vec())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(unavailable)?;
                let Some(row) = row else { return Ok(None) };
                let digest = Digest::from_slice(&row.digest)
                    .ok_or_else(|| StoreError::Unavailable("corrupt digest in the store".into()))?;
                Ok(Some(Match {
                    valid_until: opt_ts(row.valid_until)?,
                    record: row.key.into_record()?,
                    digest,
                }))
            }

            async fn get(&self, name: &str) -> Result<Option<KeyRecord>, StoreError> {
                let sql = format!("SELECT {KEY_COLUMNS} {KEY_FROM} WHERE k.name = $1");
                let row: Option<KeyRow> = sqlx::query_as(&sql)
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(unavailable)?;
                row.map(KeyRow::into_record).transpose()
            }

            async fn get_by_tech_name(
                &self,
                tech_name: &str,
            ) -> Result<Option<KeyRecord>, StoreError> {
                let sql = format!("SELECT {KEY_COLUMNS} {KEY_FROM} WHERE k.tech_name = $1");
                let row: Option<KeyRow> = sqlx::query_as(&sql)
                    .bind(tech_name)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(unavailable)?;
                row.map(KeyRow::into_record).transpose()
            }

            async fn list(&self) -> Result<Vec<KeyRecord>, StoreError> {
                let sql = format!("SELECT {KEY_COLUMNS} {KEY_FROM} ORDER BY k.name");
                let rows: Vec<KeyRow> = sqlx::query_as(&sql)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(unavailable)?;
                rows.into_iter().map(KeyRow::into_record).collect()
            }

            async fn create(&self, new: NewKey) -> Result<KeyRecord, StoreError> {
                let tech_name = validate_new(&new)?;
                let groups = groups_json(&normalize_groups(&new.groups))?;
                let mut tx = self.pool.begin().await.map_err(unavailable)?;
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO apikey_keys \
                     (name, tech_name, user_name, group_names, active, stub, expires_at, created_at, \
                     rate_limit) VALUES ($1, $2, $3, $4, TRUE, $5, $6, $7, $8) RETURNING id",
                )
                .bind(&new.name)
                .bind(&tech_name)
                .bind(&new.user)
                .bind(&groups)
                .bind(&new.stub)
                .bind(new.expires_at.map(OffsetDateTime::unix_timestamp))
                .bind(now_secs())
                .bind(&new.rate_limit)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| write_error(e, &new.name))?;
                sqlx::query("INSERT INTO apikey_secrets (digest, key_id) VALUES ($1, $2)")
                    .bind(new.digest.as_bytes().to_vec())
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| write_error(e, &new.name))?;
                self.finish(tx, &new.name).await
            }

            async fn set_active(&self, name: &str, active: bool) -> Result<KeyRecord, StoreError> {
                self.update_key(name, "UPDATE apikey_keys SET active = $1 WHERE name = $2", active)
                    .await
            }

            async fn delete(&self, name: &str) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await.map_err(unavailable)?;
                let id = Self::lock_key(&mut tx, name).await?;
                sqlx::query("DELETE FROM apikey_secrets WHERE key_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                sqlx::query("DELETE FROM apikey_keys WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                self.commit(tx, Change::Key(name.to_owned())).await
            }

            async fn rotate(
                &self,
                name: &str,
                digest: Digest,
                stub: String,
                old_valid_until: Option<OffsetDateTime>,
            ) -> Result<KeyRecord, StoreError> {
                let now = now_secs();
                let until = old_valid_until
                    .map(OffsetDateTime::unix_timestamp)
                    .filter(|t| *t > now);
                let mut tx = self.pool.begin().await.map_err(unavailable)?;
                let id = Self::lock_key(&mut tx, name).await?;
                match until {
                    // Secrets already in grace keep their own, earlier end.
                    Some(until) => sqlx::query(
                        "UPDATE apikey_secrets SET valid_until = $1 \
                         WHERE key_id = $2 AND (valid_until IS NULL OR valid_until > $1)",
                    )
                    .bind(until)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?,
                    None => sqlx::query("DELETE FROM apikey_secrets WHERE key_id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(unavailable)?,
                };
                sqlx::query(
                    "DELETE FROM apikey_secrets WHERE key_id = $1 AND valid_until <= $2",
                )
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
                sqlx::query("INSERT INTO apikey_secrets (digest, key_id) VALUES ($1, $2)")
                    .bind(digest.as_bytes().to_vec())
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| write_error(e, name))?;
                sqlx::query("UPDATE apikey_keys SET stub = $1 WHERE id = $2")
                    .bind(&stub)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                self.finish(tx, name).await
            }

            async fn set_groups(
                &self,
                name: &str,
                groups: Vec<String>,
            ) -> Result<KeyRecord, StoreError> {
                crate::check_groups(&groups).map_err(StoreError::Invalid)?;
                let groups = groups_json(&normalize_groups(&groups))?;
                self.update_key(
                    name,
                    "UPDATE apikey_keys SET group_names = $1 WHERE name = $2",
                    groups,
                )
                .await
            }

            async fn edit_groups(
                &self,
                name: &str,
                add: &[String],
                remove: &[String],
            ) -> Result<KeyRecord, StoreError> {
                crate::check_groups(add).map_err(StoreError::Invalid)?;
                let mut tx = self.pool.begin().await.map_err(unavailable)?;
                let id = Self::lock_key(&mut tx, name).await?;
                let current = Self::record_in(&mut tx, name).await?;
                let groups = edited_groups(&current.groups, add, remove);
                sqlx::query("UPDATE apikey_keys SET group_names = $1 WHERE id = $2")
                    .bind(groups_json(&groups)?)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                self.commit(tx, Change::Key(name.to_owned())).await?;
                Ok(KeyRecord { groups, ..current })
            }

            async fn set_rate_limit(
                &self,
                name: &str,
                rate_limit: Option<String>,
            ) -> Result<KeyRecord, StoreError> {
                crate::store::check_rate_limit(rate_limit.as_deref())?;
                self.update_key(
                    name,
                    "UPDATE apikey_keys SET rate_limit = $1 WHERE name = $2",
                    rate_limit,
                )
                .await
            }

            async fn touch(&self, names: &[String], at: OffsetDateTime) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await.map_err(unavailable)?;
                for name in names {
                    sqlx::query(
                        "UPDATE apikey_keys SET last_used_at = $1 \
                         WHERE name = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
                    )
                    .bind(at.unix_timestamp())
                    .bind(name)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                }
                // Not a change of what verification depends on: no notification.
                tx.commit().await.map_err(unavailable)
            }

            async fn set_user_active(&self, user: &str, active: bool) -> Result<u64, StoreError> {
                if user.trim().is_empty() {
                    return Err(StoreError::Invalid("a user name cannot be empty".into()));
                }
                let mut tx = self.pool.begin().await.map_err(unavailable)?;
                sqlx::query(
                    "INSERT INTO apikey_users (name, active) VALUES ($1, $2) \
                     ON CONFLICT (name) DO UPDATE SET active = excluded.active",
                )
                .bind(user)
                .bind(active)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
                let count: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM apikey_keys WHERE user_name = $1")
                        .bind(user)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(unavailable)?;
                self.commit(tx, Change::User(user.to_owned())).await?;
                Ok(count.max(0) as u64)
            }

            async fn user_active(&self, user: &str) -> Result<bool, StoreError> {
                let active: Option<bool> =
                    sqlx::query_scalar("SELECT active FROM apikey_users WHERE name = $1")
                        .bind(user)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(unavailable)?;
                Ok(active.unwrap_or(true))
            }

            fn changes(&self) -> &ChangeFeed {
                &self.changes
            }

            async fn all_digests(&self) -> Result<Option<Vec<Digest>>, StoreError> {
                let rows: Vec<Vec<u8>> = sqlx::query_scalar("SELECT digest FROM apikey_secrets")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(unavailable)?;
                digests(rows).map(Some)
            }

            async fn digests_of(&self, name: &str) -> Result<Option<Vec<Digest>>, StoreError> {
                let rows: Vec<Vec<u8>> = sqlx::query_scalar(
                    "SELECT s.digest FROM apikey_secrets s JOIN apikey_keys k ON k.id = s.key_id \
                     WHERE k.name = $1",
                )
                .bind(name)
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)?;
                digests(rows).map(Some)
            }
        }
    };
}

/// Groups as stored: a JSON array of strings.
fn groups_json(groups: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(groups).map_err(|e| StoreError::Invalid(e.to_string()))
}

fn digests(rows: Vec<Vec<u8>>) -> Result<Vec<Digest>, StoreError> {
    rows.iter()
        .map(|d| {
            Digest::from_slice(d)
                .ok_or_else(|| StoreError::Unavailable("corrupt digest in the store".into()))
        })
        .collect()
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use std::str::FromStr;

    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
    use sqlx::{Connection, SqliteConnection, SqlitePool};

    use super::*;

    static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

    /// How often other processes' changes are looked for.
    const POLL: Duration = Duration::from_millis(100);

    /// Keys in an SQLite file (or `sqlite::memory:`), for services on one machine.
    #[derive(Debug)]
    pub struct SqliteStore {
        pool: SqlitePool,
        changes: Arc<ChangeFeed>,
        _watcher: Option<Background>,
    }

    impl SqliteStore {
        /// Opens (with `mode=rwc`, creates) the database and migrates it. Other processes'
        /// changes are picked up by polling `PRAGMA data_version` every 100 ms.
        pub async fn connect(url: &str) -> Result<Self, StoreError> {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::Invalid(format!("bad SQLite database_url: {e}")))?
                .busy_timeout(Duration::from_secs(10));
            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
            let options = if in_memory {
                options
            } else {
                if url.contains("mode=rwc") {
                    create_private(options.get_filename())?;
                }
                options.journal_mode(SqliteJournalMode::Wal)
            };
            // Every connection to an in-memory database is a database of its own: keep one.
            let pool_options = if in_memory {
                SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
            } else {
                SqlitePoolOptions::new().max_connections(8)
            };
            let pool = pool_options
                .connect_with(options.clone())
                .await
                .map_err(unavailable)?;
            MIGRATOR
                .run(&pool)
                .await
                .map_err(|e| migrate_error(e, &MIGRATOR))?;
            let changes = Arc::new(ChangeFeed::default());
            let watcher = if in_memory {
                None
            } else {
                let mut conn = SqliteConnection::connect_with(&options)
                    .await
                    .map_err(unavailable)?;
                let start = baseline(&mut conn).await?;
                Some(Background(tokio::spawn(watch(
                    conn,
                    start,
                    Arc::clone(&changes),
                ))))
            };
            Ok(SqliteStore {
                pool,
                changes,
                _watcher: watcher,
            })
        }

        /// Logs the change for other processes' watchers (and this one's: see [`watch`]).
        async fn notify(
            &self,
            tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
            change: &Change,
        ) -> Result<(), StoreError> {
            let (kind, name) = encode_change(change);
            let now = now_secs();
            sqlx::query("INSERT INTO apikey_changes (kind, name, at) VALUES ($1, $2, $3)")
                .bind(kind)
                .bind(name)
                .bind(now)
                .execute(&mut **tx)
                .await
                .map_err(unavailable)?;
            // The log only serves processes polling right now; an hour is plenty.
            sqlx::query("DELETE FROM apikey_changes WHERE at < $1")
                .bind(now - 3600)
                .execute(&mut **tx)
                .await
                .map_err(unavailable)?;
            Ok(())
        }
    }

    /// Creates the database file, readable and writable by its owner only, when it does not
    /// exist yet. SQLite gives its `-wal` and `-shm` files the permissions of the database
    /// file, so they are private too. An existing file keeps the permissions it has.
    fn create_private(path: &std::path::Path) -> Result<(), StoreError> {
        let mut open = std::fs::OpenOptions::new();
        open.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
        match open.open(path) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            // A missing folder: SQLite reports it with its own message.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::Unavailable(format!(
                "cannot create the SQLite file {}: {e}",
                path.display()
            ))),
        }
    }

    /// The change log position a new watcher starts from: everything after it is news.
    async fn baseline(conn: &mut SqliteConnection) -> Result<(i64, i64), StoreError> {
        let version = sqlx::query_scalar::<_, i64>("PRAGMA data_version")
            .fetch_one(&mut *conn)
            .await
            .map_err(unavailable)?;
        let last_id =
            sqlx::query_scalar::<_, i64>("SELECT COALESCE(MAX(id), 0) FROM apikey_changes")
                .fetch_one(&mut *conn)
                .await
                .map_err(unavailable)?;
        Ok((version, last_id))
    }

    /// What a poll read from the change log, given the last id seen before it.
    #[derive(Debug, PartialEq, Eq)]
    pub(crate) enum News {
        /// These changes, in order.
        Changes(Vec<Change>),
        /// Ids are missing after the last one seen (pruned while this process was not
        /// looking): anything may have changed.
        Gap,
    }

    /// Reads the rows after `last_id`. Ids are consecutive (AUTOINCREMENT, and a rolled-back
    /// insert gives its id back), so a hole means rows were pruned before they were read.
    pub(crate) fn news(last_id: i64, rows: &[(i64, String, String)]) -> News {
        let mut expected = last_id + 1;
        let mut out = Vec::with_capacity(rows.len());
        for (id, kind, name) in rows {
            if *id != expected {
                return News::Gap;
            }
            expected = id + 1;
            out.push(decode_change(kind, name));
        }
        News::Changes(out)
    }

    /// Polls `PRAGMA data_version` (it changes when another connection commits) and forwards
    /// the change log entries written since the last poll, this process' own included (they
    /// were announced when written; announcing them again costs a lookup and guarantees they
    /// are seen whatever happened to the writer). A gap in the log, or a failing check, drops
    /// everything ([`Change::All`]); while the check fails the feed is marked not live.
    async fn watch(
        mut conn: SqliteConnection,
        (mut version, mut last_id): (i64, i64),
        changes: Arc<ChangeFeed>,
    ) {
        let mut ticker = tokio::time::interval(POLL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let v = match sqlx::query_scalar::<_, i64>("PRAGMA data_version")
                .fetch_one(&mut conn)
                .await
            {
                Ok(v) => v,
                Err(e) => {
                    if changes.is_live() {
                        log::warn!("apikey: checking the SQLite store for changes failed: {e}");
                    }
                    changes.set_live(false);
                    continue;
                }
            };
            if v == version && changes.is_live() {
                continue;
            }
            let rows: Result<Vec<(i64, String, String)>, _> = sqlx::query_as(
                "SELECT id, kind, name FROM apikey_changes WHERE id > $1 ORDER BY id",
            )
            .bind(last_id)
            .fetch_all(&mut conn)
            .await;
            let rows = match rows {
                Ok(rows) => rows,
                Err(e) => {
                    if changes.is_live() {
                        log::warn!("apikey: reading SQLite store changes failed: {e}");
                    }
                    changes.set_live(false);
                    continue;
                }
            };
            version = v;
            // Back to live (announces everything if it was not).
            changes.set_live(true);
            match news(last_id, &rows) {
                News::Gap => {
                    log::warn!(
                        "apikey: SQLite store changes were pruned before this process read them; \
                         dropping every cached verification"
                    );
                    changes.announce(Change::All);
                }
                News::Changes(list) => {
                    for change in list {
                        changes.announce(change);
                    }
                }
            }
            if let Some((id, _, _)) = rows.last() {
                last_id = *id;
            }
        }
    }

    sql_store!(SqliteStore, sqlx::Sqlite);
}

#[cfg(feature = "postgres")]
mod postgres {
    use std::str::FromStr;

    use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
    use sqlx::{Executor, PgPool};

    use super::*;

    static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

    /// Keys in PostgreSQL, for many service instances sharing one key store. Tables live in a
    /// schema of their own (`apikey` by default).
    #[derive(Debug)]
    pub struct PostgresStore {
        pool: PgPool,
        changes: Arc<ChangeFeed>,
        /// The `NOTIFY` channel of this schema.
        notify_as: String,
        _listener: Background,
    }

    /// Whether `schema` is a plain identifier we can put in SQL unquoted.
    fn valid_schema(schema: &str) -> bool {
        !schema.is_empty()
            && schema.len() <= 48
            && schema
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && !schema.as_bytes()[0].is_ascii_digit()
    }

    impl PostgresStore {
        /// Connects, creates the `apikey` schema if needed, migrates it and starts listening
        /// for other processes' changes.
        pub async fn connect(url: &str) -> Result<Self, StoreError> {
            Self::connect_in_schema(url, "apikey").await
        }

        /// Like [`connect`](Self::connect), with the tables in `schema` (lowercase letters,
        /// digits and `_`).
        pub async fn connect_in_schema(url: &str, schema: &str) -> Result<Self, StoreError> {
            if !valid_schema(schema) {
                return Err(StoreError::Invalid(format!(
                    "schema name {schema:?} must be lowercase letters, digits and _"
                )));
            }
            let options = PgConnectOptions::from_str(url)
                .map_err(|e| StoreError::Invalid(format!("bad PostgreSQL database_url: {e}")))?
                .options([("search_path", schema)]);
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(3))
                .connect_with(options)
                .await
                .map_err(unavailable)?;
            pool.execute(format!("CREATE SCHEMA IF NOT EXISTS {schema}").as_str())
                .await
                .map_err(unavailable)?;
            MIGRATOR
                .run(&pool)
                .await
                .map_err(|e| migrate_error(e, &MIGRATOR))?;
            let channel = format!("apikey_changes_{schema}");
            let changes = Arc::new(ChangeFeed::default());
            let mut listener = PgListener::connect_with(&pool).await.map_err(unavailable)?;
            listener.listen(&channel).await.map_err(unavailable)?;
            let listener = Background(tokio::spawn(listen(
                listener,
                pool.clone(),
                channel.clone(),
                Arc::clone(&changes),
            )));
            Ok(PostgresStore {
                pool,
                changes,
                notify_as: channel,
                _listener: listener,
            })
        }

        async fn notify(
            &self,
            tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
            change: &Change,
        ) -> Result<(), StoreError> {
            let (kind, name) = encode_change(change);
            // Delivered at commit to every listener, ours included (a repeated
            // invalidation is harmless).
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(&self.notify_as)
                .bind(format!("{kind}:{name}"))
                .execute(&mut **tx)
                .await
                .map_err(unavailable)?;
            Ok(())
        }
    }

    /// Forwards notifications. When the connection is lost, caches keep what they hold (the
    /// TTL bounds it) and a new listener is tried every second; once it listens again,
    /// [`Change::All`] is announced, since changes may have been missed meanwhile.
    async fn listen(
        mut listener: PgListener,
        pool: PgPool,
        channel: String,
        changes: Arc<ChangeFeed>,
    ) {
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => {
                    let (kind, name) = n.payload().split_once(':').unwrap_or(("*", ""));
                    changes.announce(decode_change(kind, name));
                    continue;
                }
                Ok(None) => {
                    log::warn!("apikey: lost the PostgreSQL notification connection");
                }
                Err(e) => log::warn!("apikey: PostgreSQL notifications failed: {e}"),
            }
            // Cached verifications live on to their TTL; what needs every change (the digest
            // filter) stops trusting the feed until it is back.
            changes.set_live(false);
            listener = loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let attempt = async {
                    let mut l = PgListener::connect_with(&pool).await?;
                    l.listen(&channel).await?;
                    Ok::<_, sqlx::Error>(l)
                };
                match attempt.await {
                    Ok(l) => break l,
                    Err(e) => log::debug!("apikey: PostgreSQL notifications still down: {e}"),
                }
            };
            log::info!("apikey: PostgreSQL notifications restored");
            changes.set_live(true);
        }
    }

    sql_store!(PostgresStore, sqlx::Postgres);
}

#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
