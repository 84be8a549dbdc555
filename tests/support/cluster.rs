//! Several service instances on one key store, and the time a change takes to reach them.

use apikey_core::SharedStore;
use rocket::local::asynchronous::Client;

use crate::{client, rocket_with};

/// Waits (up to 5 s) until the verifier's digest filter is loaded and trusted.
pub async fn filter_ready(verifier: &apikey_core::Verifier) {
    for _ in 0..500 {
        if verifier.filter_stats().trusted {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the digest filter did not load");
}

/// Two service instances (each with its own store connection, as two processes would have)
/// and an administrator's connection ("the CLI"), all on one key store.
pub struct Cluster {
    /// The instances.
    pub instances: [Client; 2],
    /// The administrator's store.
    pub admin: SharedStore,
}

impl Cluster {
    /// Starts two demo instances on `instance_stores` and administers through `admin`.
    pub async fn start(instance_stores: [SharedStore; 2], admin: SharedStore) -> Self {
        let [a, b] = instance_stores;
        let serve = |store: SharedStore| async move {
            let rocket = rocket_with("")
                .attach(apikey_rocket::ApiKey::with_store(store))
                .mount("/", rocket::routes![my_service::my_service]);
            client(rocket).await
        };
        Cluster {
            instances: [serve(a).await, serve(b).await],
            admin,
        }
    }

    async fn status(client: &Client, key: &str) -> rocket::http::Status {
        crate::get(client, "/my_service", Some(key)).await.0
    }

    /// Creates a key, has both instances cache it, revokes it through the administrator's
    /// connection and returns how long until both instances refuse it (polling, gives up
    /// after `limit`).
    pub async fn revocation_delay(
        &self,
        name: &str,
        limit: std::time::Duration,
    ) -> Option<std::time::Duration> {
        use rocket::http::Status;
        let manager =
            apikey_core::KeyManager::new(self.admin.clone(), &apikey_core::ApiKeyConfig::default());
        let (_, key) = manager
            .create(apikey_core::CreateKey {
                name: name.into(),
                user: "bench".into(),
                ..Default::default()
            })
            .await
            .expect("create");
        // Another process' key is accepted once its creation reached each instance.
        for instance in &self.instances {
            let start = std::time::Instant::now();
            while Self::status(instance, key.expose()).await != Status::Ok {
                assert!(start.elapsed() < limit, "the new key never worked");
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
        let start = std::time::Instant::now();
        manager.revoke(name).await.expect("revoke");
        let mut refused = [false, false];
        while start.elapsed() < limit {
            for (i, instance) in self.instances.iter().enumerate() {
                if !refused[i] {
                    refused[i] = Self::status(instance, key.expose()).await == Status::Unauthorized;
                }
            }
            if refused == [true, true] {
                return Some(start.elapsed());
            }
            tokio::time::sleep(std::time::Duration::from_micros(200)).await;
        }
        None
    }
}

/// The p-th percentile (0–100) of sorted durations.
pub fn percentile(sorted: &[std::time::Duration], p: usize) -> std::time::Duration {
    if sorted.is_empty() {
        return std::time::Duration::ZERO;
    }
    sorted[((sorted.len() - 1) * p).div_ceil(100)]
}
