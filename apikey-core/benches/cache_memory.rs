//! Memory per cached key: `cargo bench -p apikey-core --bench cache_memory`.
//!
//! Fills a store with N keys, then reads the process' resident memory before and after
//! verifying (and so caching) every key once. Linux only (reads /proc/self/statm).

use std::sync::Arc;

use apikey_core::{ApiKeyConfig, Hasher, KeyFormat, KeyStore, MemoryStore, NewKey, Verifier};

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
        let store = Arc::new(MemoryStore::new());
        let format = KeyFormat::default();
        let hasher = Hasher::new(None);
        let mut keys = Vec::with_capacity(n);
        for i in 0..n {
            let g = format.generate().unwrap();
            store
                .create(NewKey {
                    name: format!("key {i}"),
                    user: format!("user {}", i % 1000),
                    groups: vec!["billing".into()],
                    expires_at: None,
                    digest: hasher.digest(g.key.expose()),
                    stub: g.stub,
                    rate_limit: None,
                })
                .await
                .unwrap();
            keys.push(g.key);
        }
        let verifier = Verifier::new(ApiKeyConfig::default(), store).await.unwrap();
        let before = rss_bytes();
        for k in &keys {
            verifier.verify(k.expose()).await.unwrap();
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
