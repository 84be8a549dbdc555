//! `Verifier::verify_request_now` decides what needs no wait and leaves the rest to
//! `verify_request_later`, nothing done twice: a cached key (its per-instance limits too) and
//! the refusals the caches and the format check make are decided at once; a first lookup and
//! a lease of quota tokens from the store wait, and the wait counts the request once.
#![cfg(not(feature = "tracing"))]

use std::sync::Arc;

use apikey_core::verify::{Checked, KeyRequest};
use apikey_core::{
    ApiKeyConfig, AuthError, CreateKey, KeyManager, MemoryStore, SharedStore, Verifier,
};

async fn verify(v: &Verifier, key: &str) -> (bool, Result<String, AuthError>) {
    let req = KeyRequest::new(key);
    match v.verify_request_now(&req) {
        Checked::Done(r) => (true, r.map(|v| v.identity.key_name().to_owned())),
        Checked::Later(later) => (
            false,
            v.verify_request_later(later, &req)
                .await
                .map(|v| v.identity.key_name().to_owned()),
        ),
    }
}

#[tokio::test]
async fn what_needs_no_wait_is_decided_at_once() {
    let store: SharedStore = Arc::new(MemoryStore::new());
    let config = ApiKeyConfig::default();
    let keys = KeyManager::new(store.clone(), &config);
    let spec = |name: &str| CreateKey {
        name: name.into(),
        user: "ops".into(),
        ..CreateKey::default()
    };
    let (_, open) = keys.create(spec("open")).await.unwrap();
    let limited = CreateKey {
        rate_limit: Some("2/1h".parse().unwrap()),
        ..spec("limited")
    };
    let (_, limited) = keys.create(limited).await.unwrap();
    let quota = CreateKey {
        quota: Some("10000/1d".parse().unwrap()),
        ..spec("quota")
    };
    let (_, quota) = keys.create(quota).await.unwrap();
    let verifier = Verifier::new(config, store).await.unwrap();

    // First use: a store lookup (later); then cached, no limits: at once.
    assert_eq!(
        verify(&verifier, open.expose()).await,
        (false, Ok("open".into()))
    );
    for _ in 0..3 {
        assert_eq!(
            verify(&verifier, open.expose()).await,
            (true, Ok("open".into()))
        );
    }
    // Malformed: at once, nothing looked up.
    let malformed = "ak_ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ";
    let (now, r) = verify(&verifier, malformed).await;
    assert!(now && r == Err(AuthError::INVALID), "{r:?}");
    // An unknown key: the store is asked once (later), then the caches refuse at once.
    let unknown = "a-free-form-key-nobody-has";
    assert_eq!(verify(&verifier, unknown).await.1, Err(AuthError::INVALID));
    let (now, r) = verify(&verifier, unknown).await;
    assert!(now && r == Err(AuthError::INVALID), "{r:?}");
    // A spray of never-seen keys: the filter's few store queries a second are spent at once,
    // then (a store whose feed hears every change, no poll to ask) each is refused at once.
    let trusted_by = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !verifier.filter_stats().trusted {
        assert!(
            std::time::Instant::now() < trusted_by,
            "the filter never loaded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let mut at_once = 0;
    for i in 0..(2 * apikey_core::verify::FILTER_MISS_BUDGET + 5) {
        let (now, r) = verify(&verifier, &format!("spray-key-number-{i}")).await;
        assert_eq!(r, Err(AuthError::INVALID));
        at_once += usize::from(now);
    }
    assert!(
        at_once >= 5,
        "refused at once once the budget was spent: {at_once}"
    );
    // A key with a rate limit kept by this instance: decided at once once cached (the first
    // request looked the key up), each request counted once: 2 an hour, the third refused.
    assert_eq!(
        verify(&verifier, limited.expose()).await,
        (false, Ok("limited".into()))
    );
    let (now, r) = verify(&verifier, limited.expose()).await;
    assert!(now && r == Ok("limited".into()), "{r:?}");
    let (now, r) = verify(&verifier, limited.expose()).await;
    assert!(
        now && matches!(r, Err(AuthError::RateLimited { .. })),
        "{r:?}"
    );
    // A quota is kept in the store: a request whose tokens must be leased from it waits, and
    // the tokens the lease brought decide the next requests at once; every request counts.
    let mut waited = 0;
    for _ in 0..50 {
        let (now, r) = verify(&verifier, quota.expose()).await;
        assert_eq!(r, Ok("quota".into()));
        waited += usize::from(!now);
    }
    assert!((1..50).contains(&waited), "{waited} of 50 waited");
    verifier.shutdown().await.unwrap();
}
