//! The caches in front of every store: hits cost no query, unknown keys cost at most one per
//! negative TTL, changes drop exactly what they touch, expiry is re-checked on every hit.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use apikey_core::clock::ManualClock;
use apikey_core::config::Settings;
use apikey_core::KeyRequest;
use apikey_core::{AuthError, CreateKey, KeyManager, MemoryStore, Secret, Verifier};
use apikey_tests::{spec, Probe};

/// A verifier over a counting store that cannot list digests, so these tests see the caches
/// alone (the digest filter has tests of its own below).
async fn setup(settings: Settings) -> (Arc<Verifier>, Arc<Probe>, KeyManager) {
    let probe = Probe::new(Arc::new(MemoryStore::new()));
    probe.hide_digests.store(true, Ordering::SeqCst);
    let (verifier, manager) = probe.verifier(settings).await;
    (verifier, probe, manager)
}

/// [`setup`] with default settings, the verifier reading a manual clock the test moves.
async fn setup_clocked() -> (Arc<Verifier>, Arc<Probe>, KeyManager, ManualClock) {
    let probe = Probe::new(Arc::new(MemoryStore::new()));
    probe.hide_digests.store(true, Ordering::SeqCst);
    let clock = ManualClock::starting_now();
    let (verifier, manager) = probe.verifier_on(Settings::default(), clock.shared()).await;
    (verifier, probe, manager, clock)
}

async fn key(manager: &KeyManager, name: &str, user: &str) -> Secret {
    manager.create(spec(name, user, &[])).await.unwrap().1
}

#[tokio::test]
async fn hits_cost_no_store_query() {
    let (v, probe, m) = setup(Settings::default()).await;
    let k = key(&m, "a", "alice").await;
    for _ in 0..100 {
        assert_eq!(
            v.verify_request(&KeyRequest::new(k.expose()))
                .await
                .unwrap()
                .identity
                .user(),
            "alice"
        );
    }
    assert_eq!(probe.lookups(), 1);
    assert_eq!(v.store_queries(), 1);
}

#[tokio::test]
async fn unknown_keys_cost_one_query_per_negative_ttl() {
    let (v, probe, _) = setup(Settings::default()).await;
    for _ in 0..100 {
        assert_eq!(
            v.verify_request(&KeyRequest::new("no-such-key")).await,
            Err(AuthError::INVALID)
        );
    }
    assert_eq!(probe.lookups(), 1);
}

/// The cache of unknown digests keeps an answer for its time to live (10 s), counted on the
/// verifier's clock: the store is asked again once it has passed, not before.
#[tokio::test]
async fn an_unknown_key_is_asked_again_after_the_negative_ttl() {
    let (v, probe, _, clock) = setup_clocked().await;
    let unknown = KeyRequest::new("no-such-key");
    let ask = || v.verify_request(&unknown);
    assert_eq!(ask().await, Err(AuthError::INVALID));
    clock.advance(Duration::from_millis(9_900));
    assert_eq!(ask().await, Err(AuthError::INVALID));
    assert_eq!(probe.lookups(), 1, "still inside the negative TTL");
    clock.advance(Duration::from_millis(200));
    assert_eq!(ask().await, Err(AuthError::INVALID));
    assert_eq!(probe.lookups(), 2, "asked again once it passed");
}

#[tokio::test]
async fn malformed_keys_cost_no_query() {
    let (v, probe, m) = setup(Settings::default()).await;
    let good = key(&m, "a", "alice").await;
    let mut bad = good.expose().to_owned();
    bad.replace_range(10..11, if &bad[10..11] == "x" { "y" } else { "x" });
    for value in [bad.as_str(), "ak_short", "bad value", &"k".repeat(600)] {
        assert_eq!(
            v.verify_request(&KeyRequest::new(value)).await,
            Err(AuthError::INVALID)
        );
    }
    assert_eq!(probe.lookups(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_make_one_query() {
    let (v, probe, m) = setup(Settings::default()).await;
    let k = key(&m, "a", "alice").await;
    probe.delay_ms.store(100, Ordering::SeqCst);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let v = v.clone();
            let k = k.clone();
            tokio::spawn(async move { v.verify_request(&KeyRequest::new(k.expose())).await })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().is_ok());
    }
    assert_eq!(probe.lookups(), 1);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let v = v.clone();
            tokio::spawn(async move {
                v.verify_request(&KeyRequest::new("unknown-but-well-formed"))
                    .await
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), Err(AuthError::INVALID));
    }
    assert_eq!(probe.lookups(), 2, "one for the unknown key too");
}

