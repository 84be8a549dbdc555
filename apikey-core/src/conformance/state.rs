//! The checks of what a key carries besides its secret: its user's state, its rate limit and
//! when it was last used.

use std::time::Duration;

use time::OffsetDateTime;

use super::{by, create, digest, new_key};
use crate::model::{NewKey, RateLimit};
use crate::store::{SharedStore, StoreError};

#[doc(hidden)]
pub async fn users(store: SharedStore) {
    create(&store, "k1", "s1").await;
    create(&store, "k2", "s2").await;
    assert!(store.user_active("alice").await.unwrap());
    assert!(store.user_active("nobody").await.unwrap());
    assert_eq!(
        store.set_user_active("alice", false, &by()).await.unwrap(),
        2
    );
    assert!(!store.user_active("alice").await.unwrap());
    let m = store.find_by_digest(&digest("s1")).await.unwrap().unwrap();
    assert!(!m.record.user_active);
    assert!(!store.get("k2").await.unwrap().unwrap().user_active);
    assert!(store.list().await.unwrap().iter().all(|r| !r.user_active));
    assert_eq!(
        store.set_user_active("alice", true, &by()).await.unwrap(),
        2
    );
    assert!(store.get("k2").await.unwrap().unwrap().user_active);
    assert_eq!(
        store.set_user_active("nobody", false, &by()).await.unwrap(),
        0
    );
    assert!(matches!(
        store.set_user_active(" ", false, &by()).await,
        Err(StoreError::Invalid(_))
    ));
}

#[doc(hidden)]
pub async fn rate_limits(store: SharedStore) {
    let per_minute: RateLimit = "100/1m".parse().unwrap();
    let r = store
        .create(
            NewKey {
                rate_limit: Some(per_minute),
                ..new_key("k", "s")
            },
            &by(),
        )
        .await
        .unwrap();
    assert_eq!(r.rate_limit, Some(per_minute));
    let m = store.find_by_digest(&digest("s")).await.unwrap().unwrap();
    assert_eq!(m.record.rate_limit, Some(per_minute));
    let per_second: RateLimit = "5/s".parse().unwrap();
    let r = store
        .set_rate_limit("k", Some(per_second), &by())
        .await
        .unwrap();
    assert_eq!(r.rate_limit, Some(per_second));
    assert_eq!(
        store.get("k").await.unwrap().unwrap().rate_limit,
        Some(per_second)
    );
    let r = store.set_rate_limit("k", None, &by()).await.unwrap();
    assert_eq!(r.rate_limit, None);
}

#[doc(hidden)]
pub async fn last_used(store: SharedStore) {
    create(&store, "k", "s").await;
    let mut rx = store.changes().subscribe();
    // Let the creation's own announcements (a database store may relay them late) pass.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while rx.try_recv().is_ok() {}
    let at = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    store
        .touch(&["k".into(), "missing".into()], at)
        .await
        .unwrap();
    assert_eq!(
        store.get("k").await.unwrap().unwrap().last_used_at,
        Some(at)
    );
    let earlier = at - Duration::from_secs(60);
    store.touch(&["k".into()], earlier).await.unwrap();
    assert!(store.get("k").await.unwrap().unwrap().last_used_at >= Some(earlier));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(rx.try_recv().is_err(), "touching is not a change");
}
