//! Micro-benchmarks of the request path: `cargo bench -p apikey-bench --bench verify`.

use std::hint::black_box;
use std::sync::Arc;

use apikey_core::config::Settings;
use apikey_core::KeyRequest;
use apikey_core::{ApiKeyConfig, KeyFormat, KeyHasher, Secret, Verifier};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tokio::runtime::Runtime;

use apikey_bench as common;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A verifier over a memory store holding `n` generated keys, every one already cached.
fn warm_verifier(rt: &Runtime, n: usize) -> (Arc<Verifier>, Vec<Secret>) {
    warm_verifier_with(rt, n, Settings::default())
}

/// The same with `settings`.
fn warm_verifier_with(rt: &Runtime, n: usize, settings: Settings) -> (Arc<Verifier>, Vec<Secret>) {
    rt.block_on(async {
        let (store, keys) = common::filled_store(n, &[]).await;
        let config = ApiKeyConfig {
            settings,
            sections: vec![],
        };
        let verifier = Arc::new(Verifier::new(config, store).await.unwrap());
        for k in &keys {
            verifier
                .verify_request(&KeyRequest::new(k.expose()))
                .await
                .unwrap();
        }
        (verifier, keys)
    })
}

fn parts(c: &mut Criterion) {
    let format = KeyFormat::default();
    let key = format.generate().unwrap().key;
    c.bench_function("parse+checksum", |b| {
        b.iter(|| format.check(black_box(key.expose())))
    });
    let hasher = KeyHasher::new(None);
    c.bench_function("digest/sha256", |b| {
        b.iter(|| hasher.digest(black_box(key.expose())))
    });
    let peppered = KeyHasher::new(Some(&Secret::new("pepper")));
    c.bench_function("digest/hmac-sha256", |b| {
        b.iter(|| peppered.digest(black_box(key.expose())))
    });
}

fn verify(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Elements(1));
    for n in [1_000usize, 100_000, 1_000_000] {
        let (verifier, keys) = warm_verifier(&rt, n);
        // Walk the keys in a scrambled order so that hits are spread over the whole cache.
        let mut i = 0usize;
        group.bench_with_input(BenchmarkId::new("cache_hit", n), &n, |b, &n| {
            b.to_async(&rt).iter(|| {
                i = (i + 7919) % n;
                let key = keys[i].expose();
                let v = &verifier;
                async move { v.verify_request(&KeyRequest::new(key)).await.unwrap() }
            })
        });
    }
    let (verifier, _) = warm_verifier(&rt, 1_000);
    let unknown = KeyFormat::default().generate().unwrap().key;
    rt.block_on(async {
        verifier
            .verify_request(&KeyRequest::new(unknown.expose()))
            .await
            .unwrap_err()
    });
    group.bench_function("negative_cache_hit", |b| {
        b.to_async(&rt).iter(|| async {
            verifier
                .verify_request(&KeyRequest::new(unknown.expose()))
                .await
                .unwrap_err()
        })
    });
    let mut bad = unknown.expose().to_owned();
    bad.pop();
    bad.push('!');
    group.bench_function("malformed", |b| {
        b.to_async(&rt).iter(|| async {
            verifier
                .verify_request(&KeyRequest::new(&bad))
                .await
                .unwrap_err()
        })
    });
    group.finish();
}

/// What limits add to a cached hit: none, per instance (rate limit in memory, quota leased from
/// the store), and shared through Redis (both leased; skipped when Redis does not answer at
/// `APIKEY_LIMITS_URL`, by default redis://127.0.0.1:6379/0). The limits are never reached.
fn limits(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("limits");
    group.throughput(Throughput::Elements(1));
    let redis =
        std::env::var("APIKEY_LIMITS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into());
    let limited = || Settings {
        rate_limit: Some("1000000000/1s".parse().unwrap()),
        quota: Some("1000000000000/30d".parse().unwrap()),
        ..Settings::default()
    };
    let cases = [
        ("off", Settings::default()),
        ("per_instance", limited()),
        (
            "redis",
            Settings {
                limits_url: Some(redis),
                limits_prefix: format!("apikey-bench:{}", std::process::id()),
                ..limited()
            },
        ),
    ];
    for (name, settings) in cases {
        let shared = settings.limits_url.is_some();
        let (verifier, keys) = warm_verifier_with(&rt, 1_000, settings);
        if shared && verifier.limits_stats().fallback {
            eprintln!("limits/redis skipped: Redis does not answer");
            continue;
        }
        let mut i = 0usize;
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                i = (i + 7919) % 1_000;
                let key = keys[i].expose();
                let v = &verifier;
                async move { v.verify_request(&KeyRequest::new(key)).await.unwrap() }
            })
        });
        let stats = verifier.limits_stats();
        eprintln!("limits/{name}: {stats:?}");
    }
    group.finish();
}

criterion_group!(benches, parts, verify, limits);
criterion_main!(benches);
