//! How fast a change made by another process reaches a running service: two stores on one
//! database (each with its own connections and change feed, as two processes would have), a
//! verifier on one, `KeyManager` on the other.
//!
//!   cargo run --release -p apikey-bench --bin propagation   # PostgreSQL at
//!                                                           # APIKEY_TEST_POSTGRES_URL, else
//!                                                           # postgres://postgres@127.0.0.1:5432/test
//!
//! Per store, 200 rounds of: create a key (the clock starts when the call returns), then verify
//! it until it is accepted ("create → first 200"); rotate it without grace, then verify the
//! old secret until it is refused ("rotate → old secret refused": what the change feed itself
//! takes, since a cached secret is dropped only by the notification). Rounds are 500 ms apart,
//! as independent administrative changes would be: each round may use two of the digest
//! filter's five store queries a second for digests it has not heard of yet (the new key, and
//! the old secret once rotated out before the filter read it).
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use apikey_core::store::{PostgresStore, SqliteStore};
use apikey_core::KeyRequest;
use apikey_core::{ApiKeyConfig, CreateKey, KeyManager, SharedStore, Verifier};
use sqlx::Connection;

const ROUNDS: usize = 200;

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[((sorted.len() - 1) * p).div_ceil(100)]
}

fn row(what: &str, mut times: Vec<Duration>, first_try: Option<usize>) {
    times.sort();
    let first = first_try.map_or(String::new(), |n| {
        format!(", accepted on the first request {n}/{ROUNDS}")
    });
    println!(
        "  {what:<28} p50 {:>8.3} ms  p99 {:>8.3} ms  max {:>8.3} ms{first}",
        percentile(&times, 50).as_secs_f64() * 1e3,
        percentile(&times, 99).as_secs_f64() * 1e3,
        times.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

async fn measure(name: &str, service: SharedStore, other: SharedStore) {
    let verifier = Verifier::new(ApiKeyConfig::default(), service)
        .await
        .expect("a verifier");
    let admin = KeyManager::new(other, &ApiKeyConfig::default());
    // Let the digest filter load.
    for _ in 0..500 {
        if verifier.filter_stats().trusted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (mut created, mut rotated) = (Vec::new(), Vec::new());
    let mut first_try = 0;
    for i in 0..ROUNDS {
        let key_name = format!("k{i}");
        let (_, key) = admin
            .create(CreateKey {
                name: key_name.clone(),
                user: "bench".into(),
                ..CreateKey::default()
            })
            .await
            .expect("create");
        let start = Instant::now();
        let mut tries = 0;
        while verifier
            .verify_request(&KeyRequest::new(key.expose()))
            .await
            .is_err()
        {
            tries += 1;
            tokio::task::yield_now().await;
        }
        created.push(start.elapsed());
        if tries == 0 {
            first_try += 1;
        }
        admin
            .rotate(&key_name, Duration::ZERO)
            .await
            .expect("rotate");
        let start = Instant::now();
        while verifier
            .verify_request(&KeyRequest::new(key.expose()))
            .await
            .is_ok()
        {
            tokio::task::yield_now().await;
        }
        rotated.push(start.elapsed());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("{name}:");
    row("create → first 200", created, Some(first_try));
    row("rotate → old secret refused", rotated, None);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile_dir();
    let url = format!("sqlite://{}/keys.db?mode=rwc", dir.display());
    let a: SharedStore = Arc::new(SqliteStore::connect(&url).await.expect("SQLite"));
    let b: SharedStore = Arc::new(SqliteStore::connect(&url).await.expect("SQLite"));
    measure("SQLite (5 ms change check)", a, b).await;
    let _ = std::fs::remove_dir_all(&dir);

    let pg = std::env::var("APIKEY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("apikey_propagation_{}", std::process::id());
    let a = PostgresStore::connect_in_schema(&pg, &schema).await;
    let b = PostgresStore::connect_in_schema(&pg, &schema).await;
    match (a, b) {
        (Ok(a), Ok(b)) => measure("PostgreSQL (LISTEN/NOTIFY)", Arc::new(a), Arc::new(b)).await,
        (Err(e), _) | (_, Err(e)) => println!("PostgreSQL: skipped ({e})"),
    }
    if let Ok(mut conn) = sqlx::PgConnection::connect(&pg).await {
        let drop = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
        let _ = sqlx::query(sqlx::AssertSqlSafe(drop.as_str()))
            .execute(&mut conn)
            .await;
    }
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("apikey-propagation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    dir
}
