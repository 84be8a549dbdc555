//! Database stores across processes: changes reach other pools, migrations refuse newer
//! stores, and only digests are at rest.

use std::time::{Duration, Instant};

use apikey_core::store::{PostgresStore, SqliteStore};
use apikey_core::{Change, Secret, SharedStore, StoreError};
use apikey_tests::{admin, spec, SharedDb};

/// Waits for `want` on `rx`; returns the time since `start` (taken before the write).
async fn seen(
    rx: &mut tokio::sync::broadcast::Receiver<Change>,
    want: &Change,
    start: Instant,
) -> Duration {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(c)) if c == *want || c == Change::All => return start.elapsed(),
            Ok(_) => {}
            Err(_) => panic!("{want:?} never reached the other pool"),
        }
    }
}

/// A change made through one pool reaches a second pool's subscribers.
async fn changes_cross_pools(writer: SharedStore, reader: SharedStore, label: &str) {
    let mut rx = reader.changes().subscribe();
    let m = admin(&writer);
    let mut delays = Vec::new();
    for i in 0..5 {
        let name = format!("k{i}");
        let start = Instant::now();
        m.create(spec(&name, "alice", &[])).await.unwrap();
        delays.push(seen(&mut rx, &Change::Key(name.clone()), start).await);
        let start = Instant::now();
        m.revoke(&name).await.unwrap();
        delays.push(seen(&mut rx, &Change::Key(name.clone()), start).await);
        // The reader's next lookup sees the revocation: no cache holds it.
        let r = reader.get(&name).await.unwrap().unwrap();
        assert!(!r.active);
    }
    let start = Instant::now();
    m.set_user_active("alice", false).await.unwrap();
    delays.push(seen(&mut rx, &Change::User("alice".into()), start).await);
    delays.sort();
    eprintln!(
        "{label}: change seen by the other pool after p50 {:?}, max {:?}",
        delays[delays.len() / 2],
        delays[delays.len() - 1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_changes_reach_other_pools() {
    let db = SharedDb::sqlite();
    changes_cross_pools(db.store().await, db.store().await, "SQLite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_changes_reach_other_pools() {
    let Some(db) = SharedDb::postgres() else {
        return;
    };
    changes_cross_pools(db.store().await, db.store().await, "PostgreSQL").await;
    db.finish().await;
}

#[tokio::test]
async fn sqlite_store_newer_than_the_binary_is_refused() {
    let db = SharedDb::sqlite();
    let url = db.url.clone();
    drop(db.store().await);
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (999, 'from the future', TRUE, x'00', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let err = SqliteStore::connect(&url).await.unwrap_err();
    assert_eq!(
        err,
        StoreError::TooNew {
            found: 999,
            supported: apikey_core::store::SCHEMA_VERSION
        }
    );
    assert!(err.to_string().contains("upgrade apikey"), "{err}");
}

#[tokio::test]
async fn postgres_store_newer_than_the_binary_is_refused() {
    let Some(db) = SharedDb::postgres() else {
        return;
    };
    let (url, schema) = (db.url.clone(), db.schema.clone().unwrap());
    drop(db.store().await);
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {schema}._sqlx_migrations \
         (version, description, success, checksum, execution_time) \
         VALUES (999, 'from the future', TRUE, '\\x00', 0)"
    )))
    .execute(&pool)
    .await
    .unwrap();
    let err = PostgresStore::connect_in_schema(&url, &schema)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::TooNew { found: 999, .. }),
        "{err}"
    );
    pool.close().await;
    db.finish().await;
}

/// A key created, then rotated with a grace period, in `db`: the two secrets.
async fn created_and_rotated(db: &SharedDb) -> [Secret; 2] {
    let m = admin(&db.store().await);
    let (_, key) = m.create(spec("at rest", "alice", &[])).await.unwrap();
    let (_, rotated) = m
        .rotate("at rest", Duration::from_secs(3600))
        .await
        .unwrap();
    [key, rotated]
}

#[tokio::test]
async fn sqlite_holds_no_key_at_rest() {
    let db = SharedDb::sqlite();
    let secrets = created_and_rotated(&db).await;
    // Every text and blob cell of every table, and then the raw bytes of the database files.
    let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
    let mut dump = String::new();
    for (table, columns) in [
        (
            "apikey_keys",
            "name || tech_name || user_name || group_names || stub",
        ),
        ("apikey_secrets", "hex(digest)"),
        ("apikey_users", "name"),
        ("apikey_changes", "kind || name"),
    ] {
        let cells: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT {columns} FROM {table}"
        )))
        .fetch_all(&pool)
        .await
        .unwrap();
        dump.extend(cells);
    }
    let digests: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM apikey_secrets")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        digests, 2,
        "the rotated-out secret is kept, as a digest, for its grace"
    );
    pool.close().await;
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(db.dir().unwrap()).unwrap() {
        bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let raw = String::from_utf8_lossy(&bytes);
    for secret in secrets.iter().map(Secret::expose) {
        assert!(!dump.contains(secret));
        assert!(!raw.contains(secret), "the key is in the database files");
        // Nor any long run of the secret part.
        assert!(!raw.contains(&secret[7..30]));
    }
}

#[tokio::test]
async fn postgres_holds_no_key_at_rest() {
    let Some(db) = SharedDb::postgres() else {
        return;
    };
    let secrets = created_and_rotated(&db).await;
    let schema = db.schema.clone().unwrap();
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    // Every row of every table of the schema, as text.
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
    )
    .bind(&schema)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(tables.len() >= 4, "{tables:?}");
    let mut dump = String::new();
    for table in tables {
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT t::text FROM {schema}.{table} t"
        )))
        .fetch_all(&pool)
        .await
        .unwrap();
        dump.extend(rows);
    }
    assert!(dump.contains("at rest"), "the dump holds the rows");
    for secret in secrets.iter().map(Secret::expose) {
        assert!(!dump.contains(secret));
        assert!(!dump.contains(&secret[7..30]));
    }
    pool.close().await;
    db.finish().await;
}

/// SQLite store files (the database and its `-wal` and `-shm` files) are readable by their
/// owner only, whoever creates them.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let db = SharedDb::sqlite();
    let store = db.store().await;
    admin(&store).create(spec("k", "alice", &[])).await.unwrap();
    let mut seen = 0;
    for suffix in ["", "-wal", "-shm"] {
        let file = db.dir().unwrap().join(format!("keys.db{suffix}"));
        if let Ok(meta) = std::fs::metadata(&file) {
            seen += 1;
            let mode = meta.permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} is {mode:o}", file.display());
        }
    }
    assert!(seen >= 2, "the database and its WAL exist");
}
