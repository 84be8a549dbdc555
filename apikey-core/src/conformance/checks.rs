//! The checks of the conformance suite, one public function each.

use crate::model::KeyChange;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use super::{by, create, digest, found, new_key};
use crate::model::{Groups, NewKey, NewSecret};
use crate::store::{Change, SharedStore, StoreError};

#[doc(hidden)]
pub async fn create_and_lookup(store: SharedStore) {
    let before = OffsetDateTime::now_utc() - Duration::from_secs(2);
    let created = store
        .create(
            NewKey {
                groups: Groups::new(["b", "a", "b"]).unwrap(),
                ..new_key("My Service", "secret-1")
            },
            &by(),
        )
        .await
        .unwrap();
    assert_eq!(created.name, "My Service");
    assert_eq!(created.tech_name, "my_service");
    assert_eq!(created.user, "alice");
    assert_eq!(created.groups, ["a", "b"]);
    assert!(created.active && created.user_active);
    assert_eq!(created.stub, "ak_test");
    assert_eq!(created.expires_at, None);
    assert_eq!(created.last_used_at, None);
    assert!(created.created_at >= before);
    let m = store
        .find_by_digest(&digest("secret-1"))
        .await
        .unwrap()
        .expect("found by digest");
    assert_eq!(m.record, created);
    assert_eq!(m.digest, digest("secret-1"));
    assert_eq!(m.valid_until, None);
    assert_eq!(
        store.get("My Service").await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(
        store.get_by_tech_name("my_service").await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(store.get("my_service").await.unwrap(), None);
    create(&store, "Another", "secret-2").await;
    let names: Vec<_> = store
        .list(&crate::model::KeyFilter::all())
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["Another", "My Service"]);
}

#[doc(hidden)]
pub async fn unknown_digest(store: SharedStore) {
    create(&store, "k", "secret").await;
    assert_eq!(found(&store, "other").await, None);
    assert_eq!(found(&store, "").await, None);
}

#[doc(hidden)]
pub async fn duplicate_names(store: SharedStore) {
    create(&store, "My Key", "s1").await;
    for name in ["My Key", "my key", "MY-KEY"] {
        let e = store.create(new_key(name, "s2"), &by()).await.unwrap_err();
        assert_eq!(e, StoreError::Duplicate(name.into()));
    }
    assert_eq!(found(&store, "s2").await, None, "nothing half-written");
    assert_eq!(
        store
            .list(&crate::model::KeyFilter::all())
            .await
            .unwrap()
            .len(),
        1
    );
}

#[doc(hidden)]
pub async fn invalid_new_keys(store: SharedStore) {
    for (name, user) in [
        ("", "u"),
        ("   ", "u"),
        ("日本", "u"),
        ("ok", ""),
        ("ok", " "),
    ] {
        let e = store
            .create(
                NewKey {
                    user: user.into(),
                    ..new_key(name, "s")
                },
                &by(),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(e, StoreError::Invalid(_)),
            "{name:?}/{user:?}: {e:?}"
        );
    }
    assert!(store
        .list(&crate::model::KeyFilter::all())
        .await
        .unwrap()
        .is_empty());
}

#[doc(hidden)]
pub async fn revoke_and_activate(store: SharedStore) {
    create(&store, "k", "s").await;
    let r = store
        .change("k", KeyChange::Active(false), &by())
        .await
        .unwrap();
    assert!(!r.active);
    let m = store.find_by_digest(&digest("s")).await.unwrap().unwrap();
    assert!(!m.record.active, "a revoked key is still found, and marked");
    assert!(
        store
            .change("k", KeyChange::Active(true), &by())
            .await
            .unwrap()
            .active
    );
    assert!(store.get("k").await.unwrap().unwrap().active);
}

#[doc(hidden)]
pub async fn delete(store: SharedStore) {
    create(&store, "k", "s").await;
    store.delete("k", &by()).await.unwrap();
    assert_eq!(found(&store, "s").await, None);
    assert_eq!(store.get("k").await.unwrap(), None);
    assert_eq!(
        store.delete("k", &by()).await,
        Err(StoreError::NotFound("k".into()))
    );
    // The name and the secret can be used again.
    create(&store, "k", "s").await;
}

#[doc(hidden)]
pub async fn unknown_names(store: SharedStore) {
    let nf = Err::<(), _>(StoreError::NotFound("nope".into()));
    assert_eq!(
        store
            .change("nope", KeyChange::Active(false), &by())
            .await
            .map(|_| ()),
        nf
    );
    assert_eq!(store.delete("nope", &by()).await, nf);
    assert_eq!(
        store
            .rotate("nope", NewSecret::new(digest("x"), "ak_x", None), &by())
            .await
            .map(|_| ()),
        nf
    );
    assert_eq!(
        store
            .change("nope", KeyChange::Groups(Groups::default()), &by())
            .await
            .map(|_| ()),
        nf
    );
    assert_eq!(found(&store, "x").await, None);
}

#[doc(hidden)]
pub async fn rotate_without_grace(store: SharedStore) {
    create(&store, "k", "old").await;
    let r = store
        .rotate("k", NewSecret::new(digest("new"), "ak_new", None), &by())
        .await
        .unwrap();
    assert_eq!(r.stub, "ak_new");
    assert_eq!(found(&store, "old").await, None);
    assert_eq!(found(&store, "new").await.as_deref(), Some("k"));
    let past = OffsetDateTime::now_utc() - Duration::from_secs(60);
    store
        .rotate(
            "k",
            NewSecret::new(digest("newer"), "ak_nwr", Some(past)),
            &by(),
        )
        .await
        .unwrap();
    assert_eq!(
        found(&store, "new").await,
        None,
        "a grace in the past is none"
    );
}

#[doc(hidden)]
pub async fn rotate_with_grace(store: SharedStore) {
    create(&store, "k", "old").await;
    let until = OffsetDateTime::now_utc() + Duration::from_secs(3600);
    store
        .rotate(
            "k",
            NewSecret::new(digest("new"), "ak_new", Some(until)),
            &by(),
        )
        .await
        .unwrap();
    let old = store.find_by_digest(&digest("old")).await.unwrap().unwrap();
    let end = old.valid_until.expect("the old secret has a grace end");
    assert!((end - until).abs() <= time::Duration::seconds(1));
    let new = store.find_by_digest(&digest("new")).await.unwrap().unwrap();
    assert_eq!(new.valid_until, None);
    // A second rotation does not extend the first grace.
    let later = until + Duration::from_secs(3600);
    store
        .rotate(
            "k",
            NewSecret::new(digest("newest"), "ak_nst", Some(later)),
            &by(),
        )
        .await
        .unwrap();
    let old = store.find_by_digest(&digest("old")).await.unwrap().unwrap();
    assert!((old.valid_until.unwrap() - until).abs() <= time::Duration::seconds(1));
    // Rotation without grace ends every old secret.
    store
        .rotate("k", NewSecret::new(digest("final"), "ak_fin", None), &by())
        .await
        .unwrap();
    for gone in ["old", "new", "newest"] {
        assert_eq!(found(&store, gone).await, None, "{gone}");
    }
    // Deleting the key ends its secrets in grace too.
    store
        .rotate(
            "k",
            NewSecret::new(digest("after"), "ak_aft", Some(until)),
            &by(),
        )
        .await
        .unwrap();
    store.delete("k", &by()).await.unwrap();
    assert_eq!(found(&store, "final").await, None);
}

#[doc(hidden)]
pub async fn expiry(store: SharedStore) {
    let at = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() + Duration::from_secs(90);
    let r = store
        .create(
            NewKey {
                expires_at: Some(at),
                ..new_key("k", "s")
            },
            &by(),
        )
        .await
        .unwrap();
    assert_eq!(r.expires_at, Some(at));
    assert!(!r.is_expired(OffsetDateTime::now_utc()));
    assert!(r.is_expired(at));
    let m = store.find_by_digest(&digest("s")).await.unwrap().unwrap();
    assert_eq!(m.record.expires_at, Some(at));
}

#[doc(hidden)]
pub async fn groups(store: SharedStore) {
    create(&store, "k", "s").await;
    let r = store
        .change(
            "k",
            KeyChange::Groups(Groups::new(["x", " y ", "x", ""]).unwrap()),
            &by(),
        )
        .await
        .unwrap();
    assert_eq!(r.groups, ["x", "y"]);
    let m = store.find_by_digest(&digest("s")).await.unwrap().unwrap();
    assert_eq!(m.record.groups, ["x", "y"]);
    assert!(store
        .change("k", KeyChange::Groups(Groups::default()), &by())
        .await
        .unwrap()
        .groups
        .is_empty());
}

async fn next_change(rx: &mut tokio::sync::broadcast::Receiver<Change>, want: &Change) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(c)) if c == *want || c == Change::All => return,
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            other => panic!("no {want:?} announced: {other:?}"),
        }
    }
}

