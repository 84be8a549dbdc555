//! The checks of the audit trail, imports and neutralize.

use crate::model::KeyChange;
use std::time::Duration;

use time::OffsetDateTime;

use super::{by, create, digest, found, new_key};
use crate::model::{
    Actor, AllowIp, AuditFilter, GroupEdit, Groups, Imported, ImportedKey, KeyEdit, KeyOrigin,
    MetaEdit, NewKey, NewSecret, OwnRotation, RotationRefusal, ScopeEdit, Scopes,
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
    store
        .change("k", KeyChange::Active(false), &by())
        .await
        .unwrap();
    store
        .change("k", KeyChange::Active(true), &by())
        .await
        .unwrap();
    let edit = GroupEdit {
        add: Groups::one("billing").unwrap(),
        remove: Groups::default(),
    };
    store
        .change("k", KeyChange::EditGroups(edit.clone()), &by())
        .await
        .unwrap();
    let limit = "10/1m".parse().ok();
    store
        .change("k", KeyChange::RateLimit(limit), &by())
        .await
        .unwrap();
    let secret = NewSecret::new(digest("secret-k2"), "ak_k2", None);
    store.rotate("k", secret, &by()).await.unwrap();
    store.set_user_active("alice", false, &by()).await.unwrap();
    store.delete("k", &by()).await.unwrap();
    // A failed change records nothing.
    assert!(store
        .change("missing", KeyChange::Active(false), &by())
        .await
        .is_err());

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
            let hex = crate::key::hex(d.as_bytes());
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
    assert_eq!(
        store.origin("Odoo Key").await.unwrap(),
        Some(KeyOrigin::Imported)
    );
    assert_eq!(store.origin("other").await.unwrap(), Some(KeyOrigin::Here));
    assert_eq!(store.origin("nobody").await.unwrap(), None);
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
    store
        .change("b", KeyChange::Active(false), &by())
        .await
        .unwrap();
    let mut rx = store.changes().subscribe();
    assert_eq!(store.deactivate_all(&by()).await.unwrap(), 1);
    assert!(store
        .list(&crate::model::KeyFilter::all())
        .await
        .unwrap()
        .iter()
        .all(|r| !r.active));
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

/// Changes made here to an imported key, each on a key of its own.
const LOCAL_CHANGES: [&str; 8] = [
    "revoke",
    "rotate",
    "groups",
    "rate-limit",
    "quota",
    "allow-ip",
    "user-enable",
    "neutralize",
];

async fn change_here(store: &SharedStore, change: &str, name: &str, user: &str) {
    match change {
        "revoke" => drop(
            store
                .change(name, KeyChange::Active(false), &by())
                .await
                .unwrap(),
        ),
        "rotate" => {
            let secret = NewSecret::new(digest(&format!("{name}-rotated")), "ak_r", None);
            store.rotate(name, secret, &by()).await.unwrap();
        }
        "groups" => {
            let groups = Groups::one("local").unwrap();
            store
                .change(name, KeyChange::Groups(groups), &by())
                .await
                .unwrap();
        }
        "rate-limit" => {
            let limit = "10/1m".parse().ok();
            store
                .change(name, KeyChange::RateLimit(limit), &by())
                .await
                .unwrap();
        }
        "quota" => {
            let quota = "100/1d".parse().ok();
            store
                .change(name, KeyChange::Quota(quota), &by())
                .await
                .unwrap();
        }
        "allow-ip" => {
            let allow = AllowIp::parse(&["10.0.0.0/8"]).unwrap();
            store
                .change(name, KeyChange::AllowIp(allow), &by())
                .await
                .unwrap();
        }
        "user-enable" => {
            store.set_user_active(user, true, &by()).await.unwrap();
        }
        "neutralize" => drop(store.deactivate_all(&by()).await.unwrap()),
        other => unreachable!("{other}"),
    }
}

/// An imported key changed here (revoked, rotated, groups, limits, networks, its user enabled,
/// neutralized) is left as it is by a later import: [`Imported::Conflict`], nothing written,
/// never re-activated nor given the imported secret back. Keys an import merely updated are
/// still brought in line.
#[doc(hidden)]
pub async fn import_leaves_local_changes(store: SharedStore) {
    for change in LOCAL_CHANGES {
        let name = format!("odoo-{change}");
        let user = format!("user-{change}");
        let value = format!("{name}-value");
        let key = imported(&name, &value, &user, &["g"], true);
        assert_eq!(
            store.import(key.clone(), &by()).await.unwrap(),
            Imported::Created
        );
        // An import's own update does not count as a change here.
        let moved = imported(&name, &value, &user, &["g", "h"], true);
        assert_eq!(
            store.import(moved.clone(), &by()).await.unwrap(),
            Imported::Updated,
            "{change}"
        );
        change_here(&store, change, &name, &user).await;
        assert_eq!(
            store.origin(&name).await.unwrap(),
            Some(KeyOrigin::ChangedSinceImport),
            "{change}"
        );
        let before = store.get(&name).await.unwrap().unwrap();
        let trail = store.audit(&filter(&name)).await.unwrap().len();
        assert_eq!(
            store.import(moved, &by()).await.unwrap(),
            Imported::Conflict,
            "{change}"
        );
        let after = store.get(&name).await.unwrap().unwrap();
        assert_eq!(before, after, "{change}: the import changed nothing");
        assert_eq!(
            store.audit(&filter(&name)).await.unwrap().len(),
            trail,
            "{change}: nothing audited"
        );
        if change == "rotate" {
            assert_eq!(
                found(&store, &value).await,
                None,
                "the imported secret is not given back"
            );
        }
        if matches!(change, "revoke" | "neutralize") {
            assert!(!after.active, "{change}: not re-activated");
        }
        if change == "neutralize" {
            // Every key is inactive now: start the next round from a fresh state.
            break;
        }
    }
}

fn own(presented: &str, every: Duration) -> OwnRotation {
    OwnRotation {
        presented: digest(presented),
        every,
    }
}

/// A key rotating itself: only its current secret may (a secret in its grace, or one no longer
/// the key's, is refused with nothing written), at most once per interval counting every
/// rotation of the key (an administrator's too), and an interval too long to add to a date
/// refuses instead of panicking.
#[doc(hidden)]
pub async fn own_rotation_rules(store: SharedStore) {
    create(&store, "own", "own-0").await;
    let hour = Duration::from_secs(3600);
    let grace = Some(OffsetDateTime::now_utc() + hour);
    let mut first = NewSecret::new(digest("own-1"), "ak_1", grace);
    first.own = Some(own("own-0", hour));
    store.rotate("own", first, &by()).await.unwrap();
    // The old secret, still in its grace, may not rotate the key.
    let mut thief = NewSecret::new(digest("own-2"), "ak_2", grace);
    thief.own = Some(own("own-0", Duration::ZERO));
    assert_eq!(
        store.rotate("own", thief, &by()).await.unwrap_err(),
        StoreError::RotationRefused(RotationRefusal::SecretInGrace)
    );
    assert_eq!(found(&store, "own-2").await, None, "nothing written");
    assert_eq!(found(&store, "own-1").await.as_deref(), Some("own"));
    assert_eq!(found(&store, "own-0").await.as_deref(), Some("own"));
    // A secret that is not the key's at all.
    let mut stranger = NewSecret::new(digest("own-3"), "ak_3", grace);
    stranger.own = Some(own("never-stored", Duration::ZERO));
    assert_eq!(
        store.rotate("own", stranger, &by()).await.unwrap_err(),
        StoreError::RotationRefused(RotationRefusal::SecretInGrace)
    );
    // The current secret, within the interval: too soon, whoever rotated last.
    let mut soon = NewSecret::new(digest("own-4"), "ak_4", grace);
    soon.own = Some(own("own-1", hour));
    match store.rotate("own", soon, &by()).await.unwrap_err() {
        StoreError::RotationRefused(RotationRefusal::TooSoon { retry_after_secs }) => {
            assert!(
                (3500..=3600).contains(&retry_after_secs),
                "{retry_after_secs}"
            );
        }
        other => panic!("{other:?}"),
    }
    // A huge interval refuses, never panics.
    let mut forever = NewSecret::new(digest("own-5"), "ak_5", grace);
    forever.own = Some(own("own-1", Duration::from_secs(10_000 * 365 * 86_400)));
    assert!(matches!(
        store.rotate("own", forever, &by()).await.unwrap_err(),
        StoreError::RotationRefused(RotationRefusal::TooSoon { .. })
    ));
    let mut max = NewSecret::new(digest("own-6"), "ak_6", grace);
    max.own = Some(own("own-1", Duration::MAX));
    assert!(store.rotate("own", max, &by()).await.is_err());
    // With no interval, the current secret rotates.
    let mut now = NewSecret::new(digest("own-7"), "ak_7", None);
    now.own = Some(own("own-1", Duration::ZERO));
    store.rotate("own", now, &by()).await.unwrap();
    assert_eq!(found(&store, "own-7").await.as_deref(), Some("own"));

    // An administrator's rotation counts for the interval too.
    create(&store, "own-admin", "adm-0").await;
    let admin = NewSecret::new(digest("adm-1"), "ak_a1", None);
    store.rotate("own-admin", admin, &by()).await.unwrap();
    let mut after_admin = NewSecret::new(digest("adm-2"), "ak_a2", None);
    after_admin.own = Some(own("adm-1", hour));
    assert!(matches!(
        store
            .rotate("own-admin", after_admin, &by())
            .await
            .unwrap_err(),
        StoreError::RotationRefused(RotationRefusal::TooSoon { .. })
    ));

    // Concurrent rotations of one key by its current secret: exactly one is made.
    create(&store, "own-race", "race-0").await;
    let tries = (0..16).map(|i| {
        let store = store.clone();
        async move {
            let mut secret = NewSecret::new(digest(&format!("race-new-{i}")), "ak_r", grace);
            secret.own = Some(own("race-0", hour));
            store.rotate("own-race", secret, &by()).await
        }
    });
    let outcomes = futures_util::future::join_all(tries).await;
    let made = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(made, 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| match o {
        Ok(_) => true,
        Err(StoreError::RotationRefused(_)) => true,
        Err(e) => panic!("{e:?}"),
    }));
}

