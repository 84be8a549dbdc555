//! The limits on their own: counting, local limits, and forgetting keys no longer in use.

use std::sync::Arc;

use super::{AuthError, Limits, Outcome};
use crate::config::Settings;
use crate::store::{KeyStore, MemoryStore, SharedLookup};

async fn limits(settings: Settings) -> (Limits, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    let lookup: SharedLookup = store.clone();
    (Limits::start(&settings, lookup).await.unwrap(), store)
}

fn known(l: &Limits, tech: &str) -> bool {
    l.inner.keys.each().any(|shard| shard.contains_key(tech))
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[tokio::test]
async fn counts_are_written_and_idle_keys_forgotten() {
    let (l, store) = limits(Settings::default()).await;
    let day = now() / 86_400;
    let usage = |tech: &'static str| {
        let store = store.clone();
        async move {
            let u = store.usage(tech, 0).await.unwrap();
            (u[0].day, u[0].accepted, u[0].forbidden)
        }
    };
    // A key without limits, and no default: no entry in the map, only its own counts.
    let open = l.configure("open", None, None);
    assert!(!known(&l, "open"));
    for _ in 0..3 {
        l.admit(Some(&open), "open", now()).await.unwrap();
    }
    // Its route refused one of those: noted by name, taken off its accepted count.
    l.note("open", Outcome::Forbidden);
    // A key with limits is in the map while a cache entry holds it.
    let kept = l.configure("kept", Some("100/1m".parse().unwrap()), None);
    for _ in 0..2 {
        l.admit(Some(&kept), "kept", now()).await.unwrap();
    }
    l.note("kept", Outcome::Forbidden);
    l.admit(None, "gone", now()).await.unwrap();
    l.flush().await.unwrap();
    assert_eq!(usage("open").await, (day, 2, 1));
    assert_eq!(usage("kept").await, (day, 1, 1));
    assert_eq!(usage("gone").await, (day, 1, 0));
    assert!(known(&l, "kept"), "a cache entry still holds it");
    assert!(
        !known(&l, "gone") && !known(&l, "open"),
        "nothing holds them and nothing is pending"
    );
    // Counted again after a write: listed again, written at the next.
    l.admit(Some(&open), "open", now()).await.unwrap();
    l.flush().await.unwrap();
    assert_eq!(usage("open").await, (day, 3, 1));
    // Written once only.
    l.flush().await.unwrap();
    assert_eq!(usage("open").await, (day, 3, 1));
}

#[tokio::test]
async fn a_key_over_its_local_limit_is_kept_until_its_bucket_is_full() {
    let (l, _) = limits(Settings::default()).await;
    let meter = l.configure("busy", Some("2/1h".parse().unwrap()), None);
    l.admit(Some(&meter), "busy", now()).await.unwrap();
    l.admit(Some(&meter), "busy", now()).await.unwrap();
    assert!(matches!(
        l.admit(Some(&meter), "busy", now()).await,
        Err(AuthError::RateLimited { .. })
    ));
    drop(meter);
    l.flush().await.unwrap();
    assert!(
        known(&l, "busy"),
        "forgetting it would hand it a fresh burst"
    );
    assert!(matches!(
        l.admit(None, "busy", now()).await,
        Err(AuthError::RateLimited { .. })
    ));
}

#[tokio::test]
async fn a_quota_counted_in_the_store_refuses_until_the_window_ends() {
    let (l, store) = limits(Settings {
        quota: Some("3/1d".parse().unwrap()),
        ..Settings::default()
    })
    .await;
    // A day that is over: its window index is in the past, the store counts it apart.
    let unix = 86_400 * 10 + 5;
    for _ in 0..3 {
        l.admit(None, "k", unix).await.unwrap();
    }
    match l.admit(None, "k", unix).await {
        Err(AuthError::QuotaExhausted { retry_after_secs }) => assert!(retry_after_secs >= 1),
        other => panic!("{other:?}"),
    }
    assert_eq!(store.quota_used("k", 10).await.unwrap(), 3);
    let stats = l.stats();
    assert_eq!((stats.rate_limits, stats.quotas), ("instance", "store"));
    assert!(!stats.fallback);
}
