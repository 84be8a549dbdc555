//! Memory per cached key: `cargo bench -p apikey-bench --bench cache_memory`.
//!
//! Fills a store with N keys, then reads the process' resident memory before and after
//! verifying (and so caching) every key once. Linux only (reads /proc/self/statm).

use apikey_bench as common;

use apikey_core::KeyRequest;
use apikey_core::{ApiKeyConfig, Verifier};

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn main() {
    let n: usize = std::env::args()
        .filter_map(|a| a.parse().ok())
        .next()
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (store, keys) = common::filled_store(n, &["billing"]).await;
        let verifier = Verifier::new(ApiKeyConfig::default(), store).await.unwrap();
        let before = rss_bytes();
        for k in &keys {
            verifier
                .verify_request(&KeyRequest::new(k.expose()))
                .await
                .unwrap();
        }
        let after = rss_bytes();
        match (before, after) {
            (Some(b), Some(a)) => println!(
                "cached {n} keys: resident memory +{:.1} MiB, {:.0} bytes per cached key",
                (a.saturating_sub(b)) as f64 / (1 << 20) as f64,
                a.saturating_sub(b) as f64 / n as f64
            ),
            _ => println!("cannot read /proc/self/statm on this system"),
        }
    });
}
