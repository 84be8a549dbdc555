//! The checks of the audit trail, imports and neutralize.

use std::time::Duration;

use time::OffsetDateTime;

use super::{by, create, digest, found, new_key};
use crate::model::{
    Actor, AuditFilter, GroupEdit, Groups, Imported, ImportedKey, NewKey, NewSecret,
};
use crate::store::{Change, SharedStore, StoreError};

fn filter(name: &str) -> AuditFilter {
    AuditFilter {
        name: Some(name.into()),
        since: None,
    }
}

fn imported(name: &str, key: &str, user: &str, groups: &[&str], active: bool) -> ImportedKey {
    ImportedKey {
        key: NewKey {
            user: user.into(),
            groups: Groups::new(groups).unwrap(),
            ..new_key(name, key)
        },
        active,
    }
}

#[doc(hidden)]
pub async fn audit_trail(store: SharedStore) {
    let start = OffsetDateTime::now_utc() - Duration::from_secs(2);
    let alice = Actor::new("alice").unwrap();
    store
        .create(new_key("k", "secret-k"), &alice)
        .await
        .unwrap();
    store.set_active("k", false, &by()).await.unwrap();
    store.set_active("k", true, &by()).await.unwrap();
    let edit = GroupEdit {
        add: Groups::one("billing").unwrap(),
        remove: Groups::default(),
    };
    store.edit_groups("k", &edit, &by()).await.unwrap();
    let limit = "10/1m".parse().ok();
    store.set_rate_limit("k", limit, &by()).await.unwrap();
    let secret = NewSecret::new(digest("secret-k2"), "ak_k2", None);
    store.rotate("k", secret, &by()).await.unwrap();
    store.set_user_active("alice", false, &by()).await.unwrap();
    store.delete("k", &by()).await.unwrap();
    // A failed change records nothing.
    assert!(store.set_active("missing", false, &by()).await.is_err());

    let all = store.audit(&AuditFilter::default()).await.unwrap();
    let actions: Vec<&str> = all.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "create",
            "revoke",
            "activate",
            "groups",
            "rate-limit",
            "rotate",
            "user-disable",
            "delete"
        ]
    );
    assert_eq!(all[0].actor, "alice");
    assert!(all[1..].iter().all(|a| a.actor == "conformance"));
    assert!(all.iter().all(|a| a.at >= start));
    assert_eq!(
        all[6].name, "alice",
        "user changes are filed under the user"
    );
    assert!(all[3].summary.contains("billing"), "{}", all[3].summary);
    assert!(all[4].summary.contains("10/1m"), "{}", all[4].summary);
    for entry in &all {
        let text = format!("{entry:?}");
        assert!(!text.contains("secret-k"), "no secret: {text}");
        for d in [digest("secret-k"), digest("secret-k2")] {
            let hex: String = d.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
            assert!(!text.to_lowercase().contains(&hex), "no digest: {text}");
        }
    }
    let of_k = store.audit(&filter("k")).await.unwrap();
    assert_eq!(of_k.len(), 7);
    let later = OffsetDateTime::now_utc() + Duration::from_secs(60);
    assert!(store
        .audit(&AuditFilter {
            name: None,
            since: Some(later)
        })
        .await
        .unwrap()
        .is_empty());
}

#[doc(hidden)]
pub async fn import_is_idempotent(store: SharedStore) {
    let first = imported("Odoo Key", "odoo-secret", "demo", &["g-one"], true);
    assert_eq!(
        store.import(first.clone(), &by()).await.unwrap(),
        Imported::Created
    );
    assert_eq!(
        found(&store, "odoo-secret").await.as_deref(),
        Some("Odoo Key")
    );
    let mut rx = store.changes().subscribe();
    // Let the creation's own announcements (a database store may relay them late) pass.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while rx.try_recv().is_ok() {}
    assert_eq!(
        store.import(first, &by()).await.unwrap(),
        Imported::Unchanged
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let unchanged_announced =
        std::iter::from_fn(|| rx.try_recv().ok()).any(|c| c == Change::Key("Odoo Key".into()));
    assert!(!unchanged_announced, "an unchanged import changes nothing");
    let audited = store.audit(&filter("Odoo Key")).await.unwrap();
    assert_eq!(audited.len(), 1, "an unchanged import is not audited");

    // A new value, other groups, inactive: brought in line in one go.
    let changed = imported("Odoo Key", "odoo-secret-2", "demo", &["g-two"], false);
    assert_eq!(
        store.import(changed, &by()).await.unwrap(),
        Imported::Updated
    );
    assert_eq!(
        found(&store, "odoo-secret").await,
        None,
        "the old value is gone"
    );
    let r = store.get("Odoo Key").await.unwrap().unwrap();
    assert_eq!(r.groups, ["g-two"]);
    assert!(!r.active);
    assert_eq!(
        found(&store, "odoo-secret-2").await.as_deref(),
        Some("Odoo Key")
    );

    // A value another key holds is refused, and nothing is written.
    create(&store, "other", "taken").await;
    let clash = imported("Clash", "taken", "demo", &[], true);
    assert!(store.import(clash, &by()).await.is_err());
    assert_eq!(store.get("Clash").await.unwrap(), None);

    // A key made here is never taken over by an import of its name.
    assert_eq!(store.imported("Odoo Key").await.unwrap(), Some(true));
    assert_eq!(store.imported("other").await.unwrap(), Some(false));
    assert_eq!(store.imported("nobody").await.unwrap(), None);
    let takeover = imported("other", "takeover-secret", "intruder", &["admin"], true);
    assert!(matches!(
        store.import(takeover, &by()).await,
        Err(StoreError::Invalid(_))
    ));
    let other = store.get("other").await.unwrap().unwrap();
    assert_ne!(other.user, "intruder");
    assert_eq!(found(&store, "taken").await.as_deref(), Some("other"));
    assert_eq!(found(&store, "takeover-secret").await, None);
}

#[doc(hidden)]
pub async fn deactivate_all(store: SharedStore) {
    create(&store, "a", "sa").await;
    create(&store, "b", "sb").await;
    store.set_active("b", false, &by()).await.unwrap();
    let mut rx = store.changes().subscribe();
    assert_eq!(store.deactivate_all(&by()).await.unwrap(), 1);
    assert!(store.list().await.unwrap().iter().all(|r| !r.active));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(Change::All)) => break,
            Ok(_) => {}
            Err(_) => panic!("neutralize announced no Change::All"),
        }
    }
    let last = store
        .audit(&AuditFilter::default())
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(
        (last.action.as_str(), last.name.as_str()),
        ("neutralize", "*")
    );
    assert_eq!(store.deactivate_all(&by()).await.unwrap(), 0);
}
