//! The digest filter at scale: `cargo bench -p apikey-bench --bench filter [N]`.
//!
//! Fills a memory store with N keys (1,000,000 by default), waits for a verifier's filter to
//! load, then verifies N never-stored keys and reports the filter's memory per stored key and
//! its false-positive rate (unknown keys it could not refuse, so the store was asked).

use apikey_bench as common;

use std::time::{Duration, Instant};

use apikey_core::KeyRequest;
use apikey_core::{ApiKeyConfig, Verifier};

fn main() {
    let n: usize = std::env::args()
        .filter_map(|a| a.parse().ok())
        .next()
        .unwrap_or(1_000_000);
    let rt = apikey_bench::runtime();
    rt.block_on(async {
        let (store, _keys) = common::filled_store(n, &[]).await;
        let verifier = Verifier::new(ApiKeyConfig::default(), store).await.unwrap();
        let start = Instant::now();
        while !verifier.filter_stats().trusted {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "filter never loaded"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let loaded = start.elapsed();
        let stats = verifier.filter_stats();
        let before = verifier.store_queries();
        for i in 0..n {
            let _ = verifier
                .verify_request(&KeyRequest::new(&format!("never-stored-{i}")))
                .await;
        }
        let asked = verifier.store_queries() - before;
        println!(
            "{n} stored keys: filter loaded in {loaded:?}, {} KiB ({:.2} bytes per stored key); \
             {n} unknown keys: {asked} reached the store (false-positive rate {:.4} %)",
            stats.bytes / 1024,
            stats.bytes as f64 / n as f64,
            asked as f64 * 100.0 / n as f64
        );
    });
}
