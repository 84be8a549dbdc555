//! A change is in force when the call that made it returns: races between changes and
//! lookups, and between two changes, each forced into its worst interleaving by a gate or a
//! lock held from outside (no sleeps as synchronisation).

use std::time::Duration;

use apikey_core::store::SqliteStore;
use apikey_core::KeyRequest;
use apikey_core::{
    ApiKeyConfig, AuthError, Change, KeyLookup, KeyManager, Settings, SharedStore, StoreError,
    Verifier,
};
use apikey_tests::{admin, per_store, spec, Probe, SharedDb};
use sqlx::Connection;

/// A lookup reads the store while the key is active and is parked before it answers; the key
/// is revoked; a request arriving after the revocation returned must not share that lookup's
/// old answer (it did when in-flight lookups were shared by digest alone).
async fn a_request_after_a_change_never_joins_a_lookup_from_before_it(store: SharedStore) {
    let probe = Probe::new(store);
    let (verifier, manager) = probe.verifier(Settings::default()).await;
    let (_, key) = manager.create(spec("k", "alice", &[])).await.unwrap();

    let gate = probe.park_next_lookup();
    let early = tokio::spawn({
        let (v, k) = (verifier.clone(), key.clone());
        async move { v.verify_request(&KeyRequest::new(k.expose())).await }
    });
    gate.parked.await.expect("the first lookup read the store");
    manager.revoke("k").await.unwrap();

    // The late request runs first in this join, so it would find and join the parked lookup
    // before the gate opens.
    let release = gate.release;
    let late_request = KeyRequest::new(key.expose());
    let (late, ()) = tokio::join!(verifier.verify_request(&late_request), async move {
        tokio::task::yield_now().await;
        let _ = release.send(());
    });
    assert_eq!(
        late,
        Err(AuthError::INVALID),
        "answered from before the revocation"
    );
    // The early request came before the revocation returned: either answer is fair.
    let _ = early.await.unwrap();
    assert_eq!(
        verifier
            .verify_request(&KeyRequest::new(key.expose()))
            .await,
        Err(AuthError::INVALID),
        "the early answer was not cached"
    );
}

/// Two concurrent edits of one key's groups: both land.
async fn concurrent_group_edits_lose_nothing(store: SharedStore) {
    let m = admin(&store);
    m.create(spec("k", "alice", &["billing"])).await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let m = m.clone();
            tokio::spawn(async move { m.change("k", edit(&[&format!("g{i}")], &[])).await })
        })
        .chain(std::iter::once({
            let m = m.clone();
            tokio::spawn(async move { m.change("k", edit(&[], &["billing"])).await })
        }))
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let groups = store.get("k").await.unwrap().unwrap().groups;
    let mut want: Vec<String> = (0..20).map(|i| format!("g{i}")).collect();
    want.sort();
    assert_eq!(groups, want);
    assert!(matches!(
        m.change("nope", edit(&["x"], &[])).await,
        Err(StoreError::NotFound(_))
    ));
}

per_store!(
    a_request_after_a_change_never_joins_a_lookup_from_before_it,
    concurrent_group_edits_lose_nothing
);

/// A PostgreSQL store in a fresh schema whose connections carry the schema as their
/// application name (so a test can see them wait), its URL and its schema.
async fn pg_store() -> Option<(SharedDb, String, String, SharedStore)> {
    let db = SharedDb::postgres()?;
    let (url, schema) = (db.url.clone(), db.schema.clone()?);
    let sep = if url.contains('?') { '&' } else { '?' };
    let store = db
        .postgres_store_at(&format!("{url}{sep}application_name={schema}"))
        .await;
    Some((db, url, schema, store))
}

/// Opens a connection in `schema` and begins a transaction there.
async fn pg_locker(url: &str, schema: &str) -> sqlx::PgConnection {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("SET search_path TO {schema}")))
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
    conn
}

/// Waits until `n` of the store's connections wait for a lock.
async fn pg_waiting(conn: &mut sqlx::PgConnection, schema: &str, n: i64) {
    for _ in 0..1000 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE application_name = $1 AND wait_event_type = 'Lock'",
        )
        .bind(schema)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        if waiting >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the writers never queued up");
}

/// Secrets of key `name` that still work (no end, or an end in the future).
async fn pg_live_secrets(conn: &mut sqlx::PgConnection, name: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM apikey_secrets s JOIN apikey_keys k ON k.id = s.key_id \
         WHERE k.name = $1 AND (s.valid_until IS NULL OR s.valid_until > extract(epoch FROM now()))",
    )
    .bind(name)
    .fetch_one(&mut *conn)
    .await
    .unwrap()
}