#[tokio::test]
async fn a_change_drops_exactly_what_it_touches() {
    let (v, probe, m) = setup(Settings::default()).await;
    let a = key(&m, "a", "alice").await;
    let b = key(&m, "b", "bob").await;
    let c = key(&m, "c", "bob").await;
    for k in [&a, &b, &c] {
        v.verify_request(&KeyRequest::new(k.expose()))
            .await
            .unwrap();
    }
    assert_eq!(probe.lookups(), 3);
    m.revoke("a").await.unwrap();
    assert_eq!(
        v.verify_request(&KeyRequest::new(a.expose())).await,
        Err(AuthError::INVALID),
        "revoked at once"
    );
    assert_eq!(probe.lookups(), 4, "a was looked up again");
    v.verify_request(&KeyRequest::new(b.expose()))
        .await
        .unwrap();
    v.verify_request(&KeyRequest::new(c.expose()))
        .await
        .unwrap();
    assert_eq!(probe.lookups(), 4, "b and c stayed cached");

    m.set_user_active("bob", false).await.unwrap();
    assert_eq!(
        v.verify_request(&KeyRequest::new(b.expose())).await,
        Err(AuthError::INVALID)
    );
    assert_eq!(
        v.verify_request(&KeyRequest::new(c.expose())).await,
        Err(AuthError::INVALID)
    );
    m.set_user_active("bob", true).await.unwrap();
    assert!(
        v.verify_request(&KeyRequest::new(b.expose())).await.is_ok(),
        "the negative cache was dropped too"
    );

    m.activate("a").await.unwrap();
    assert!(v.verify_request(&KeyRequest::new(a.expose())).await.is_ok());
    m.delete("a").await.unwrap();
    assert_eq!(
        v.verify_request(&KeyRequest::new(a.expose())).await,
        Err(AuthError::INVALID),
        "deleted at once"
    );
    let (_, rotated) = m.rotate("b", Duration::ZERO).await.unwrap();
    assert_eq!(
        v.verify_request(&KeyRequest::new(b.expose())).await,
        Err(AuthError::INVALID),
        "rotated out at once"
    );
    assert!(v
        .verify_request(&KeyRequest::new(rotated.expose()))
        .await
        .is_ok());
}

#[tokio::test]
async fn a_key_created_after_a_miss_works_at_once() {
    let (v, _, m) = setup(Settings::default()).await;
    let secret = Secret::new("imported-key");
    assert_eq!(
        v.verify_request(&KeyRequest::new(secret.expose())).await,
        Err(AuthError::INVALID)
    );
    m.import(spec("late", "u", &[]), &secret).await.unwrap();
    assert!(v
        .verify_request(&KeyRequest::new(secret.expose()))
        .await
        .is_ok());
}

#[tokio::test]
async fn expiry_is_rechecked_on_every_hit() {
    // The verifier's clock, moved past the key's end instead of waiting for it.
    let (v, probe, m, clock) = setup_clocked().await;
    let (_, k) = m
        .create(CreateKey {
            expires_in: Some(Duration::from_secs(30)),
            ..spec("short", "u", &[])
        })
        .await
        .unwrap();
    assert!(v.verify_request(&KeyRequest::new(k.expose())).await.is_ok());
    // Well inside the cache's time to live (60 s): every answer below is the cache entry's.
    clock.advance(Duration::from_secs(29));
    assert!(
        v.verify_request(&KeyRequest::new(k.expose())).await.is_ok(),
        "a second before its end"
    );
    clock.advance(Duration::from_secs(5));
    probe.down.store(true, Ordering::SeqCst);
    assert_eq!(
        v.verify_request(&KeyRequest::new(k.expose())).await,
        Err(AuthError::INVALID),
        "refused from the cache entry itself, without asking the store"
    );
}

#[tokio::test]
async fn cached_keys_survive_an_outage_everything_else_is_unavailable() {
    let (v, probe, m) = setup(Settings::default()).await;
    let good = key(&m, "a", "alice").await;
    let other = key(&m, "b", "bob").await;
    v.verify_request(&KeyRequest::new(good.expose()))
        .await
        .unwrap();
    probe.down.store(true, Ordering::SeqCst);
    assert!(v
        .verify_request(&KeyRequest::new(good.expose()))
        .await
        .is_ok());
    assert_eq!(
        v.verify_request(&KeyRequest::new(other.expose())).await,
        Err(AuthError::Unavailable)
    );
    assert_eq!(
        v.verify_request(&KeyRequest::new("unknown")).await,
        Err(AuthError::Unavailable)
    );
    probe.down.store(false, Ordering::SeqCst);
    assert!(
        v.verify_request(&KeyRequest::new(other.expose()))
            .await
            .is_ok(),
        "no outage is cached"
    );
}

#[tokio::test]
async fn a_flood_of_wrong_keys_does_not_evict_good_ones() {
    let (v, probe, m) = setup(Settings::default()).await;
    let good = key(&m, "a", "alice").await;
    v.verify_request(&KeyRequest::new(good.expose()))
        .await
        .unwrap();
    for i in 0..(apikey_core::verify::NEGATIVE_CAPACITY + 1000) {
        let _ = v
            .verify_request(&KeyRequest::new(&format!("wrong-{i}")))
            .await;
    }
    let before = probe.lookups();
    assert!(v
        .verify_request(&KeyRequest::new(good.expose()))
        .await
        .is_ok());
    assert_eq!(probe.lookups(), before, "the good key is still cached");
}

#[tokio::test]
async fn a_zero_ttl_disables_the_caches() {
    let settings = Settings {
        cache_ttl: Duration::ZERO,
        negative_cache_ttl: Duration::ZERO,
        ..Settings::default()
    };
    let (v, probe, m) = setup(settings).await;
    let k = key(&m, "a", "alice").await;
    for _ in 0..3 {
        v.verify_request(&KeyRequest::new(k.expose()))
            .await
            .unwrap();
        let _ = v.verify_request(&KeyRequest::new("unknown")).await;
    }
    assert_eq!(probe.lookups(), 6);
}
