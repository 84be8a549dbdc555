//! A third-party store that lists its digests but has no feed of changes made elsewhere: the
//! verifier must not trust its digest filter or its caches, or a key written behind its back
//! would be refused (or a revoked one accepted) until the process restarts. A feed is live
//! only when the store says so.

use std::sync::Arc;

use apikey_core::model::UsageCount;
use apikey_core::KeyRequest;
use apikey_core::{
    ApiKeyConfig, AuthError, ChangeFeed, KeyDigest, KeyLookup, KeyMetering, KeyRecord, Match,
    MemoryStore, SharedStore, StoreResult, UsableDigest, Verifier,
};
use apikey_tests::{admin, spec};
use time::OffsetDateTime;

/// Reads another store's data (as a third-party store would read its database), with a feed
/// of its own that hears of nothing.
#[derive(Debug)]
struct NoFeed {
    data: SharedStore,
    changes: ChangeFeed,
}

#[async_trait::async_trait]
impl KeyLookup for NoFeed {
    async fn find_by_digest(&self, digest: &KeyDigest) -> StoreResult<Option<Match>> {
        self.data.find_by_digest(digest).await
    }
    async fn get_by_tech_name(&self, tech_name: &str) -> StoreResult<Option<KeyRecord>> {
        self.data.get_by_tech_name(tech_name).await
    }
    async fn user_active(&self, user: &str) -> StoreResult<bool> {
        self.data.user_active(user).await
    }
    fn changes(&self) -> &ChangeFeed {
        &self.changes
    }
    async fn all_digests(&self) -> StoreResult<Option<Vec<UsableDigest>>> {
        self.data.all_digests().await
    }
    async fn digests_of(&self, name: &str) -> StoreResult<Option<Vec<UsableDigest>>> {
        self.data.digests_of(name).await
    }
}

#[async_trait::async_trait]
impl KeyMetering for NoFeed {
    async fn touch(&self, names: &[String], at: OffsetDateTime) -> StoreResult<()> {
        self.data.touch(names, at).await
    }
    async fn take_quota(&self, tech: &str, window: i64, limit: u64, want: u64) -> StoreResult<u64> {
        self.data.take_quota(tech, window, limit, want).await
    }
    async fn return_quota(&self, tech: &str, window: i64, n: u64) -> StoreResult<()> {
        self.data.return_quota(tech, window, n).await
    }
    async fn add_usage(&self, counts: &[UsageCount]) -> StoreResult<()> {
        self.data.add_usage(counts).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_without_a_feed_is_never_trusted() {
    let data: SharedStore = Arc::new(MemoryStore::new());
    let m = admin(&data);
    let (_, first) = m.create(spec("first", "alice", &[])).await.unwrap();
    let store = Arc::new(NoFeed {
        data: data.clone(),
        changes: ChangeFeed::default(),
    });
    let verifier = Verifier::new(ApiKeyConfig::default(), store).await.unwrap();
    assert!(verifier
        .verify_request(&KeyRequest::new(first.expose()))
        .await
        .is_ok());
    // Let the digest filter load.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(!verifier.feed_live(), "no feed was ever said to be live");
    assert!(!verifier.filter_stats().trusted);

    // Written behind the store's back: the verifier still sees both at once.
    let (_, later) = m.create(spec("later", "bob", &[])).await.unwrap();
    for _ in 0..20 {
        assert!(
            verifier
                .verify_request(&KeyRequest::new(later.expose()))
                .await
                .is_ok(),
            "a key the feed never announced"
        );
    }
    m.revoke("first").await.unwrap();
    assert_eq!(
        verifier
            .verify_request(&KeyRequest::new(first.expose()))
            .await
            .map(|_| ()),
        Err(AuthError::INVALID),
        "a revocation the feed never announced"
    );
}
