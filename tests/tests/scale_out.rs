//! Two instances on one store: a revocation made elsewhere reaches both. The bound here is
//! generous on purpose; `cargo bench -p apikey-bench --bench revocation` measures the delay.

use std::sync::Arc;
use std::time::Duration;

use apikey_core::store::{PostgresStore, SqliteStore};
use apikey_core::SharedStore;
use apikey_tests::{drop_schema, postgres_url, unique_schema, Cluster};

const LIMIT: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_revocation_reaches_both_instances() {
    let Some(url) = postgres_url() else {
        eprintln!("skipped: APIKEY_TEST_POSTGRES_URL is not set");
        return;
    };
    let schema = unique_schema();
    let open = || async {
        let s: SharedStore = Arc::new(
            PostgresStore::connect_in_schema(&url, &schema)
                .await
                .unwrap(),
        );
        s
    };
    let cluster = Cluster::start([open().await, open().await], open().await).await;
    for i in 0..5 {
        let delay = cluster.revocation_delay(&format!("k{i}"), LIMIT).await;
        assert!(
            delay.is_some(),
            "revocation {i} not seen by both within {LIMIT:?}"
        );
    }
    drop(cluster);
    drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_revocation_reaches_both_instances() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("k.db").display());
    let open = || async {
        let s: SharedStore = Arc::new(SqliteStore::connect(&url).await.unwrap());
        s
    };
    let cluster = Cluster::start([open().await, open().await], open().await).await;
    for i in 0..5 {
        let delay = cluster.revocation_delay(&format!("k{i}"), LIMIT).await;
        assert!(
            delay.is_some(),
            "revocation {i} not seen by both within {LIMIT:?}"
        );
    }
}
