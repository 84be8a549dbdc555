//! The checks of what a key carries besides its secret: its user's state, its rate limit and
//! when it was last used.

use crate::model::KeyChange;
use std::time::Duration;

use time::OffsetDateTime;

use super::{by, create, digest, new_key};
use crate::model::{AllowIp, AuditFilter, NewKey, RateLimit};
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
    assert!(store
        .list(&crate::model::KeyFilter::all())
        .await
        .unwrap()
        .iter()
        .all(|r| !r.user_active));
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
        .change("k", KeyChange::RateLimit(Some(per_second)), &by())
        .await
        .unwrap();
    assert_eq!(r.rate_limit, Some(per_second));
    assert_eq!(
        store.get("k").await.unwrap().unwrap().rate_limit,
        Some(per_second)
    );
    let r = store
        .change("k", KeyChange::RateLimit(None), &by())
        .await
        .unwrap();
    assert_eq!(r.rate_limit, None);
}

#[doc(hidden)]
pub async fn address_allowlists(store: SharedStore) {
    let office = AllowIp::parse(&["10.0.0.0/8", "2001:db8::/32"]).unwrap();
    let r = store
        .create(
            NewKey {
                allow_ip: office.clone(),
                ..new_key("k", "s")
            },
            &by(),
        )
        .await
        .unwrap();
    assert_eq!(r.allow_ip, office);
    let m = store.find_by_digest(&digest("s")).await.unwrap().unwrap();
    assert_eq!(m.record.allow_ip, office);
    assert!(create(&store, "open", "s2").await.allow_ip.is_empty());
    let one = AllowIp::parse(&["192.0.2.7"]).unwrap();
    let mut rx = store.changes().subscribe();
    let r = store
        .change("k", KeyChange::AllowIp(one.clone()), &by())
        .await
        .unwrap();
    assert_eq!(r.allow_ip, one);
    assert_eq!(store.get("k").await.unwrap().unwrap().allow_ip, one);
    let announced = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
    assert!(announced.is_ok(), "a new allowlist is a change");
    let r = store
        .change("k", KeyChange::AllowIp(AllowIp::default()), &by())
        .await
        .unwrap();
    assert!(r.allow_ip.is_empty());
    assert!(store
        .list(&crate::model::KeyFilter::all())
        .await
        .unwrap()
        .iter()
        .all(|r| r.allow_ip.is_empty()));
    assert!(matches!(
        store
            .change("missing", KeyChange::AllowIp(one), &by())
            .await,
        Err(StoreError::NotFound(_))
    ));
    let filter = AuditFilter {
        name: Some("k".into()),
        since: None,
    };
    let trail: Vec<String> = store
        .audit(&filter)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.action == "allow-ip")
        .map(|a| a.summary)
        .collect();
    assert_eq!(trail, ["only from 192.0.2.7/32", "from any address"]);
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
