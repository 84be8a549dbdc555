//! Revocation delay across instances: `cargo bench -p apikey-bench --bench revocation`.
//!
//! Two service instances with their own connections to one store cache a key; a third
//! connection (the CLI) revokes it; the delay until both instances refuse it is measured over
//! `REVOCATIONS` (default 50) revocations, on PostgreSQL (`APIKEY_TEST_POSTGRES_URL`, default
//! the local server) and SQLite.

use std::time::Duration;

use apikey_tests::{percentile, Cluster, SharedDb, POSTGRES_ENV};

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
    let rt = apikey_bench::runtime();
    rt.block_on(async {
        let url = std::env::var(POSTGRES_ENV)
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        for (label, db) in [
            ("PostgreSQL", SharedDb::postgres_at(url)),
            ("SQLite", SharedDb::sqlite()),
        ] {
            let cluster =
                Cluster::start([db.store().await, db.store().await], db.store().await).await;
            measure(label, &cluster, n).await;
            drop(cluster);
            db.finish().await;
        }
    });
}
