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
    let meter = l.configure("kept", None, None);
    for _ in 0..3 {
        l.admit(Some(&meter), "kept", now()).await.unwrap();
    }
    l.note("kept", Outcome::Forbidden);
    l.admit(None, "gone", now()).await.unwrap();
    l.flush().await.unwrap();
    let day = now() / 86_400;
    let kept = store.usage("kept", 0).await.unwrap();
    assert_eq!(
        (kept[0].day, kept[0].accepted, kept[0].forbidden),
        (day, 2, 1)
    );
    assert_eq!(store.usage("gone", 0).await.unwrap()[0].accepted, 1);
    assert!(known(&l, "kept"), "a cache entry still holds it");
    assert!(
        !known(&l, "gone"),
        "nothing holds it and nothing is pending"
    );
    drop(meter);
    l.flush().await.unwrap();
    assert!(!known(&l, "kept"));
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
