//! What the two apikey demos share, so that they answer alike by construction: the JSON their
//! routes answer, the keys a first start creates and how it shows them, and the Prometheus
//! recorder behind `/metrics`.
#![forbid(unsafe_code)]

use apikey_core::limits::LimitsStats;
use apikey_core::{CreateKey, Identity, KeyManager, Secret, StoreError, Verifier};
use serde::Serialize;
use utoipa::ToSchema;

/// What `/my_service` and `/billing` answer: the caller's user and key name, read from the
/// identity when the answer is written (holding the identity is a pointer's copy, not the
/// text's).
#[derive(Serialize, ToSchema)]
pub struct Hello {
    #[serde(serialize_with = "user_of")]
    #[schema(value_type = String)]
    user: Identity,
    #[serde(serialize_with = "key_name_of")]
    #[schema(value_type = String)]
    key: Identity,
}

fn user_of<S: serde::Serializer>(identity: &Identity, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(identity.user())
}

fn key_name_of<S: serde::Serializer>(identity: &Identity, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(identity.key_name())
}

impl From<&Identity> for Hello {
    fn from(c: &Identity) -> Self {
        Hello {
            user: c.clone(),
            key: c.clone(),
        }
    }
}

/// What `POST /orders` answers: who called and, when the key has a `plan` in its metadata,
/// that plan (handed over with the identity: no store query).
#[derive(Serialize, ToSchema)]
pub struct Order {
    user: String,
    key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<String>,
}

impl From<&Identity> for Order {
    fn from(c: &Identity) -> Self {
        Order {
            user: c.user().to_owned(),
            key: c.key_name().to_owned(),
            plan: c.meta("plan").map(str::to_owned),
        }
    }
}

/// What `/whoami` answers.
#[derive(Serialize, ToSchema)]
pub struct WhoAmI {
    user: Option<String>,
    groups: Vec<String>,
}

impl From<Option<&Identity>> for WhoAmI {
    fn from(caller: Option<&Identity>) -> Self {
        WhoAmI {
            user: caller.map(|c| c.user().to_owned()),
            groups: caller
                .map(|c| c.groups().map(str::to_owned).collect())
                .unwrap_or_default(),
        }
    }
}

/// What `/stats` answers.
#[derive(Serialize, ToSchema)]
pub struct Stats {
    /// Store queries made by verification (cache misses).
    store_queries: u64,
    /// Unknown keys the digest filter refused without a store query.
    filtered: u64,
    /// Valid keys cached right now.
    cached_keys: usize,
    /// Whether the store's change feed is live (while it is not, every request asks the
    /// store).
    feed_live: bool,
    /// Where limits are kept (`rate_limits`, `quotas`), whether they fall back to per
    /// instance (`fallback`), outages and round trips to the shared backend.
    #[schema(value_type = Object)]
    limits: LimitsStats,
}

impl From<&Verifier> for Stats {
    fn from(v: &Verifier) -> Self {
        Stats {
            store_queries: v.store_queries(),
            filtered: v.filtered(),
            cached_keys: v.cached_keys(),
            feed_live: v.feed_live(),
            limits: v.limits_stats(),
        }
    }
}

/// The demo key created on an empty store.
pub const DEMO_KEY_NAME: &str = "demo";

/// The admin key created on an empty store.
pub const ADMIN_KEY_NAME: &str = "admin";

/// The keys created on an empty store, shown once.
pub struct Seeded {
    /// The demo key (user `demo`, group `billing`, scope `orders:*`).
    pub demo: Secret,
    /// The admin key (user `admin`, the admin group), for the admin page.
    pub admin: Secret,
}

/// The keys a first start creates: the demo key (user `demo`, group `billing`, scope
/// `orders:*`, so it may `POST /orders`) and an admin key (group `admin_group`).
pub fn first_keys(admin_group: &str) -> Vec<CreateKey> {
    let create = |name: &str, user: &str, group: &str| CreateKey {
        name: name.into(),
        user: user.into(),
        groups: vec![group.into()],
        ..CreateKey::default()
    };
    vec![
        CreateKey {
            scopes: vec!["orders:*".into()],
            ..create(DEMO_KEY_NAME, "demo", "billing")
        },
        create(ADMIN_KEY_NAME, "admin", admin_group),
    ]
}

/// Creates [`first_keys`] when the store holds no key; returns them, to be shown once.
pub async fn seed(keys: &KeyManager, admin_group: &str) -> Result<Option<Seeded>, StoreError> {
    Ok(keys.seed(first_keys(admin_group)).await?.map(|secrets| {
        let [demo, admin]: [Secret; 2] = secrets.try_into().expect("two keys");
        Seeded { demo, admin }
    }))
}

impl Seeded {
    /// What a first start prints (once: only digests are stored): each key, a ready `curl`
    /// line for the service at `origin`, and its admin page (at `origin` + `/admin/`).
    pub fn announcement(&self, origin: &str) -> String {
        let demo = self.demo.expose();
        let manage =
            format!("Manage keys in a browser at {origin}/admin (log in with the admin key).");
        format!(
            "Created the demo API key (shown once, store it now):\n\n    {demo}\n\n\
             Try it:\n\n    curl -H 'API-KEY: {demo}' {origin}/my_service\n\n\
             Created an admin key (shown once, store it now):\n\n    {}\n\n{manage}\n",
            self.admin.expose()
        )
    }
}

/// The process-wide Prometheus recorder, installed on first use (before any verifier is
/// built, so that its metric handles reach it).
#[cfg(feature = "metrics")]
pub fn prometheus() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Another recorder installed by the embedding program keeps the metrics instead.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// The content type of the Prometheus text format `/metrics` answers.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Holds a demo's route inventory (`inventory`, serialized) against the reviewed snapshot
/// `tests/inventory.json` of the crate at `manifest_dir`: fails when a route became public, lost
/// a group or appeared unguarded. With `UPDATE_INVENTORY` set, writes the snapshot instead
/// (after a deliberate change, reviewed in the diff); `package` names the crate in the message.
pub fn check_inventory(inventory: &impl Serialize, manifest_dir: &str, package: &str) {
    let actual = serde_json::to_string_pretty(inventory).expect("the inventory serializes") + "\n";
    let snapshot = std::path::Path::new(manifest_dir).join("tests/inventory.json");
    if std::env::var_os("UPDATE_INVENTORY").is_some() {
        std::fs::write(&snapshot, &actual).expect("the snapshot is written");
        return;
    }
    let expected = std::fs::read_to_string(&snapshot).unwrap_or_default();
    assert!(
        actual == expected,
        "the demo's routes changed; review them, then refresh the snapshot with \
         UPDATE_INVENTORY=1 cargo test -p {package} --test inventory\n\
         now:\n{actual}\nreviewed:\n{expected}"
    );
}
