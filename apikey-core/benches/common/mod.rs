//! Setup shared by the benchmarks.

use std::sync::Arc;

use apikey_core::{Hasher, KeyFormat, KeyStore, MemoryStore, NewKey, Secret};

/// A memory store holding `n` generated keys (users `user 0` … `user 999`, the given groups),
/// and the keys.
pub async fn filled_store(n: usize, groups: &[&str]) -> (Arc<MemoryStore>, Vec<Secret>) {
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
                groups: groups.iter().map(|g| g.to_string()).collect(),
                expires_at: None,
                digest: hasher.digest(g.key.expose()),
                stub: g.stub,
                rate_limit: None,
            })
            .await
            .unwrap();
        keys.push(g.key);
    }
    (store, keys)
}
