//! The conformance suite every [`KeyStore`](crate::KeyStore) must pass. Use it through [`store_conformance!`](crate::store_conformance):
//!
//! ```no_run
//! apikey_core::store_conformance!(memory, async {
//!     let store = std::sync::Arc::new(apikey_core::MemoryStore::new());
//!     Some(apikey_core::conformance::Fixture::new(store))
//! });
//! # fn main() {}
//! ```

use std::future::Future;
use std::pin::Pin;

use crate::key::{KeyDigest, KeyHasher};
use crate::model::{Actor, Groups, KeyRecord, NewKey};
use crate::store::SharedStore;

mod admin;
mod checks;
mod fields;
mod metering;
mod state;

pub use admin::*;
pub use checks::*;
pub use fields::*;
pub use metering::*;
pub use state::*;

/// A store under test and what to do when the test is over.
pub struct Fixture {
    /// The store.
    pub store: SharedStore,
    cleanup: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl Fixture {
    /// A store that needs no cleanup.
    pub fn new(store: SharedStore) -> Self {
        Fixture {
            store,
            cleanup: None,
        }
    }

    /// A store with a cleanup step (drop a schema, delete a file).
    pub fn with_cleanup(
        store: SharedStore,
        cleanup: impl Future<Output = ()> + Send + 'static,
    ) -> Self {
        Fixture {
            store,
            cleanup: Some(Box::pin(cleanup)),
        }
    }

    /// Runs the cleanup step.
    pub async fn finish(self) {
        drop(self.store);
        if let Some(c) = self.cleanup {
            c.await;
        }
    }
}

/// Generates one `#[tokio::test]` per conformance check in a module named `$name`.
/// `$make` is an expression evaluating to a future of an `Option<Fixture>`; `None` skips the
/// tests (a store whose server is not configured on this machine).
#[macro_export]
macro_rules! store_conformance {
    ($name:ident, $make:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $crate::store_conformance!(@tests $make;
                create_and_lookup, unknown_digest, duplicate_names, invalid_new_keys,
                revoke_and_activate, delete, unknown_names, rotate_without_grace,
                rotate_with_grace, expiry, groups, users, rate_limits, address_allowlists, last_used,
                changes_are_announced,
                reused_secret, concurrent_writes, audit_trail, import_is_idempotent,
                deactivate_all, import_leaves_local_changes, own_rotation_rules, report_claims,
                every_change, quotas,
                quota_takes, concurrent_quota_takes, usage_counts, scopes_and_metadata, edits,
                list_filters, listed_digests);
        }
    };
    (@tests $make:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let fixture: Option<$crate::conformance::Fixture> = $make.await;
                let Some(fixture) = fixture else {
                    eprintln!("skipped: store not configured");
                    return;
                };
                $crate::conformance::$check(fixture.store.clone()).await;
                fixture.finish().await;
            }
        )*
    };
}

/// The actor of the suite's changes.
pub(crate) fn by() -> Actor {
    Actor::new("conformance").expect("a valid actor")
}

pub(crate) fn digest(key: &str) -> KeyDigest {
    KeyHasher::new(None).digest(key)
}

pub(crate) fn new_key(name: &str, key: &str) -> NewKey {
    NewKey {
        name: name.into(),
        user: "alice".into(),
        groups: Groups::default(),
        expires_at: None,
        digest: digest(key),
        stub: "ak_test".into(),
        rate_limit: None,
        quota: None,
        allow_ip: Default::default(),
        scopes: Default::default(),
        description: None,
        meta: Default::default(),
    }
}

pub(crate) async fn create(store: &SharedStore, name: &str, key: &str) -> KeyRecord {
    store
        .create(new_key(name, key), &by())
        .await
        .expect("create")
}

pub(crate) async fn found(store: &SharedStore, key: &str) -> Option<String> {
    store
        .find_by_digest(&digest(key))
        .await
        .expect("lookup")
        .map(|m| m.record.name)
}
