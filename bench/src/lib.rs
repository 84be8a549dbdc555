//! What the benchmarks share. The benchmarks themselves are in `benches/` (criterion) and
//! `load/` (wrk against the `load-server` binary); `BENCHMARKS.md` says how to run each.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::sync::Arc;

use apikey_core::{Actor, Groups, KeyFormat, KeyHasher, KeyStore, MemoryStore, NewKey, Secret};

/// A memory store holding `n` generated keys (users `user 0` … `user 999`, the given groups),
/// and the keys.
pub async fn filled_store(n: usize, groups: &[&str]) -> (Arc<MemoryStore>, Vec<Secret>) {
    let store = Arc::new(MemoryStore::new());
    let format = KeyFormat::default();
    let hasher = KeyHasher::new(None);
    let groups = Groups::new(groups).expect("benchmark groups are valid");
    let by = Actor::new("bench").expect("a valid actor");
    let mut keys = Vec::with_capacity(n);
    for i in 0..n {
        let g = format.generate().expect("the OS random generator works");
        store
            .create(
                NewKey {
                    name: format!("key {i}"),
                    user: format!("user {}", i % 1000),
                    groups: groups.clone(),
                    expires_at: None,
                    digest: hasher.digest(g.key.expose()),
                    stub: g.stub,
                    rate_limit: None,
                    quota: None,
                    allow_ip: Default::default(),
                    scopes: Default::default(),
                    description: None,
                    meta: Default::default(),
                },
                &by,
            )
            .await
            .expect("a memory store accepts the key");
        keys.push(g.key);
    }
    (store, keys)
}

/// The runtime the benchmarks run on: two worker threads, as the machine has two cores.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}
