//! Two instances on one store: a revocation made elsewhere reaches both. The bound here is
//! generous on purpose; `cargo bench -p apikey-bench --bench revocation` measures the delay.

use std::time::Duration;

use apikey_tests::{Cluster, SharedDb};

const LIMIT: Duration = Duration::from_secs(3);

/// Five revocations made through a third connection reach both instances.
async fn revocations_reach_both(db: SharedDb) {
    let cluster = Cluster::start([db.store().await, db.store().await], db.store().await).await;
    for i in 0..5 {
        let delay = cluster.revocation_delay(&format!("k{i}"), LIMIT).await;
        assert!(
            delay.is_some(),
            "revocation {i} not seen by both within {LIMIT:?}"
        );
    }
    drop(cluster);
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_revocation_reaches_both_instances() {
    if let Some(db) = SharedDb::postgres() {
        revocations_reach_both(db).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_revocation_reaches_both_instances() {
    revocations_reach_both(SharedDb::sqlite()).await;
}
