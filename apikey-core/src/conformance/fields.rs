//! The checks of what a team writes on a key after creating it: scopes, a description and
//! metadata, edits of several fields in one change, and the filters of `list`.

use std::time::Duration;

use time::OffsetDateTime;

use super::{by, create, digest, new_key};
use crate::model::{
    AuditFilter, Groups, KeyChange, KeyEdit, KeyFilter, Meta, MetaEdit, NewKey, ScopeEdit, Scopes,
};
use crate::store::{SharedStore, StoreError};

fn names(records: &[crate::model::KeyRecord]) -> Vec<&str> {
    records.iter().map(|r| r.name.as_str()).collect()
}

fn whole_seconds(t: OffsetDateTime) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(t.unix_timestamp()).expect("a valid time")
}

/// Scopes, a description and metadata are stored at creation and read back the same by
/// `get`, `get_by_tech_name`, `find_by_digest` and `list`.
#[doc(hidden)]
pub async fn scopes_and_metadata(store: SharedStore) {
    let meta = Meta::new([("plan", "pro"), ("customer", "c-42 ü")]).unwrap();
    let created = store
        .create(
            NewKey {
                scopes: Scopes::new(["orders:write", "invoices:*"]).unwrap(),
                description: Some("the shop's\nbackend".into()),
                meta: meta.clone(),
                ..new_key("Shop", "secret-shop")
            },
            &by(),
        )
        .await
        .unwrap();
    assert_eq!(created.scopes, ["invoices:*", "orders:write"]);
    assert_eq!(created.description.as_deref(), Some("the shop's\nbackend"));
    assert_eq!(created.meta, meta);
    assert_eq!(store.get("Shop").await.unwrap().unwrap(), created);
    assert_eq!(
        store.get_by_tech_name("shop").await.unwrap().unwrap(),
        created
    );
    let found = store
        .find_by_digest(&digest("secret-shop"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.record, created);
    assert_eq!(
        store.list(&KeyFilter::all()).await.unwrap(),
        vec![created.clone()]
    );
    // A key made without them has none.
    let plain = create(&store, "plain", "secret-plain").await;
    assert!(plain.scopes.is_empty() && plain.description.is_none() && plain.meta.is_empty());
    // A description that is not readable text is refused with nothing written.
    let refused = store
        .create(
            NewKey {
                description: Some("ring\u{7}".into()),
                ..new_key("bell", "secret-bell")
            },
            &by(),
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::Invalid(_))),
        "{refused:?}"
    );
    assert!(store.get("bell").await.unwrap().is_none());
}

/// One edit of several fields is one change: applied together, audited once with what changed
/// (old → new; metadata by name, never by value); metadata that would outgrow its size is
/// refused with nothing written.
#[doc(hidden)]
pub async fn edits(store: SharedStore) {
    create(&store, "k", "secret-k").await;
    let in_a_month = whole_seconds(OffsetDateTime::now_utc()) + Duration::from_secs(30 * 86_400);
    let edit = KeyEdit {
        user: Some("bob".into()),
        expires_at: Some(Some(in_a_month)),
        description: Some(Some("billing backend".into())),
        meta: MetaEdit::new([("plan", "private-plan-value"), ("tier", "2")], ["none"]).unwrap(),
        scopes: Some(Scopes::new(["orders:read"]).unwrap()),
        ..KeyEdit::default()
    };
    let changed = store
        .change("k", KeyChange::Edit(Box::new(edit)), &by())
        .await
        .unwrap();
    assert_eq!(changed.expires_at, Some(in_a_month));
    assert_eq!(changed.user, "bob");
    assert_eq!(changed.description.as_deref(), Some("billing backend"));
    assert_eq!(changed.meta.get("plan"), Some("private-plan-value"));
    assert_eq!(changed.scopes, ["orders:read"]);
    assert_eq!(store.get("k").await.unwrap().unwrap(), changed);
    let filter = AuditFilter {
        name: Some("k".into()),
        since: None,
    };
    let last = store.audit(&filter).await.unwrap().pop().unwrap();
    assert_eq!(last.action, "set");
    assert!(
        last.summary.contains("no expiry → expires"),
        "{}",
        last.summary
    );
    assert!(
        last.summary.contains("no scopes → scopes orders:read"),
        "{}",
        last.summary
    );
    assert!(last.summary.contains("description set"), "{}", last.summary);
    assert!(
        last.summary.contains("metadata plan, tier set"),
        "{}",
        last.summary
    );
    assert!(
        !last.summary.contains("private-plan-value"),
        "{}",
        last.summary
    );

    // Scope edits add and remove; unset metadata goes; the rest stays.
    let added = store
        .change(
            "k",
            KeyChange::EditScopes(ScopeEdit::new(["orders:*"], ["orders:read"]).unwrap()),
            &by(),
        )
        .await
        .unwrap();
    assert_eq!(added.scopes, ["orders:*"]);
    let unset = KeyEdit {
        meta: MetaEdit::new(Vec::<(String, String)>::new(), ["tier"]).unwrap(),
        description: Some(None),
        expires_at: Some(None),
        ..KeyEdit::default()
    };
    let after = store
        .change("k", KeyChange::Edit(Box::new(unset)), &by())
        .await
        .unwrap();
    assert_eq!(
        after.meta,
        Meta::new([("plan", "private-plan-value")]).unwrap()
    );
    assert_eq!(after.description, None);
    assert_eq!(after.expires_at, None);
    assert_eq!(after.scopes, ["orders:*"]);

    // Too much metadata: refused, nothing written, nothing audited.
    let trail = store.audit(&filter).await.unwrap().len();
    let big = KeyEdit {
        meta: MetaEdit::new([("blob", "x".repeat(4090))], Vec::<String>::new()).unwrap(),
        description: Some(Some("never stored".into())),
        ..KeyEdit::default()
    };
    let refused = store
        .change("k", KeyChange::Edit(Box::new(big)), &by())
        .await;
    assert!(
        matches!(refused, Err(StoreError::Invalid(_))),
        "{refused:?}"
    );
    assert_eq!(store.get("k").await.unwrap().unwrap(), after);
    assert_eq!(store.audit(&filter).await.unwrap().len(), trail);
}