/// Two `rotate --grace 0` of one key, both queued behind a lock held from outside on its
/// secrets and released at once: exactly one new secret may work afterwards. (Without a lock
/// on the key, each deleted the secrets it saw and both new secrets survived.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_rotations_leave_one_valid_key() {
    let Some((db, url, schema, store)) = pg_store().await else {
        return;
    };
    let config = ApiKeyConfig::default();
    let m = KeyManager::new(store.clone(), &config);
    let (_, original) = m.create(spec("k", "alice", &[])).await.unwrap();

    let mut locker = pg_locker(&url, &schema).await;
    sqlx::query("SELECT 1 FROM apikey_secrets FOR UPDATE")
        .execute(&mut locker)
        .await
        .unwrap();
    let rotations: Vec<_> = (0..2)
        .map(|_| {
            let m = m.clone();
            tokio::spawn(async move { m.rotate("k", Duration::ZERO).await })
        })
        .collect();
    let mut watcher = sqlx::PgConnection::connect(&url).await.unwrap();
    pg_waiting(&mut watcher, &schema, 2).await;
    sqlx::query("COMMIT").execute(&mut locker).await.unwrap();
    let mut keys = Vec::new();
    for r in rotations {
        keys.push(r.await.unwrap().expect("rotate").1);
    }

    sqlx::query(sqlx::AssertSqlSafe(format!("SET search_path TO {schema}")))
        .execute(&mut watcher)
        .await
        .unwrap();
    assert_eq!(pg_live_secrets(&mut watcher, "k").await, 1);
    let verifier = Verifier::new(config, store.clone()).await.unwrap();
    let requests: Vec<KeyRequest> = [&original, &keys[0], &keys[1]]
        .iter()
        .map(|k| KeyRequest::new(k.expose()))
        .collect();
    let valid = requests
        .iter()
        .map(|r| verifier.verify_request(r))
        .collect::<Vec<_>>();
    let mut accepted = 0;
    for v in valid {
        accepted += usize::from(v.await.is_ok());
    }
    assert_eq!(accepted, 1, "exactly one key works after two rotations");
    drop(verifier);
    drop((m, store));
    db.finish().await;
}

/// `group remove k billing` and `group add k reports` at the same time, both queued behind a
/// lock held from outside on the key: both must land. (A read in the CLI followed by a write
/// lost the removal.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_group_edits_both_land() {
    let Some((db, url, schema, store)) = pg_store().await else {
        return;
    };
    let m = admin(&store);
    m.create(spec("k", "alice", &["billing"])).await.unwrap();
    let mut locker = pg_locker(&url, &schema).await;
    sqlx::query("SELECT 1 FROM apikey_keys FOR UPDATE")
        .execute(&mut locker)
        .await
        .unwrap();
    let remove = tokio::spawn({
        let m = m.clone();
        async move { m.change("k", edit(&[], &["billing"])).await }
    });
    let add = tokio::spawn({
        let m = m.clone();
        async move { m.change("k", edit(&["reports"], &[])).await }
    });
    let mut watcher = sqlx::PgConnection::connect(&url).await.unwrap();
    pg_waiting(&mut watcher, &schema, 2).await;
    sqlx::query("COMMIT").execute(&mut locker).await.unwrap();
    remove.await.unwrap().unwrap();
    add.await.unwrap().unwrap();
    assert_eq!(
        store.get("k").await.unwrap().unwrap().groups,
        vec!["reports".to_owned()]
    );
    drop((m, store));
    db.finish().await;
}

/// SQLite: rotations and group edits queued behind another connection's write transaction
/// all succeed (none fails on a stale snapshot) and leave one working secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_concurrent_writers_serialize() {
    let db = SharedDb::sqlite();
    let url = db.url.clone();
    let store = db.store().await;
    let config = ApiKeyConfig::default();
    let m = KeyManager::new(store.clone(), &config);
    m.create(spec("k", "alice", &["billing"])).await.unwrap();

    let mut locker = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut locker)
        .await
        .unwrap();
    let rotations: Vec<_> = (0..4)
        .map(|_| {
            let m = m.clone();
            tokio::spawn(async move { m.rotate("k", Duration::ZERO).await })
        })
        .collect();
    let edits: Vec<_> = [(&["reports"][..], &[][..]), (&[][..], &["billing"][..])]
        .into_iter()
        .map(|(add, remove)| {
            let m = m.clone();
            tokio::spawn(async move { m.change("k", edit(add, remove)).await })
        })
        .collect();
    // Let every writer start and read before the lock goes away (a stale read is what used
    // to fail); the outcome is checked whatever the order.
    tokio::time::sleep(Duration::from_millis(200)).await;
    sqlx::query("COMMIT").execute(&mut locker).await.unwrap();
    for r in rotations {
        r.await.unwrap().expect("rotate under contention");
    }
    for e in edits {
        e.await.unwrap().expect("group edit under contention");
    }
    let live: i64 = sqlx::query_scalar("SELECT count(*) FROM apikey_secrets")
        .fetch_one(&mut locker)
        .await
        .unwrap();
    assert_eq!(live, 1);
    assert_eq!(
        store.get("k").await.unwrap().unwrap().groups,
        vec!["reports".to_owned()]
    );
}

/// A watcher that missed change-log rows (pruned while it was not looking) drops
/// everything instead of trusting what it has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_change_log_gap_drops_everything() {
    let db = SharedDb::sqlite();
    let url = db.url.clone();
    let watcher = SqliteStore::connect(&url).await.unwrap();
    let mut rx = watcher.changes().subscribe();
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    // Rows 1-3 written and pruned, row 4 left: the watcher (at 0) never saw 1-3.
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut conn)
        .await
        .unwrap();
    for name in ["a", "b", "c", "d"] {
        sqlx::query("INSERT INTO apikey_changes (kind, name, at) VALUES ('k', $1, 0)")
            .bind(name)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    sqlx::query("DELETE FROM apikey_changes WHERE name != 'd'")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("COMMIT").execute(&mut conn).await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("the watcher noticed")
        .unwrap();
    assert_eq!(seen, Change::All);
}

/// Adds `add` to a key's groups and removes `remove`, as one change.
fn edit(add: &[&str], remove: &[&str]) -> apikey_core::model::KeyChange {
    let edit = apikey_core::model::GroupEdit::new(add, remove).expect("valid group names");
    apikey_core::model::KeyChange::EditGroups(edit)
}
