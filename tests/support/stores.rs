//! Stores under test: fresh memory, SQLite and PostgreSQL stores, and one database shared by
//! several stores as several processes would share it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use apikey_core::conformance::Fixture;
use apikey_core::store::{PostgresStore, SqliteStore};
use apikey_core::{MemoryStore, SharedStore};
use sqlx::Connection;

/// The variable naming the PostgreSQL server for tests; tests needing it are skipped when unset.
pub const POSTGRES_ENV: &str = "APIKEY_TEST_POSTGRES_URL";

/// The test PostgreSQL URL, if configured.
pub fn postgres_url() -> Option<String> {
    std::env::var(POSTGRES_ENV).ok().filter(|u| !u.is_empty())
}

/// A schema name no other test uses.
pub fn unique_schema() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "apikey_test_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

/// Drops a test schema.
pub async fn drop_schema(url: &str, schema: &str) {
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .expect("connect to drop the test schema");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE"
    )))
    .execute(&mut conn)
    .await
    .expect("drop the test schema");
}

/// An empty memory store.
pub async fn memory() -> Option<Fixture> {
    Some(Fixture::new(Arc::new(MemoryStore::new())))
}

/// An empty SQLite store in a fresh file.
pub async fn sqlite_file() -> Option<Fixture> {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("keys.db").display());
    let store: SharedStore = Arc::new(SqliteStore::connect(&url).await.expect("open SQLite"));
    Some(Fixture::with_cleanup(store, async move { drop(dir) }))
}

/// An empty in-memory SQLite store.
pub async fn sqlite_memory() -> Option<Fixture> {
    let store: SharedStore = Arc::new(
        SqliteStore::connect("sqlite::memory:")
            .await
            .expect("open SQLite"),
    );
    Some(Fixture::new(store))
}

/// An empty PostgreSQL store in a fresh schema, dropped afterwards; `None` without a server.
pub async fn postgres() -> Option<Fixture> {
    let url = postgres_url()?;
    let schema = unique_schema();
    let store: SharedStore = Arc::new(
        PostgresStore::connect_in_schema(&url, &schema)
            .await
            .expect("connect to the test PostgreSQL (APIKEY_TEST_POSTGRES_URL)"),
    );
    Some(Fixture::with_cleanup(store, async move {
        drop_schema(&url, &schema).await
    }))
}

/// One database reached by several stores, as several processes would reach it: a fresh
/// SQLite file or a fresh PostgreSQL schema, removed by [`SharedDb::finish`].
pub struct SharedDb {
    /// The database URL.
    pub url: String,
    /// The PostgreSQL schema; `None` for SQLite.
    pub schema: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl SharedDb {
    /// A fresh SQLite file.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("keys.db").display());
        SharedDb {
            url,
            schema: None,
            _dir: Some(dir),
        }
    }

    /// A fresh PostgreSQL schema; `None` (the test is skipped) without a server.
    pub fn postgres() -> Option<Self> {
        let url = postgres_url();
        if url.is_none() {
            eprintln!("skipped: {POSTGRES_ENV} is not set");
        }
        Some(Self::postgres_at(url?))
    }

    /// A fresh schema on the PostgreSQL server at `url`.
    pub fn postgres_at(url: String) -> Self {
        SharedDb {
            url,
            schema: Some(unique_schema()),
            _dir: None,
        }
    }

    /// The folder of the SQLite file (and its `-wal` and `-shm` files).
    pub fn dir(&self) -> Option<&std::path::Path> {
        self._dir.as_ref().map(tempfile::TempDir::path)
    }

    /// A new store (its own connections) on this database.
    pub async fn store(&self) -> SharedStore {
        match &self.schema {
            Some(schema) => Arc::new(
                PostgresStore::connect_in_schema(&self.url, schema)
                    .await
                    .expect("connect to the test PostgreSQL"),
            ),
            None => Arc::new(SqliteStore::connect(&self.url).await.expect("open SQLite")),
        }
    }

    /// A new PostgreSQL store on this schema, reached through `url` (another route to the same
    /// server: a proxy, other connection options).
    pub async fn postgres_store_at(&self, url: &str) -> SharedStore {
        let schema = self.schema.as_deref().expect("a PostgreSQL database");
        Arc::new(
            PostgresStore::connect_in_schema(url, schema)
                .await
                .expect("connect to the test PostgreSQL"),
        )
    }

    /// Removes the database (the schema; the file goes with the value).
    pub async fn finish(self) {
        if let Some(schema) = &self.schema {
            drop_schema(&self.url, schema).await;
        }
    }
}

/// A fresh PostgreSQL database on the test server (for what needs a whole database: the CLI's
/// default `apikey` schema, an Odoo database), dropped by [`PgDatabase::drop`].
pub struct PgDatabase {
    server: String,
    name: String,
    /// The database's URL.
    pub url: String,
}

impl PgDatabase {
    /// Creates it; `None` (the test is skipped) without a server.
    pub async fn create(prefix: &str) -> Option<Self> {
        let server = postgres_url()?;
        let name = format!("{prefix}_{}", unique_schema());
        let mut conn = sqlx::PgConnection::connect(&server)
            .await
            .expect("connect to the test PostgreSQL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create a test database");
        let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        Some(PgDatabase { server, name, url })
    }

    /// Runs SQL statements in it.
    pub async fn run(&self, sql: &str) {
        let mut conn = sqlx::PgConnection::connect(&self.url)
            .await
            .expect("connect to the test database");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut conn)
            .await
            .expect("run SQL in the test database");
    }

    /// Drops it.
    pub async fn drop(self) {
        let mut conn = sqlx::PgConnection::connect(&self.server)
            .await
            .expect("connect to drop the test database");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut conn)
        .await
        .expect("drop the test database");
    }
}

/// Runs each `async fn name(store: SharedStore)` of the calling test file on a fresh memory,
/// SQLite and PostgreSQL store (the last skipped without `APIKEY_TEST_POSTGRES_URL`), as
/// `memory::name`, `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! per_store {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $crate::per_store!(@store $crate::memory(); $($test),*);
        }
        mod sqlite {
            $crate::per_store!(@store $crate::sqlite_file(); $($test),*);
        }
        mod postgres {
            $crate::per_store!(@store $crate::postgres(); $($test),*);
        }
    };
    (@store $make:expr; $($test:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let Some(fixture) = $make.await else {
                    eprintln!("skipped: store not configured");
                    return;
                };
                super::$test(fixture.store.clone()).await;
                fixture.finish().await;
            }
        )*
    };
}
