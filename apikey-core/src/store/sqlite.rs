//! Keys in an SQLite file: one machine, several processes. Other processes learn of changes
//! by polling `PRAGMA data_version` and a change log.

use std::str::FromStr;

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Connection, Row, Sqlite, SqliteConnection};

use super::sql::migrations;
use super::sql::{
    decode_change, encode_change, migrated, now_secs, unavailable, Column, Dialect, Param, Sql,
    SqlStore, Tx,
};
use super::{Change, ChangeFeed, SchemaStatus, StoreError, StoreOptions, StoreResult};
use crate::task::Background;

static MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| migrations::migrator(migrations::SQLITE));

/// How often other processes' changes are looked for. `PRAGMA data_version` reads no page
/// of the database, so a poll costs next to nothing; a change made elsewhere reaches this
/// process' caches within one poll.
const POLL: Duration = Duration::from_millis(5);

/// Keys in an SQLite file (or `sqlite::memory:`), for services on one machine.
pub type SqliteStore = SqlStore<Sqlite>;

/// SQLite's part: the change log, and the task polling it (none for an in-memory database).
#[derive(Debug)]
pub struct SqliteFeed {
    _watcher: Option<Background>,
}

impl Dialect for Sqlite {
    const FIND: &'static str = "instr";

    type Feed = SqliteFeed;

    fn add<P: Param>(args: &mut Self::Arguments, value: P) -> Result<(), sqlx::Error> {
        sqlx::Arguments::add(args, value).map_err(sqlx::Error::Encode)
    }

    fn get<C: Column>(row: &Self::Row, i: usize) -> Result<C, sqlx::Error> {
        row.try_get(i)
    }

    fn rows_affected(done: &Self::QueryResult) -> u64 {
        done.rows_affected()
    }

    fn pool(pool: &sqlx::Pool<Self>) -> impl sqlx::Executor<'_, Database = Self> {
        pool
    }

    fn tx(tx: &mut Tx<Self>) -> impl sqlx::Executor<'_, Database = Self> {
        &mut **tx
    }

    /// Logs the change for other processes' watchers (and this one's: see [`watch`]).
    async fn notify(_feed: &SqliteFeed, tx: &mut Tx<Self>, change: &Change) -> StoreResult<()> {
        let (kind, name) = encode_change(change);
        let now = now_secs();
        Sql::<Sqlite>::new("INSERT INTO apikey_changes (kind, name, at) VALUES ($1, $2, $3)")
            .bind(kind)
            .bind(name)
            .bind(now)
            .execute(&mut **tx)
            .await
            .map_err(unavailable)?;
        // The log only serves processes polling right now; an hour is plenty.
        Sql::<Sqlite>::new("DELETE FROM apikey_changes WHERE at < $1")
            .bind(now - 3600)
            .execute(&mut **tx)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

impl SqlStore<Sqlite> {
    /// Opens (with `mode=rwc`, creates) the database and migrates it. Other processes'
    /// changes are picked up by polling `PRAGMA data_version` every 5 ms.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_with(url, &StoreOptions::default()).await
    }

    /// Like [`connect`](Self::connect), with the pool `feed` asks for; the change check is the
    /// feed's heartbeat: while it fails, or does not answer within two `feed.heartbeat`
    /// periods, the feed is not live.
    pub async fn connect_with(url: &str, feed: &StoreOptions) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("bad SQLite database_url: {e}")))?
            .busy_timeout(Duration::from_secs(10));
        let in_memory = in_memory(url);
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
            SqlitePoolOptions::new().max_connections(feed.pool_size.max(1))
        };
        let pool = pool_options
            .acquire_timeout(feed.pool_timeout)
            .connect_with(options.clone())
            .await
            .map_err(unavailable)?;
        Self::from_pool_in(pool, in_memory, feed).await
    }

    /// A store on an application's own SQLite pool (its size and timeouts are the
    /// application's), migrated. The change check gets a connection of its own, made with the
    /// pool's options (an in-memory database has no other writer and needs none).
    pub async fn from_pool(pool: sqlx::SqlitePool, feed: &StoreOptions) -> StoreResult<Self> {
        let options = pool.connect_options();
        let file = options.get_filename().to_string_lossy().into_owned();
        let in_memory = file.is_empty() || file == ":memory:" || file.contains("mode=memory");
        Self::from_pool_in(pool, in_memory, feed).await
    }

    async fn from_pool_in(
        pool: sqlx::SqlitePool,
        in_memory: bool,
        feed: &StoreOptions,
    ) -> StoreResult<Self> {
        if schema_status(&pool)
            .await?
            .must_migrate(feed.auto_migrate)?
        {
            migrate_beside_others(&pool).await?;
        }
        let options = (*pool.connect_options()).clone();
        // Live from the start: the watcher follows the change log from its current end (an
        // in-memory database has no other writer).
        let changes = Arc::new(ChangeFeed::live());
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
                feed.silence_limit(),
            ))))
        };
        Ok(SqlStore::new(
            pool,
            changes,
            SqliteFeed { _watcher: watcher },
        ))
    }
}

