//! Helpers shared by the integration tests: stores under test and Rocket clients.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use apikey_core::conformance::Fixture;
use apikey_core::store::{PostgresStore, SqliteStore};
use apikey_core::{MemoryStore, SharedStore};
use rocket::figment::providers::{Format, Toml};
use rocket::local::asynchronous::Client;

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
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .expect("connect to drop the test schema");
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
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

/// A Rocket client of `rocket` with `toml` merged into its configuration (Rocket.toml syntax
/// with profiles, e.g. `[default.apikey]`).
pub fn rocket_with(toml: &str) -> rocket::Rocket<rocket::Build> {
    let figment = rocket::Config::figment()
        .merge(Toml::string(toml).nested())
        .merge(("log_level", "off"));
    rocket::custom(figment)
}

/// A tracked client, panicking with Rocket's message when launch fails.
pub async fn client(rocket: rocket::Rocket<rocket::Build>) -> Client {
    Client::tracked(rocket).await.expect("valid rocket")
}
