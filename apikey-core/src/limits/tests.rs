//! The limits on their own: counting, local limits, and forgetting keys no longer in use.

use std::sync::Arc;

use super::{AuthError, CountSource, Limits, Outcome};
use crate::config::Settings;
use crate::model::UsageDay;
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

/// Counts kept elsewhere (as a verifier's cache keeps those of keys without limits), handed
/// over once.
#[derive(Default)]
struct Elsewhere(std::sync::Mutex<Vec<(String, UsageDay)>>);

impl Elsewhere {
    fn add(&self, tech: &str, accepted: u64) {
        self.0.lock().unwrap().push((
            tech.into(),
            UsageDay {
                day: now() / 86_400,
                accepted,
                forbidden: 0,
                limited: 0,
            },
        ));
    }
}

impl CountSource for Elsewhere {
    fn parts(&self) -> usize {
        1
    }

    fn take_counts(&self, _: usize, out: &mut Vec<(String, UsageDay)>) {
        out.append(&mut self.0.lock().unwrap());
    }
}

#[tokio::test]
async fn counts_are_written_and_idle_keys_forgotten() {
    let (l, store) = limits(Settings::default()).await;
    let elsewhere = Arc::new(Elsewhere::default());
    l.count_from(elsewhere.clone());
    let day = now() / 86_400;
    let usage = |tech: &'static str| {
        let store = store.clone();
        async move {
            let u = store.usage(tech, 0).await.unwrap();
            (u[0].day, u[0].accepted, u[0].forbidden)
        }
    };
    // A key without limits, and no default: no state at all, counted elsewhere.
    assert!(l.configure("open", None, None).is_none());
    assert!(!known(&l, "open"));
    elsewhere.add("open", 3);
    // Its route refused one of those: noted by name, taken off its accepted count.
    l.note("open", Outcome::Forbidden);
    // A key with limits is in the map while a cache entry holds it.
    let kept = l.configure("kept", Some("100/1m".parse().unwrap()), None);
    for _ in 0..2 {
        l.admit(kept.as_ref(), "kept", now()).await.unwrap();
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
    // Counted again after a write: written at the next, once.
    elsewhere.add("open", 1);
    l.flush().await.unwrap();
    assert_eq!(usage("open").await, (day, 3, 1));
    l.flush().await.unwrap();
    assert_eq!(usage("open").await, (day, 3, 1));
}

#[tokio::test]
async fn a_default_limit_gives_every_key_a_state() {
    let (l, _) = limits(Settings {
        rate_limit: Some("100/1m".parse().unwrap()),
        ..Settings::default()
    })
    .await;
    assert!(l.configure("open", None, None).is_some());
    assert!(known(&l, "open"));
}

#[tokio::test]
async fn lifting_a_keys_limits_clears_what_the_map_kept_of_them() {
    let (l, _) = limits(Settings::default()).await;
    let meter = l.configure("k", Some("1/1h".parse().unwrap()), None);
    l.admit(meter.as_ref(), "k", now()).await.unwrap();
    assert!(l.admit(None, "k", now()).await.is_err());
    assert!(l.configure("k", None, None).is_none());
    // A request that is not cached is counted by the map, and no longer limited there.
    l.admit(None, "k", now()).await.unwrap();
}

#[tokio::test]
async fn a_key_over_its_local_limit_is_kept_until_its_bucket_is_full() {
    let (l, _) = limits(Settings::default()).await;
    let meter = l.configure("busy", Some("2/1h".parse().unwrap()), None);
    l.admit(meter.as_ref(), "busy", now()).await.unwrap();
    l.admit(meter.as_ref(), "busy", now()).await.unwrap();
    assert!(matches!(
        l.admit(meter.as_ref(), "busy", now()).await,
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
