//! Helpers shared by the integration tests: stores under test and Rocket clients.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use apikey_core::conformance::Fixture;
use apikey_core::store::{PostgresStore, SqliteStore};
use apikey_core::{MemoryStore, SharedStore};
use rocket::figment::providers::{Format, Toml};
use rocket::local::asynchronous::Client;

/// The variable naming the PostgreSQL server for tests; tests needing it are skipped when unset.
pub const POSTGRES_ENV: &str = "APIKEY_TEST_POSTGRES_URL";

/// The test PostgreSQL URL, if configured.
pub fn postgres_url() -> Option<String> {
    std::env::var(POSTGRES_ENV).ok().filter(|u| !u.is_empty())
}

/// A schema name no other test uses.
pub fn unique_schema() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "apikey_test_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

/// Drops a test schema.
pub async fn drop_schema(url: &str, schema: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .expect("connect to drop the test schema");
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&mut conn)
        .await
        .expect("drop the test schema");
}

/// An empty memory store.
pub async fn memory() -> Option<Fixture> {
    Some(Fixture::new(Arc::new(MemoryStore::new())))
}

/// An empty SQLite store in a fresh file.
pub async fn sqlite_file() -> Option<Fixture> {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("keys.db").display());
    let store: SharedStore = Arc::new(SqliteStore::connect(&url).await.expect("open SQLite"));
    Some(Fixture::with_cleanup(store, async move { drop(dir) }))
}

/// An empty in-memory SQLite store.
pub async fn sqlite_memory() -> Option<Fixture> {
    let store: SharedStore = Arc::new(
        SqliteStore::connect("sqlite::memory:")
            .await
            .expect("open SQLite"),
    );
    Some(Fixture::new(store))
}

/// An empty PostgreSQL store in a fresh schema, dropped afterwards; `None` without a server.
pub async fn postgres() -> Option<Fixture> {
    let url = postgres_url()?;
    let schema = unique_schema();
    let store: SharedStore = Arc::new(
        PostgresStore::connect_in_schema(&url, &schema)
            .await
            .expect("connect to the test PostgreSQL (APIKEY_TEST_POSTGRES_URL)"),
    );
    Some(Fixture::with_cleanup(store, async move {
        drop_schema(&url, &schema).await
    }))
}

/// A Rocket client of `rocket` with `toml` merged into its configuration (Rocket.toml syntax
/// with profiles, e.g. `[default.apikey]`).
pub fn rocket_with(toml: &str) -> rocket::Rocket<rocket::Build> {
    let figment = rocket::Config::figment()
        .merge(Toml::string(toml).nested())
        .merge(("log_level", "off"));
    rocket::custom(figment)
}

/// A tracked client, panicking with Rocket's message when launch fails.
pub async fn client(rocket: rocket::Rocket<rocket::Build>) -> Client {
    Client::tracked(rocket).await.expect("valid rocket")
}

/// A store wrapper that counts lookups and can be switched off (every call then fails as an
/// unreachable database would).
#[derive(Debug)]
pub struct Probe {
    inner: SharedStore,
    /// Lookups by digest so far.
    pub lookups: std::sync::atomic::AtomicUsize,
    /// When true, every call fails with `StoreError::Unavailable`.
    pub down: std::sync::atomic::AtomicBool,
    /// Milliseconds every lookup by digest waits first (to make lookups overlap).
    pub delay_ms: std::sync::atomic::AtomicU64,
    /// When true, the store says it cannot list digests (the verifier then has no filter).
    pub hide_digests: std::sync::atomic::AtomicBool,
    /// A gate for the next lookup by digest: it reads the store, then waits (see
    /// [`Probe::park_next_lookup`]).
    gate: std::sync::Mutex<Option<Gate>>,
}

#[derive(Debug)]
struct Gate {
    parked: tokio::sync::oneshot::Sender<()>,
    release: tokio::sync::oneshot::Receiver<()>,
}

/// A lookup parked by [`Probe::park_next_lookup`].
pub struct Parked {
    /// Resolves once the lookup has read the store and is waiting.
    pub parked: tokio::sync::oneshot::Receiver<()>,
    /// Send (or drop) to let it answer.
    pub release: tokio::sync::oneshot::Sender<()>,
}

impl Probe {
    /// Wraps `inner`.
    pub fn new(inner: SharedStore) -> Arc<Self> {
        Arc::new(Probe {
            inner,
            lookups: Default::default(),
            down: Default::default(),
            delay_ms: Default::default(),
            hide_digests: Default::default(),
            gate: Default::default(),
        })
    }

    /// Makes the next lookup by digest read the store and then wait until released, so a
    /// test can change the store while an answer from before the change is in flight.
    pub fn park_next_lookup(&self) -> Parked {
        let (parked_tx, parked_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel();
        *self.gate.lock().unwrap() = Some(Gate {
            parked: parked_tx,
            release: release_rx,
        });
        Parked {
            parked: parked_rx,
            release: release_tx,
        }
    }

    /// Lookups by digest so far.
    pub fn lookups(&self) -> usize {
        self.lookups.load(Ordering::SeqCst)
    }

    fn up(&self) -> Result<&SharedStore, apikey_core::StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(apikey_core::StoreError::Unavailable(
                "connection refused".into(),
            ))
        } else {
            Ok(&self.inner)
        }
    }
}

