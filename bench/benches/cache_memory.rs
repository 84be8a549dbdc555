//! Memory per cached key, and the cold start: `cargo bench -p apikey-bench --bench cache_memory`.
//!
//! Fills a store with N keys (a million unless a number is given), starts a verifier over it
//! and waits for its digest filter (the cold start's first part), then reads the process'
//! resident memory before and after verifying (and so caching) every key once: the first pass
//! is the cold start's second part, each key looked up in the store; a second pass over the
//! same keys is all cache hits, for comparison in the same run. Memory is read right after the
//! first pass, and again once the last-used times and request counts that pass queued were
//! written (they wait up to 10 seconds for their write). Linux only (reads /proc/self/statm).

use std::time::{Duration, Instant};

use apikey_bench as common;

use apikey_core::key::slugify;
use apikey_core::model::UsageCount;
use apikey_core::{ApiKeyConfig, KeyMetering, KeyRequest, UsageDay, Verifier};

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
        // Today's usage row of every key exists before anything is measured, so that writing
        // the counts of the pass adds to rows rather than growing the store in this process.
        let today = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            / 86_400;
        let rows: Vec<UsageCount> = (0..n)
            .map(|i| UsageCount {
                tech_name: slugify(&format!("key {i}")),
                counts: UsageDay {
                    day: today,
                    accepted: 0,
                    forbidden: 0,
                    limited: 0,
                },
            })
            .collect();
        store.add_usage(&rows).await.unwrap();
        drop(rows);
        let started = Instant::now();
        let verifier = Verifier::new(ApiKeyConfig::default(), store).await.unwrap();
        let built = started.elapsed();
        while !verifier.filter_stats().trusted {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let filtered = started.elapsed();
        let before = rss_bytes();
        let pass = || async {
            let start = Instant::now();
            for k in &keys {
                verifier
                    .verify_request(&KeyRequest::new(k.expose()))
                    .await
                    .unwrap();
            }
            start.elapsed()
        };
        let queries = verifier.store_queries();
        let cold = pass().await;
        let cold_queries = verifier.store_queries() - queries;
        let after = rss_bytes();
        // What waits for the next write (last-used times, request counts: every 10 seconds)
        // is gone once written; what stays is what the keys cost while cached.
        verifier.flush_usage().await.unwrap();
        let written = rss_bytes();
        let warm = pass().await;
        let per_key = |d: Duration| d.as_secs_f64() * 1e9 / n as f64;
        println!(
            "cold start, {n} stored keys: verifier built in {} ms, digest filter trusted after \
             {} ms ({} KiB)",
            built.as_millis(),
            filtered.as_millis(),
            verifier.filter_stats().bytes / 1024
        );
        println!(
            "first verification of each key: {:.0} ms in all, {:.0} ns per key, {cold_queries} \
             store queries; again (cache hits): {:.0} ns per key; first / again: {:.1}x",
            cold.as_secs_f64() * 1e3,
            per_key(cold),
            per_key(warm),
            per_key(cold) / per_key(warm)
        );
        match (before, after) {
            (Some(b), Some(a)) => println!(
                "cached {n} keys: resident memory +{:.1} MiB, {:.0} bytes per cached key",
                (a.saturating_sub(b)) as f64 / (1 << 20) as f64,
                a.saturating_sub(b) as f64 / n as f64
            ),
            _ => println!("cannot read /proc/self/statm on this system"),
        }
        if let (Some(b), Some(w)) = (before, written) {
            println!(
                "once the uses and counts were written: +{:.1} MiB, {:.0} bytes per cached key",
                (w.saturating_sub(b)) as f64 / (1 << 20) as f64,
                w.saturating_sub(b) as f64 / n as f64
            );
        }
    });
}