/// Creates the database file, readable and writable by its owner only, when it does not
/// exist yet. SQLite gives its `-wal` and `-shm` files the permissions of the database
/// file, so they are private too. An existing file keeps the permissions it has.
/// Where the schema of the database behind `pool` stands (plain reads, no DDL).
pub(crate) async fn schema_status(pool: &sqlx::SqlitePool) -> StoreResult<SchemaStatus> {
    let table: Option<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_optional(pool)
    .await
    .map_err(unavailable)?;
    let applied: Vec<i64> = match table {
        None => Vec::new(),
        Some(_) => sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await
            .map_err(unavailable)?,
    };
    SchemaStatus::of(&applied, &MIGRATOR)
}

/// Migrates, while another process may be migrating the same new file (SQLite has no migration
/// lock: two first starts at once both find it empty): when a migration fails, the store is
/// taken as it is once the other process has brought it up to date (within 10 s).
async fn migrate_beside_others(pool: &sqlx::SqlitePool) -> StoreResult<()> {
    let Err(e) = migrated(MIGRATOR.run(pool).await, &MIGRATOR) else {
        return Ok(());
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        if schema_status(pool).await.is_ok_and(|s| s.is_current()) {
            crate::obs::info!("apikey: another process migrated the key store meanwhile");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(e)
}

/// Applies the migrations the database behind `pool` lacks; returns where it stood before.
pub(crate) async fn migrate(pool: &sqlx::SqlitePool) -> StoreResult<SchemaStatus> {
    let before = schema_status(pool).await?;
    migrated(MIGRATOR.run(pool).await, &MIGRATOR)?;
    Ok(before)
}

/// Whether a SQLite URL names an in-memory database (no file, no other writer).
pub(crate) fn in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

fn create_private(path: &std::path::Path) -> StoreResult<()> {
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
async fn baseline(conn: &mut SqliteConnection) -> StoreResult<(i64, i64)> {
    let version = sqlx::query_scalar::<_, i64>("PRAGMA data_version")
        .fetch_one(&mut *conn)
        .await
        .map_err(unavailable)?;
    let last_id = sqlx::query_scalar::<_, i64>("SELECT COALESCE(MAX(id), 0) FROM apikey_changes")
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
/// everything ([`Change::All`]); while the check fails, or takes longer than `silence`, the
/// feed is marked not live.
async fn watch(
    mut conn: SqliteConnection,
    (mut version, mut last_id): (i64, i64),
    changes: Arc<ChangeFeed>,
    silence: Duration,
) {
    let mut ticker = tokio::time::interval(POLL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    changes.attach_poller();
    loop {
        // Every few milliseconds, or at once when a request asks (`ChangeFeed::check_now`).
        tokio::select! {
            _ = ticker.tick() => {}
            () = changes.poked() => {}
        }
        let serving = changes.check_starts();
        check_once(&mut conn, &mut version, &mut last_id, &changes, silence).await;
        changes.check_done(serving);
    }
}

/// One change check: `PRAGMA data_version` (no page read), and the change log when it moved.
async fn check_once(
    conn: &mut SqliteConnection,
    version: &mut i64,
    last_id: &mut i64,
    changes: &ChangeFeed,
    silence: Duration,
) {
    let check = sqlx::query_scalar::<_, i64>("PRAGMA data_version").fetch_one(&mut *conn);
    let v = match tokio::time::timeout(silence, check).await {
        Ok(Ok(v)) => v,
        Err(_) => {
            if changes.is_live() {
                crate::obs::warning!(
                    "apikey: the SQLite change check did not answer within {silence:?}"
                );
            }
            changes.set_live(false);
            return;
        }
        Ok(Err(e)) => {
            if changes.is_live() {
                crate::obs::warning!("apikey: checking the SQLite store for changes failed: {e}");
            }
            changes.set_live(false);
            return;
        }
    };
    if v == *version && changes.is_live() {
        return;
    }
    let rows: Result<Vec<(i64, String, String)>, _> =
        sqlx::query_as("SELECT id, kind, name FROM apikey_changes WHERE id > $1 ORDER BY id")
            .bind(*last_id)
            .fetch_all(&mut *conn)
            .await;
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => {
            if changes.is_live() {
                crate::obs::warning!("apikey: reading SQLite store changes failed: {e}");
            }
            changes.set_live(false);
            return;
        }
    };
    *version = v;
    changes.set_live(true);
    match news(*last_id, &rows) {
        News::Gap => {
            crate::obs::warning!(
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
        *last_id = *id;
    }
}
