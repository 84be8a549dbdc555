//! Limits shared through Redis, measured: how far 2 and 4 instances (verifiers on one key
//! store, each with its own Redis connection, as separate processes would have) go beyond a
//! key's limit when they all hammer it at once, and how many Redis round trips they make per
//! 1000 requests.
//!
//!   cargo run --release -p apikey-bench --bin overshoot     # Redis at APIKEY_LIMITS_URL, else
//!                                                          # redis://127.0.0.1:6379/0
//!
//! For each case, every instance runs 8 concurrent clients until the instances together have
//! sent 3 times the limit. "allowed" is the limit plus what refills while the case runs;
//! overshoot is what was accepted beyond that. The steady rows send 200,000 requests under a
//! limit they never reach, to count round trips at steady load.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use apikey_core::KeyRequest;
use apikey_core::{
    ApiKeyConfig, CreateKey, KeyManager, MemoryStore, Quota, RateLimit, SharedStore, Verifier,
};

const CLIENTS: usize = 8;

struct Case {
    name: &'static str,
    rate: Option<&'static str>,
    quota: Option<&'static str>,
    /// Requests in all; `None`: 3 times the limit.
    total: Option<u64>,
}

async fn run(url: &str, instances: usize, case: &Case, n: usize) -> String {
    let store: SharedStore = Arc::new(MemoryStore::new());
    let rate: Option<RateLimit> = case.rate.map(|r| r.parse().unwrap());
    let quota: Option<Quota> = case.quota.map(|q| q.parse().unwrap());
    let (_, key) = KeyManager::new(store.clone(), &ApiKeyConfig::default())
        .create(CreateKey {
            name: "bench".into(),
            user: "bench".into(),
            rate_limit: rate,
            quota,
            ..CreateKey::default()
        })
        .await
        .expect("create the key");
    let prefix = format!("apikey-overshoot:{}:{n}:{instances}", std::process::id());
    let mut verifiers = Vec::new();
    for _ in 0..instances {
        let mut config = ApiKeyConfig::default();
        config.settings.limits_url = Some(url.to_owned());
        config.settings.limits_prefix = prefix.clone();
        verifiers.push(Arc::new(
            Verifier::new(config, store.clone())
                .await
                .expect("a verifier"),
        ));
    }
    let limit = rate
        .map(|r| u64::from(r.count))
        .or(quota.map(|q| q.count))
        .unwrap_or(0);
    let total = case.total.unwrap_or(3 * limit);
    let sent = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for v in &verifiers {
        for _ in 0..CLIENTS {
            let (v, key) = (Arc::clone(v), key.expose().to_owned());
            let (sent, accepted) = (Arc::clone(&sent), Arc::clone(&accepted));
            tasks.push(tokio::spawn(async move {
                while sent.fetch_add(1, Ordering::Relaxed) < total {
                    if v.verify_request(&KeyRequest::new(&key)).await.is_ok() {
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
    }
    for t in tasks {
        t.await.expect("a client");
    }
    let elapsed = start.elapsed();
    let accepted = accepted.load(Ordering::Relaxed);
    let refilled = rate.map_or(0.0, |r| {
        elapsed.as_secs_f64() * f64::from(r.count) / r.period.as_secs_f64()
    });
    let round_trips: u64 = verifiers.iter().map(|v| v.limits_stats().round_trips).sum();
    let fallback = verifiers.iter().any(|v| v.limits_stats().fallback);
    assert!(!fallback, "Redis went away during the measure");
    if case.total.is_some() {
        return format!(
            "| {} | {instances} | {total} | - | {accepted} | - | {:.2} |",
            case.name,
            round_trips as f64 * 1000.0 / total as f64
        );
    }
    let allowed = limit as f64 + refilled;
    let over = (accepted as f64 - allowed.floor()).max(0.0);
    format!(
        "| {} | {instances} | {total} | {allowed:.1} | {accepted} | {over:.0} ({:.2} %) | {:.2} |",
        case.name,
        over * 100.0 / limit as f64,
        round_trips as f64 * 1000.0 / total as f64
    )
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let url =
        std::env::var("APIKEY_LIMITS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into());
    let cases = [
        Case {
            name: "rate 20/1h (exact)",
            rate: Some("20/1h"),
            quota: None,
            total: None,
        },
        Case {
            name: "rate 1000/1h (leased)",
            rate: Some("1000/1h"),
            quota: None,
            total: None,
        },
        Case {
            name: "rate 100000/1h (leased)",
            rate: Some("100000/1h"),
            quota: None,
            total: None,
        },
        Case {
            name: "rate 5000/1s (leased, refilling)",
            rate: Some("5000/1s"),
            quota: None,
            total: Some(60_000),
        },
        Case {
            name: "quota 30/1d (exact)",
            rate: None,
            quota: Some("30/1d"),
            total: None,
        },
        Case {
            name: "quota 10000/1d (leased)",
            rate: None,
            quota: Some("10000/1d"),
            total: None,
        },
        Case {
            name: "steady: rate never reached",
            rate: Some("1000000000/1h"),
            quota: None,
            total: Some(200_000),
        },
        Case {
            name: "steady: rate + quota never reached",
            rate: Some("1000000000/1h"),
            quota: Some("1000000000/30d"),
            total: Some(200_000),
        },
    ];
    println!(
        "Redis at {url}; {CLIENTS} concurrent clients per instance, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!("| case | instances | requests | allowed | accepted | overshoot | Redis round trips / 1000 req |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut n = 0;
    for case in &cases {
        for instances in [2, 4] {
            n += 1;
            println!("{}", run(&url, instances, case, n).await);
        }
    }
}
