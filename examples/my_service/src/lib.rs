//! The apikey demo service: one route per kind of `auth`.
#![forbid(unsafe_code)]

use std::sync::Arc;

use apikey_rocket::admin::Admin;
use apikey_rocket::core::{
    Actor, ApiKeyConfig, CreateKey, KeyManager, Secret, StoreError, Verifier,
};
use apikey_rocket::openapi::ApiKeyDocs;
use apikey_rocket::{route, ApiKey, Caller};
use rocket::serde::json::Json;
use rocket::{routes, Build, Rocket};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

/// What `/my_service` and `/billing` answer.
#[derive(Serialize, ToSchema)]
pub struct Hello {
    user: String,
    key: String,
}

impl From<&Caller> for Hello {
    fn from(c: &Caller) -> Self {
        Hello {
            user: c.user().to_owned(),
            key: c.key_name().to_owned(),
        }
    }
}

/// Needs a valid key; says who called.
#[utoipa::path(get, path = "/my_service", responses((status = 200, body = Hello)))]
#[route("/my_service", auth = "api_key")]
pub fn my_service(caller: &Caller) -> Json<Hello> {
    Json(caller.into())
}

/// What `/whoami` answers.
#[derive(Serialize, ToSchema)]
pub struct WhoAmI {
    user: Option<String>,
    groups: Vec<String>,
}

/// A key is optional here; a bad one is still refused.
#[utoipa::path(get, path = "/whoami", responses((status = 200, body = WhoAmI)))]
#[route("/whoami", auth = "public")]
pub fn whoami(caller: Option<&Caller>) -> Json<WhoAmI> {
    Json(WhoAmI {
        user: caller.map(|c| c.user().to_owned()),
        groups: caller
            .map(|c| c.groups().map(str::to_owned).collect())
            .unwrap_or_default(),
    })
}

/// No check at all.
#[utoipa::path(get, path = "/health", responses((status = 200, body = String)))]
#[route("/health", auth = "none")]
pub fn health() -> &'static str {
    "ok"
}

/// Only keys in the `billing` group.
#[utoipa::path(post, path = "/billing", responses((status = 200, body = Hello)))]
#[route(POST, "/billing", auth = "api_key", groups = ["billing"])]
pub fn billing(caller: &Caller) -> Json<Hello> {
    Json(caller.into())
}

/// What `/stats` answers.
#[derive(Serialize, ToSchema)]
pub struct Stats {
    store_queries: u64,
    filtered: u64,
    cached_keys: usize,
    /// Whether the store's change feed is live (while it is not, every request asks the
    /// store).
    feed_live: bool,
    /// Where limits are kept (`rate_limits`, `quotas`), whether they fall back to per
    /// instance (`fallback`), outages and round trips to the shared backend.
    #[schema(value_type = Object)]
    limits: apikey_rocket::core::limits::LimitsStats,
}

/// Verification counters (used by the load benchmark to count store queries).
#[utoipa::path(get, path = "/stats", responses((status = 200, body = Stats)))]
#[route("/stats", auth = "none")]
pub fn stats(keys: &rocket::State<apikey_rocket::ApiKeyState>) -> Json<Stats> {
    Json(Stats {
        store_queries: keys.store_queries(),
        filtered: keys.filtered(),
        cached_keys: keys.cached_keys(),
        feed_live: keys.feed_live(),
        limits: keys.limits(),
    })
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

/// apikey's metrics (and any other the process records) in Prometheus text format.
#[cfg(feature = "metrics")]
#[route("/metrics", auth = "none")]
pub fn scrape() -> (rocket::http::ContentType, String) {
    let text = rocket::http::ContentType::new("text", "plain")
        .with_params([("version", "0.0.4"), ("charset", "utf-8")]);
    (text, prometheus().render())
}

/// The demo's API, as `#[utoipa::path]` describes it; apikey adds who may call what.
#[derive(OpenApi)]
#[openapi(
    info(title = "my-service", description = "The apikey demo service."),
    paths(my_service, whoami, health, billing, stats, openapi)
)]
pub struct ApiDoc;

/// The OpenAPI document of the running service: security, groups and problem responses come
/// from `#[route]`.
#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "This document")))]
#[route("/openapi.json", auth = "none")]
pub fn openapi(keys: &rocket::State<apikey_rocket::ApiKeyState>) -> Json<utoipa::openapi::OpenApi> {
    let mut doc = ApiDoc::openapi();
    ApiKeyDocs::for_service(keys).apply(&mut doc);
    Json(doc)
}

/// The demo key created on an empty store.
pub const DEMO_KEY_NAME: &str = "demo";

/// The admin key created on an empty store.
pub const ADMIN_KEY_NAME: &str = "admin";

/// The keys created on an empty store, shown once.
pub struct Seeded {
    /// The demo key (user `demo`, group `billing`).
    pub demo: Secret,
    /// The admin key (user `admin`, the admin group), for `/admin`.
    pub admin: Secret,
}

/// Creates the demo key (user `demo`, group `billing`) and an admin key (group
/// `admin_group`) when the store holds no key; returns them, to be shown once.
pub async fn seed(keys: &KeyManager, admin_group: &str) -> Result<Option<Seeded>, StoreError> {
    if !keys.list().await?.is_empty() {
        return Ok(None);
    }
    let create = |name: &str, user: &str, group: &str| CreateKey {
        name: name.into(),
        user: user.into(),
        groups: vec![group.into()],
        ..CreateKey::default()
    };
    let created = async {
        let (_, demo) = keys
            .create(create(DEMO_KEY_NAME, "demo", "billing"))
            .await?;
        let (_, admin) = keys
            .create(create(ADMIN_KEY_NAME, "admin", admin_group))
            .await?;
        Ok(Seeded { demo, admin })
    };
    match created.await {
        Ok(seeded) => Ok(Some(seeded)),
        // Another instance seeded the same store first.
        Err(StoreError::Duplicate(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The demo application on `rocket`'s configuration, with the admin page at `/admin`, and the
/// keys created when the store was empty. The configuration is read once; the store it names
/// is opened once, seeded, and verified against.
pub async fn app(
    rocket: Rocket<Build>,
) -> Result<(Rocket<Build>, Option<Seeded>), Box<dyn std::error::Error>> {
    let config: ApiKeyConfig = apikey_rocket::load_config(rocket.figment())?;
    let store = apikey_rocket::core::open(&config.settings).await?;
    // The demo's own changes (its seeded keys) are audited as made by the demo.
    let keys = KeyManager::new(store.clone(), &config)
        .with_actor(Actor::new("my-service").expect("a valid actor"));
    let seeded = seed(&keys, &config.settings.admin_group).await?;
    let admin = Admin::new(keys, &config);
    #[cfg(feature = "metrics")]
    prometheus();
    let verifier = Verifier::new(config, store).await?;
    let rocket = rocket
        .attach(ApiKey::with_verifier(Arc::new(verifier)))
        .manage(admin)
        .mount(
            "/",
            routes![my_service, whoami, health, billing, stats, openapi],
        )
        .mount("/admin", apikey_rocket::admin::routes());
    #[cfg(feature = "metrics")]
    let rocket = rocket.mount("/", routes![scrape]);
    Ok((rocket, seeded))
}