#[async_trait::async_trait]
impl apikey_core::KeyStore for Probe {
    async fn find_by_digest(
        &self,
        digest: &apikey_core::Digest,
    ) -> Result<Option<apikey_core::Match>, apikey_core::StoreError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        }
        let found = self.up()?.find_by_digest(digest).await;
        let gate = self.gate.lock().unwrap().take();
        if let Some(gate) = gate {
            let _ = gate.parked.send(());
            let _ = gate.release.await;
        }
        found
    }
    async fn get(
        &self,
        name: &str,
    ) -> Result<Option<apikey_core::KeyRecord>, apikey_core::StoreError> {
        self.up()?.get(name).await
    }
    async fn get_by_tech_name(
        &self,
        tech_name: &str,
    ) -> Result<Option<apikey_core::KeyRecord>, apikey_core::StoreError> {
        self.up()?.get_by_tech_name(tech_name).await
    }
    async fn list(&self) -> Result<Vec<apikey_core::KeyRecord>, apikey_core::StoreError> {
        self.up()?.list().await
    }
    async fn create(
        &self,
        new: apikey_core::NewKey,
    ) -> Result<apikey_core::KeyRecord, apikey_core::StoreError> {
        self.up()?.create(new).await
    }
    async fn set_active(
        &self,
        name: &str,
        active: bool,
    ) -> Result<apikey_core::KeyRecord, apikey_core::StoreError> {
        self.up()?.set_active(name, active).await
    }
    async fn delete(&self, name: &str) -> Result<(), apikey_core::StoreError> {
        self.up()?.delete(name).await
    }
    async fn rotate(
        &self,
        name: &str,
        digest: apikey_core::Digest,
        stub: String,
        old_valid_until: Option<time::OffsetDateTime>,
    ) -> Result<apikey_core::KeyRecord, apikey_core::StoreError> {
        self.up()?.rotate(name, digest, stub, old_valid_until).await
    }
    async fn set_groups(
        &self,
        name: &str,
        groups: Vec<String>,
    ) -> Result<apikey_core::KeyRecord, apikey_core::StoreError> {
        self.up()?.set_groups(name, groups).await
    }
    async fn set_user_active(
        &self,
        user: &str,
        active: bool,
    ) -> Result<u64, apikey_core::StoreError> {
        self.up()?.set_user_active(user, active).await
    }
    async fn user_active(&self, user: &str) -> Result<bool, apikey_core::StoreError> {
        self.up()?.user_active(user).await
    }
    async fn set_rate_limit(
        &self,
        name: &str,
        rate_limit: Option<String>,
    ) -> Result<apikey_core::KeyRecord, apikey_core::StoreError> {
        self.up()?.set_rate_limit(name, rate_limit).await
    }
    async fn touch(
        &self,
        names: &[String],
        at: time::OffsetDateTime,
    ) -> Result<(), apikey_core::StoreError> {
        self.up()?.touch(names, at).await
    }
    async fn edit_groups(
        &self,
        name: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<apikey_core::KeyRecord, apikey_core::StoreError> {
        self.up()?.edit_groups(name, add, remove).await
    }
    fn changes(&self) -> &apikey_core::ChangeFeed {
        self.inner.changes()
    }
    async fn all_digests(
        &self,
    ) -> Result<Option<Vec<apikey_core::Digest>>, apikey_core::StoreError> {
        if self.hide_digests.load(Ordering::SeqCst) {
            return Ok(None);
        }
        self.up()?.all_digests().await
    }
    async fn digests_of(
        &self,
        name: &str,
    ) -> Result<Option<Vec<apikey_core::Digest>>, apikey_core::StoreError> {
        if self.hide_digests.load(Ordering::SeqCst) {
            return Ok(None);
        }
        self.up()?.digests_of(name).await
    }
}

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
        client
            .get("/my_service")
            .header(rocket::http::Header::new("API-KEY", key.to_owned()))
            .dispatch()
            .await
            .status()
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
        self.admin.set_active(name, false).await.expect("revoke");
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

/// The demo's `/my_service`, `/billing` and `/whoami` over `store`, with `toml` merged into the
/// configuration.
pub async fn demo_client(store: &SharedStore, toml: &str) -> Client {
    let rocket = rocket_with(toml)
        .attach(apikey_rocket::ApiKey::with_store(store.clone()))
        .mount(
            "/",
            rocket::routes![
                my_service::my_service,
                my_service::billing,
                my_service::whoami
            ],
        );
    client(rocket).await
}

/// Runs each `async fn name(store: SharedStore)` of the calling test file on a fresh memory,
/// SQLite and PostgreSQL store (the last skipped without `APIKEY_TEST_POSTGRES_URL`), as
/// `memory::name`, `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! per_store {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $crate::per_store!(@store $crate::memory(); $($test),*);
        }
        mod sqlite {
            $crate::per_store!(@store $crate::sqlite_file(); $($test),*);
        }
        mod postgres {
            $crate::per_store!(@store $crate::postgres(); $($test),*);
        }
    };
    (@store $make:expr; $($test:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let Some(fixture) = $make.await else {
                    eprintln!("skipped: store not configured");
                    return;
                };
                super::$test(fixture.store.clone()).await;
                fixture.finish().await;
            }
        )*
    };
}