/// Secret scanning reports are claimed once per window, whatever the number of concurrent
/// claims; a released claim (a report that failed half-way) can be claimed again; a claim
/// older than the window no longer counts.
#[doc(hidden)]
pub async fn report_claims(store: SharedStore) {
    let day = Duration::from_secs(86_400);
    let now = OffsetDateTime::now_utc();
    let body = [7u8; 32];
    let claims = (0..8).map(|_| {
        let store = store.clone();
        async move { store.claim_report(&body, now, day).await.unwrap() }
    });
    let won = futures_util::future::join_all(claims).await;
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    assert!(
        !store.claim_report(&body, now, day).await.unwrap(),
        "a replay"
    );
    let other = [8u8; 32];
    assert!(store.claim_report(&other, now, day).await.unwrap());
    store.release_report(&other).await.unwrap();
    assert!(
        store.claim_report(&other, now, day).await.unwrap(),
        "released"
    );
    // A day and a second later, the first claim has expired.
    let later = now + Duration::from_secs(86_401);
    assert!(store.claim_report(&body, later, day).await.unwrap());
    assert!(!store.claim_report(&body, later, day).await.unwrap());
}

/// Every [`KeyChange`] through the one `change` method: applied, returned, read back the same,
/// audited under its action with a summary of the key as it left it, announced; a missing key
/// is `NotFound` with nothing written.
#[doc(hidden)]
pub async fn every_change(store: SharedStore) {
    create(&store, "k", "secret-k").await;
    let in_a_year = OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp())
        .unwrap()
        + Duration::from_secs(365 * 86_400);
    let ten = "10/1m".parse().ok();
    let daily = "500/1d".parse().ok();
    let nets = AllowIp::parse(&["10.0.0.0/8"]).unwrap();
    let changes = [
        (KeyChange::Active(false), "revoke", "revoked"),
        (KeyChange::Active(true), "activate", "activated"),
        (
            KeyChange::Groups(Groups::new(["b", "a"]).unwrap()),
            "groups",
            "groups a, b",
        ),
        (
            KeyChange::EditGroups(GroupEdit::new(["c"], ["a"]).unwrap()),
            "groups",
            "groups b, c",
        ),
        (KeyChange::RateLimit(ten), "rate-limit", "rate limit 10/1m"),
        (KeyChange::Quota(daily), "quota", "quota 500/1d"),
        (
            KeyChange::AllowIp(nets.clone()),
            "allow-ip",
            "only from 10.0.0.0/8",
        ),
        (KeyChange::Expiry(Some(in_a_year)), "expiry", "expires "),
        (KeyChange::Expiry(None), "expiry", "no expiry"),
        (
            KeyChange::RateLimit(None),
            "rate-limit",
            "the default rate limit",
        ),
        (KeyChange::Quota(None), "quota", "the default quota"),
        (
            KeyChange::AllowIp(AllowIp::default()),
            "allow-ip",
            "from any address",
        ),
        (
            KeyChange::Scopes(Scopes::new(["orders:read", "invoices:*"]).unwrap()),
            "scopes",
            "no scopes → scopes invoices:*, orders:read",
        ),
        (
            KeyChange::EditScopes(ScopeEdit::new(["orders:write"], ["invoices:*"]).unwrap()),
            "scopes",
            "scopes invoices:*, orders:read → scopes orders:read, orders:write",
        ),
        (
            KeyChange::Edit(Box::new(KeyEdit {
                expires_at: Some(Some(in_a_year)),
                meta: MetaEdit::new([("plan", "pro")], Vec::<String>::new()).unwrap(),
                ..KeyEdit::default()
            })),
            "set",
            "no expiry → expires ",
        ),
    ];
    let mut rx = store.changes().subscribe();
    let mut expected = store.get("k").await.unwrap().unwrap();
    for (change, action, summary) in changes {
        change.apply(&mut expected).expect("a valid change");
        assert_eq!(change.action(), action);
        let returned = store.change("k", change.clone(), &by()).await.unwrap();
        assert_eq!(returned, expected, "{change:?}");
        let read = store.get("k").await.unwrap().unwrap();
        assert_eq!(read, expected, "{change:?} read back");
        let last = store.audit(&filter("k")).await.unwrap().pop().unwrap();
        assert_eq!(last.action, action, "{change:?}");
        assert!(
            last.summary.starts_with(summary),
            "{change:?}: {}",
            last.summary
        );
        assert_eq!(last.actor, "conformance");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Ok(Change::Key(name))) if name == "k" => break,
                Ok(_) => {}
                Err(_) => panic!("{change:?} was not announced"),
            }
        }
    }
    assert_eq!(expected.groups, ["b", "c"]);
    assert!(expected.active);
    // The expiry took effect: a key expired in the store is not found as usable.
    let trail = store.audit(&filter("k")).await.unwrap().len();
    let missing = store
        .change("missing", KeyChange::Groups(Groups::default()), &by())
        .await;
    assert_eq!(missing, Err(StoreError::NotFound("missing".into())));
    assert_eq!(store.audit(&filter("k")).await.unwrap().len(), trail);
    assert!(store.audit(&filter("missing")).await.unwrap().is_empty());
}