#[doc(hidden)]
pub async fn changes_are_announced(store: SharedStore) {
    let mut rx = store.changes().subscribe();
    let key = Change::Key("k".into());
    create(&store, "k", "s").await;
    next_change(&mut rx, &key).await;
    store
        .change("k", KeyChange::Active(false), &by())
        .await
        .unwrap();
    next_change(&mut rx, &key).await;
    store
        .rotate("k", NewSecret::new(digest("s2"), "ak_s2", None), &by())
        .await
        .unwrap();
    next_change(&mut rx, &key).await;
    store.set_user_active("alice", false, &by()).await.unwrap();
    next_change(&mut rx, &Change::User("alice".into())).await;
    store.delete("k", &by()).await.unwrap();
    next_change(&mut rx, &key).await;
}

#[doc(hidden)]
pub async fn reused_secret(store: SharedStore) {
    create(&store, "a", "same").await;
    assert!(matches!(
        store.create(new_key("b", "same"), &by()).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(store.get("b").await.unwrap(), None, "nothing half-written");
    create(&store, "b", "other").await;
    assert!(matches!(
        store
            .rotate("b", NewSecret::new(digest("same"), "ak_x", None), &by())
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(
        found(&store, "other").await.as_deref(),
        Some("b"),
        "rotation undone"
    );
}

#[doc(hidden)]
pub async fn concurrent_writes(store: SharedStore) {
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let name = format!("key {i}");
                store
                    .create(new_key(&name, &format!("s{i}")), &by())
                    .await?;
                if i % 2 == 0 {
                    store.change(&name, KeyChange::Active(false), &by()).await?;
                }
                Ok::<_, StoreError>(())
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let all = store.list(&crate::model::KeyFilter::all()).await.unwrap();
    assert_eq!(all.len(), 200);
    assert_eq!(all.iter().filter(|r| !r.active).count(), 100);
}

/// What a store lists for the verifier's filter ([`KeyLookup::all_digests`](crate::KeyLookup::all_digests),
/// [`digests_of`](crate::KeyLookup::digests_of)): every digest that verifies, each with its
/// key's length when the key's stub tells it (a generated key's current secret), none for a
/// free-form key's secret or for a secret in its rotation grace; nothing of a revoked key. A
/// store that cannot list (`Ok(None)`) passes.
#[doc(hidden)]
pub async fn listed_digests(store: SharedStore) {
    use crate::store::UsableDigest;
    let generated_len = crate::KeyFormat::key_len_of_stub("ak_test");
    assert!(generated_len.is_some());
    create(&store, "generated", "g-old").await;
    store
        .create(
            NewKey {
                stub: "(custom)".into(),
                ..new_key("free", "free-form")
            },
            &by(),
        )
        .await
        .unwrap();
    create(&store, "revoked", "r").await;
    store
        .change("revoked", KeyChange::Active(false), &by())
        .await
        .unwrap();
    let until = OffsetDateTime::now_utc() + Duration::from_secs(3600);
    store
        .rotate(
            "generated",
            NewSecret::new(digest("g-new"), "ak_gnew", Some(until)),
            &by(),
        )
        .await
        .unwrap();
    let Some(mut all) = store.all_digests().await.unwrap() else {
        return;
    };
    all.sort_by_key(|u| *u.digest.as_bytes());
    let mut want = vec![
        UsableDigest::of(digest("g-old"), None),
        UsableDigest::of(digest("g-new"), Some("ak_gnew")),
        UsableDigest::of(digest("free-form"), Some("(custom)")),
    ];
    want.sort_by_key(|u| *u.digest.as_bytes());
    assert_eq!(all, want);
    assert_eq!(
        all.iter().filter(|u| u.key_len.is_some()).count(),
        1,
        "only the generated key's current secret has a known length"
    );
    let mut of = store.digests_of("generated").await.unwrap().unwrap();
    of.sort_by_key(|u| *u.digest.as_bytes());
    let mut want_of = vec![
        UsableDigest::of(digest("g-old"), None),
        UsableDigest::of(digest("g-new"), Some("ak_gnew")),
    ];
    want_of.sort_by_key(|u| *u.digest.as_bytes());
    assert_eq!(of, want_of);
    assert_eq!(store.digests_of("revoked").await.unwrap(), Some(vec![]));
    assert_eq!(store.digests_of("nope").await.unwrap(), Some(vec![]));
}
