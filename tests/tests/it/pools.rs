//! Stores on an application's own pool (`SqlStore::from_pool`, SQLite and PostgreSQL), and the
//! pool settings (`pool_size`, `pool_timeout`).

use std::sync::Arc;
use std::time::Duration;

use apikey_core::store::{PostgresStore, SqliteStore, StoreOptions};
use apikey_core::{ApiKeyConfig, KeyRequest, Settings, SharedStore, StoreError, Verifier};
use apikey_tests::{admin, spec, PgDatabase};

/// A key made through a store on the app's pool verifies there, and a key made through another
/// connection to the same database reaches it (its change feed works).
async fn shares_the_pool(own: SharedStore, other: SharedStore) {
    let verifier = Verifier::new(ApiKeyConfig::default(), own.clone())
        .await
        .unwrap();
    let (_, mine) = admin(&own).create(spec("mine", "u", &[])).await.unwrap();
    assert!(verifier
        .verify_request(&KeyRequest::new(mine.expose()))
        .await
        .is_ok());
    let (_, theirs) = admin(&other)
        .create(spec("theirs", "u", &[]))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while verifier
        .verify_request(&KeyRequest::new(theirs.expose()))
        .await
        .is_err()
    {
        assert!(std::time::Instant::now() < deadline, "not seen");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_from_the_apps_pool() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("app.db").display());
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .unwrap();
    let own = SqliteStore::from_pool(pool, &StoreOptions::default())
        .await
        .unwrap();
    let other = SqliteStore::connect(&url).await.unwrap();
    shares_the_pool(Arc::new(own), Arc::new(other)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_from_the_apps_pool() {
    let Some(db) = PgDatabase::create("pool").await else {
        return;
    };
    db.run("CREATE SCHEMA apikey").await;
    // Without the schema first on the search path: refused with what to do.
    let plain = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&db.url)
        .await
        .unwrap();
    match PostgresStore::from_pool(plain, "apikey", &StoreOptions::default()).await {
        Err(StoreError::Invalid(why)) => assert!(why.contains("search_path"), "{why}"),
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("a pool on another schema was taken"),
    }
    let sep = if db.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{sep}options=-c%20search_path%3Dapikey", db.url);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .unwrap();
    let own = PostgresStore::from_pool(pool, "apikey", &StoreOptions::default())
        .await
        .unwrap();
    let other = PostgresStore::connect(&db.url).await.unwrap();
    shares_the_pool(Arc::new(own), Arc::new(other)).await;
    db.drop().await;
}

/// `pool_size` and `pool_timeout` are settings like any other (files and `APIKEY_*`).
#[test]
fn pool_settings() {
    let d = Settings::default();
    assert_eq!((d.pool_size, d.pool_timeout), (8, Duration::from_secs(3)));
    let options = StoreOptions::from_settings(&Settings {
        pool_size: 2,
        pool_timeout: Duration::from_millis(250),
        ..Settings::default()
    });
    assert_eq!(options.pool_size, 2);
    assert_eq!(options.pool_timeout, Duration::from_millis(250));
}
