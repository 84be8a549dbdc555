//! The digest filter: a spray of never-seen keys costs no store query, while every key the
//! store holds keeps working — created here (at once) or by another process (within 1 s).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apikey_core::{AuthError, KeyManager, Settings, SharedStore, Verifier};
use apikey_tests::{admin, filter_ready, per_store, spec, Probe, SharedDb};

async fn verifier_over(store: SharedStore) -> (Arc<Verifier>, Arc<Probe>, KeyManager) {
    let probe = Probe::new(store);
    let (verifier, admin) = probe.verifier(Settings::default()).await;
    (verifier, probe, admin)
}

/// Thousands of random well-formed keys: not one store query, and the stored keys still work.
async fn a_spray_of_unknown_keys_costs_no_store_query(store: SharedStore) {
    let (v, probe, m) = verifier_over(store).await;
    let (_, good) = m.create(spec("good", "alice", &[])).await.unwrap();
    filter_ready(&v).await;
    let (_, later) = m.create(spec("later", "alice", &[])).await.unwrap();
    assert!(
        v.verify(later.expose()).await.is_ok(),
        "created here: at once"
    );
    filter_ready(&v).await;
    let before = probe.lookups();
    for i in 0..5_000 {
        let spray = format!("spray-{i}-{}", i * 7919);
        assert_eq!(v.verify(&spray).await, Err(AuthError::Invalid));
    }
    let queries = probe.lookups() - before;
    // A false positive costs one query; at this size the filter has next to none.
    assert!(
        queries <= 5,
        "{queries} store queries for 5000 unknown keys"
    );
    assert!(v.filtered() >= 4_995);
    assert!(v.verify(good.expose()).await.is_ok());
    assert!(v.verify(later.expose()).await.is_ok());
    // A rotated key's new secret and a re-created name work at once too.
    let (_, rotated) = m.rotate("good", Duration::ZERO).await.unwrap();
    assert!(v.verify(rotated.expose()).await.is_ok());
    m.delete("later").await.unwrap();
    let (_, again) = m.create(spec("later", "alice", &[])).await.unwrap();
    assert!(v.verify(again.expose()).await.is_ok());
}

/// A store that cannot list its digests has no filter: every unknown key is asked for, and
/// nothing is refused wrongly.
async fn without_digest_listing_the_store_is_asked(store: SharedStore) {
    let probe = Probe::new(store);
    probe.hide_digests.store(true, Ordering::SeqCst);
    let (v, m) = probe.verifier(Settings::default()).await;
    let (_, good) = m.create(spec("good", "alice", &[])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!v.filter_stats().trusted);
    assert_eq!(v.verify("never-seen").await, Err(AuthError::Invalid));
    assert_eq!(probe.lookups(), 1);
    assert!(v.verify(good.expose()).await.is_ok());
}

per_store!(
    a_spray_of_unknown_keys_costs_no_store_query,
    without_digest_listing_the_store_is_asked
);

/// A key created through another connection (as by the CLI or another instance) is accepted
/// by a running verifier within 1 s, and an unknown key still costs no store query.
async fn created_elsewhere_works_within_a_second(service: SharedStore, other: SharedStore) {
    let (v, probe, _) = verifier_over(service).await;
    filter_ready(&v).await;
    let m = admin(&other);
    let start = Instant::now();
    let (_, key) = m.create(spec("elsewhere", "alice", &[])).await.unwrap();
    loop {
        match v.verify(key.expose()).await {
            Ok(_) => break,
            Err(AuthError::Invalid) => {
                assert!(start.elapsed() < Duration::from_secs(1), "not within 1 s");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    eprintln!(
        "accepted {:?} after its creation elsewhere",
        start.elapsed()
    );
    filter_ready(&v).await;
    let before = probe.lookups();
    assert_eq!(v.verify("never-seen-either").await, Err(AuthError::Invalid));
    assert_eq!(probe.lookups(), before);
}

/// A key created by another process (the CLI) on the same database.
async fn created_elsewhere(db: SharedDb) {
    created_elsewhere_works_within_a_second(db.store().await, db.store().await).await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_created_elsewhere_works_within_a_second() {
    created_elsewhere(SharedDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_created_elsewhere_works_within_a_second() {
    if let Some(db) = SharedDb::postgres() {
        created_elsewhere(db).await;
    }
}

/// While the change feed is not live (notifications lost), the filter is not trusted: a key
/// created elsewhere meanwhile is found in the store at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_feed_that_is_not_live_is_not_trusted() {
    let Some(db) = SharedDb::postgres() else {
        return;
    };
    let service = db.store().await;
    let (v, probe, _) = verifier_over(service.clone()).await;
    filter_ready(&v).await;
    service.changes().set_live(false);
    assert!(!v.filter_stats().trusted);
    let m = admin(&db.store().await);
    let (_, key) = m.create(spec("unheard", "alice", &[])).await.unwrap();
    assert!(v.verify(key.expose()).await.is_ok(), "asked the store");
    assert_eq!(probe.lookups(), 1);
    service.changes().set_live(true);
    filter_ready(&v).await;
    drop((v, probe, service, m));
    db.finish().await;
}
