//! Revocation delay across instances: `cargo bench -p apikey-tests --bench revocation`.
//!
//! Two service instances with their own connections to one store cache a key; a third
//! connection (the CLI) revokes it; the delay until both instances refuse it is measured over
//! `REVOCATIONS` (default 50) revocations, on PostgreSQL (`APIKEY_TEST_POSTGRES_URL`, default
//! the local server) and SQLite.

use std::sync::Arc;
use std::time::Duration;

use apikey_core::store::{PostgresStore, SqliteStore};
use apikey_core::SharedStore;
use apikey_tests::{drop_schema, percentile, unique_schema, Cluster};

async fn measure(label: &str, cluster: &Cluster, n: usize) {
    let mut delays = Vec::with_capacity(n);
    for i in 0..n {
        match cluster
            .revocation_delay(&format!("{label} {i}"), Duration::from_secs(10))
            .await
        {
            Some(d) => delays.push(d),
            None => panic!("{label}: revocation {i} not seen by both instances within 10 s"),
        }
    }
    delays.sort();
    println!(
        "{label:<10} {n} revocations: p50 {:>9.3?}  p99 {:>9.3?}  max {:>9.3?}",
        percentile(&delays, 50),
        percentile(&delays, 99),
        delays[delays.len() - 1]
    );
}

fn main() {
    let n: usize = std::env::var("REVOCATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let url = std::env::var("APIKEY_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let schema = unique_schema();
        let open = || async {
            let s: SharedStore = Arc::new(
                PostgresStore::connect_in_schema(&url, &schema)
                    .await
                    .expect("PostgreSQL reachable"),
            );
            s
        };
        let cluster = Cluster::start([open().await, open().await], open().await).await;
        measure("PostgreSQL", &cluster, n).await;
        drop(cluster);
        drop_schema(&url, &schema).await;

        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("k.db").display());
        let open = || async {
            let s: SharedStore = Arc::new(SqliteStore::connect(&url).await.unwrap());
            s
        };
        let cluster = Cluster::start([open().await, open().await], open().await).await;
        measure("SQLite", &cluster, n).await;
    });
}