/// `list` with a filter: by user, by group (exactly: no prefix, no case folding, no pattern
/// characters), revoked or active, expiring within a window; conditions combine.
#[doc(hidden)]
pub async fn list_filters(store: SharedStore) {
    let now = OffsetDateTime::now_utc();
    let make =
        |name: &'static str, user: &'static str, groups: &[&str], days: Option<u64>| NewKey {
            user: user.into(),
            groups: Groups::new(groups).unwrap(),
            expires_at: days.map(|d| now + Duration::from_secs(d * 86_400)),
            ..new_key(name, &format!("secret-{name}"))
        };
    let keys = [
        make("a", "alice", &["billing"], Some(3)),
        make("b", "alice", &["billing-ops", "Billing"], Some(60)),
        make("c", "bob", &["bill", "x%_\"y"], None),
        make("d", "bob", &[], Some(10)),
    ];
    for k in keys {
        store.create(k, &by()).await.unwrap();
    }
    store
        .change("d", KeyChange::Active(false), &by())
        .await
        .unwrap();
    let list = |f: KeyFilter| {
        let store = store.clone();
        async move { store.list(&f).await.unwrap() }
    };
    let all = list(KeyFilter::all()).await;
    assert_eq!(names(&all), ["a", "b", "c", "d"]);
    let by_user = list(KeyFilter {
        user: Some("alice".into()),
        ..KeyFilter::default()
    })
    .await;
    assert_eq!(names(&by_user), ["a", "b"]);
    for (group, expected) in [
        ("billing", vec!["a"]),
        ("Billing", vec!["b"]),
        ("bill", vec!["c"]),
        ("x%_\"y", vec!["c"]),
        ("%", vec![]),
        ("", vec![]),
    ] {
        let got = list(KeyFilter {
            group: Some(group.into()),
            ..KeyFilter::default()
        })
        .await;
        assert_eq!(names(&got), expected, "group {group:?}");
    }
    let revoked = list(KeyFilter {
        revoked: Some(true),
        ..KeyFilter::default()
    })
    .await;
    assert_eq!(names(&revoked), ["d"]);
    let active = list(KeyFilter {
        revoked: Some(false),
        ..KeyFilter::default()
    })
    .await;
    assert_eq!(names(&active), ["a", "b", "c"]);
    let expiring = list(KeyFilter {
        expiring_within: Some(Duration::from_secs(14 * 86_400)),
        ..KeyFilter::default()
    })
    .await;
    assert_eq!(names(&expiring), ["a", "d"]);
    let combined = list(KeyFilter {
        user: Some("bob".into()),
        expiring_within: Some(Duration::from_secs(14 * 86_400)),
        revoked: Some(true),
        ..KeyFilter::default()
    })
    .await;
    assert_eq!(names(&combined), ["d"]);
    // What the database answers is what the filter's own rule says.
    for f in [
        KeyFilter {
            group: Some("billing-ops".into()),
            user: Some("alice".into()),
            ..KeyFilter::default()
        },
        KeyFilter {
            expiring_within: Some(Duration::from_secs(90 * 86_400)),
            revoked: Some(false),
            ..KeyFilter::default()
        },
    ] {
        let expected: Vec<&str> = all
            .iter()
            .filter(|r| f.matches(r, OffsetDateTime::now_utc()))
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(names(&list(f.clone()).await), expected, "{f:?}");
    }
}
