//! Micro-benchmarks of the request path: `cargo bench -p apikey-bench --bench verify`.

use std::hint::black_box;
use std::sync::Arc;

use apikey_core::config::Settings;
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
    rt.block_on(async {
        let (store, keys) = common::filled_store(n, &[]).await;
        let config = ApiKeyConfig {
            settings: Settings::default(),
            sections: vec![],
        };
        let verifier = Arc::new(Verifier::new(config, store).await.unwrap());
        for k in &keys {
            verifier.verify(k.expose()).await.unwrap();
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
                async move { v.verify(key).await.unwrap() }
            })
        });
    }
    let (verifier, _) = warm_verifier(&rt, 1_000);
    let unknown = KeyFormat::default().generate().unwrap().key;
    rt.block_on(async { verifier.verify(unknown.expose()).await.unwrap_err() });
    group.bench_function("negative_cache_hit", |b| {
        b.to_async(&rt)
            .iter(|| async { verifier.verify(unknown.expose()).await.unwrap_err() })
    });
    let mut bad = unknown.expose().to_owned();
    bad.pop();
    bad.push('!');
    group.bench_function("malformed", |b| {
        b.to_async(&rt)
            .iter(|| async { verifier.verify(&bad).await.unwrap_err() })
    });
    group.finish();
}

criterion_group!(benches, parts, verify);
criterion_main!(benches);
