//! The checks of what stores count for limits and reports: quotas and their uses, and request
//! counts per key and day.

use crate::model::KeyChange;
use std::sync::Arc;

use super::{by, digest, new_key};
use crate::model::{NewKey, Quota, UsageCount, UsageDay};
use crate::store::SharedStore;

fn day(day: i64, accepted: u64, forbidden: u64, limited: u64) -> UsageDay {
    UsageDay {
        day,
        accepted,
        forbidden,
        limited,
    }
}

#[doc(hidden)]
pub async fn quotas(store: SharedStore) {
    let monthly: Quota = "10000/30d".parse().unwrap();
    let r = store
        .create(
            NewKey {
                quota: Some(monthly),
                ..new_key("k", "s")
            },
            &by(),
        )
        .await
        .unwrap();
    assert_eq!(r.quota, Some(monthly));
    let m = store.find_by_digest(&digest("s")).await.unwrap().unwrap();
    assert_eq!(m.record.quota, Some(monthly));
    let daily: Quota = "500/1d".parse().unwrap();
    assert_eq!(
        store
            .change("k", KeyChange::Quota(Some(daily)), &by())
            .await
            .unwrap()
            .quota,
        Some(daily)
    );
    assert_eq!(store.get("k").await.unwrap().unwrap().quota, Some(daily));
    assert_eq!(
        store
            .change("k", KeyChange::Quota(None), &by())
            .await
            .unwrap()
            .quota,
        None
    );
    assert!(store
        .change("nope", KeyChange::Quota(Some(daily)), &by())
        .await
        .is_err());
}

#[doc(hidden)]
pub async fn quota_takes(store: SharedStore) {
    assert_eq!(store.quota_used("k", 7).await.unwrap(), 0);
    assert_eq!(store.take_quota("k", 7, 10, 4).await.unwrap(), 4);
    assert_eq!(store.take_quota("k", 7, 10, 4).await.unwrap(), 4);
    assert_eq!(
        store.take_quota("k", 7, 10, 4).await.unwrap(),
        2,
        "only what is left"
    );
    assert_eq!(store.take_quota("k", 7, 10, 4).await.unwrap(), 0);
    assert_eq!(store.quota_used("k", 7).await.unwrap(), 10);
    assert_eq!(store.quota_used("other", 7).await.unwrap(), 0);
    store.return_quota("k", 7, 3).await.unwrap();
    assert_eq!(store.quota_used("k", 7).await.unwrap(), 7);
    assert_eq!(store.take_quota("k", 7, 10, 5).await.unwrap(), 3);
    store.return_quota("k", 7, 100).await.unwrap();
    assert_eq!(
        store.quota_used("k", 7).await.unwrap(),
        0,
        "never below zero"
    );
    assert_eq!(
        store.take_quota("k", 8, 10, 1).await.unwrap(),
        1,
        "a new window starts full"
    );
    assert_eq!(store.quota_used("k", 8).await.unwrap(), 1);
    // The count after a take, where the store tells it; never a wrong one.
    let (granted, used) = store.take_quota_counted("k", 9, 10, 4).await.unwrap();
    assert_eq!(granted, 4);
    assert!(used.is_none_or(|u| u == 4), "{used:?}");
    let (granted, used) = store.take_quota_counted("k", 9, 10, 9).await.unwrap();
    assert_eq!(granted, 6, "only what is left");
    assert!(used.is_none_or(|u| u == 10), "{used:?}");
}

#[doc(hidden)]
pub async fn concurrent_quota_takes(store: SharedStore) {
    let takers = (0..8).map(|_| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let mut got = 0;
            for _ in 0..10 {
                got += store.take_quota("k", 1, 50, 3).await.unwrap();
            }
            got
        })
    });
    let mut total = 0;
    for t in takers {
        total += t.await.unwrap();
    }
    assert_eq!(total, 50, "concurrent takers share the quota exactly");
    assert_eq!(store.quota_used("k", 1).await.unwrap(), 50);
}

#[doc(hidden)]
pub async fn usage_counts(store: SharedStore) {
    let count = |tech: &str, d: UsageDay| UsageCount {
        tech_name: tech.into(),
        counts: d,
    };
    store
        .add_usage(&[count("k", day(100, 5, 1, 0)), count("k", day(101, 2, 0, 3))])
        .await
        .unwrap();
    store
        .add_usage(&[
            count("k", day(100, 1, 1, 1)),
            count("other", day(100, 9, 9, 9)),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.usage("k", 0).await.unwrap(),
        vec![day(100, 6, 2, 1), day(101, 2, 0, 3)]
    );
    assert_eq!(
        store.usage("k", 101).await.unwrap(),
        vec![day(101, 2, 0, 3)]
    );
    assert!(store.usage("nobody", 0).await.unwrap().is_empty());
    let totals = store.usage_totals(0).await.unwrap();
    assert_eq!(totals.get("k"), Some(&14));
    assert_eq!(totals.get("other"), Some(&27));
    assert_eq!(totals.len(), 2);
    let totals = store.usage_totals(101).await.unwrap();
    assert_eq!(totals.get("k"), Some(&5));
    assert_eq!(totals.len(), 1, "{totals:?}");
}
