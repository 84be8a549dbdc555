//! The apikey demo service: one route per kind of `auth`.
#![forbid(unsafe_code)]

use std::sync::Arc;

#[cfg(feature = "metrics")]
pub use apikey_demo_kit::prometheus;
pub use apikey_demo_kit::{
    seed, Hello, Order, Seeded, Stats, WhoAmI, ADMIN_KEY_NAME, DEMO_KEY_NAME,
};
use apikey_rocket::admin::Admin;
use apikey_rocket::core::admin::{LeakReports, SelfRotation};
use apikey_rocket::core::{Actor, ApiKeyConfig, KeyManager, Verifier};
use apikey_rocket::manage::Manage;
use apikey_rocket::openapi::ApiKeyDocs;
use apikey_rocket::{route, ApiKey, Caller};
use rocket::serde::json::Json;
use rocket::{routes, Build, Rocket};
use utoipa::OpenApi;
use utoipa_swagger_ui::{Config, SwaggerUi};

/// Needs a valid key; says who called.
#[utoipa::path(get, path = "/my_service", responses((status = 200, body = Hello)))]
#[route("/my_service", auth = "api_key")]
pub fn my_service(caller: &Caller) -> Json<Hello> {
    Json(Hello::from(&**caller))
}

/// A key is optional here; a bad one is still refused.
#[utoipa::path(get, path = "/whoami", responses((status = 200, body = WhoAmI)))]
#[route("/whoami", auth = "public")]
pub fn whoami(caller: Option<&Caller>) -> Json<WhoAmI> {
    Json(WhoAmI::from(caller.map(|c| &**c)))
}

/// No check at all.
#[utoipa::path(get, path = "/health", responses((status = 200, body = String)))]
#[route("/health", auth = "none")]
pub fn health() -> &'static str {
    "ok"
}

/// Whether this instance can serve: 200 `{"ready":true}`, or 503 with what is missing (the
/// store, the change feed, the digest filter). No key needed, nothing of keys.
#[utoipa::path(get, path = "/ready", responses(
    (status = 200, description = "Ready"),
    (status = 503, description = "Not ready, and what is missing")
))]
#[route("/ready", auth = "none")]
pub async fn ready(
    keys: &rocket::State<apikey_rocket::ApiKeyState>,
) -> (rocket::http::Status, Json<apikey_rocket::core::Readiness>) {
    let readiness = keys.ready().await;
    let status = if readiness.ready {
        rocket::http::Status::Ok
    } else {
        rocket::http::Status::ServiceUnavailable
    };
    (status, Json(readiness))
}

/// Only keys in the `billing` group.
#[utoipa::path(post, path = "/billing", responses((status = 200, body = Hello)))]
#[route(POST, "/billing", auth = "api_key", groups = ["billing"])]
pub fn billing(caller: &Caller) -> Json<Hello> {
    Json(Hello::from(&**caller))
}

/// Only keys with the `orders:write` scope (`orders:*` or `*` cover it); answers the plan in
/// the key's metadata, if any.
#[utoipa::path(post, path = "/orders", responses((status = 200, body = Order)))]
#[route(POST, "/orders", auth = "api_key", scopes = ["orders:write"])]
pub fn orders(caller: &Caller) -> Json<Order> {
    Json(Order::from(&**caller))
}

/// Verification counters (used by the load benchmark to count store queries).
#[utoipa::path(get, path = "/stats", responses((status = 200, body = Stats)))]
#[route("/stats", auth = "none")]
pub fn stats(keys: &rocket::State<apikey_rocket::ApiKeyState>) -> Json<Stats> {
    Json(Stats::from(keys.verifier()))
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
    paths(my_service, whoami, health, ready, billing, orders, stats, openapi)
)]
pub struct ApiDoc;

/// The OpenAPI document of the running service: security, groups and problem responses come
/// from `#[route]`.
#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "This document")))]
#[route("/openapi.json", auth = "none")]
pub fn openapi(
    keys: &rocket::State<apikey_rocket::ApiKeyState>,
    manage: &rocket::State<Manage>,
) -> Json<utoipa::openapi::OpenApi> {
    let mut doc = ApiDoc::openapi();
    apikey_rocket::core::http::manage::describe(&mut doc, "/apikey/keys", manage.group());
    ApiKeyDocs::for_service(keys).apply(&mut doc);
    Json(doc)
}

/// Swagger UI for `/openapi.json` at `/docs` (its assets are vendored in the binary).
pub fn swagger_ui() -> Vec<rocket::Route> {
    SwaggerUi::new("/docs/<_..>")
        .config(Config::new(["/openapi.json"]))
        .into()
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
    let manage = Manage::new(keys.clone(), store.clone(), &config);
    let admin = Admin::new(keys, &config);
    let rotation = SelfRotation::new(store.clone(), &config);
    let leaks = LeakReports::new(store.clone(), &config)?;
    #[cfg(feature = "metrics")]
    prometheus();
    let verifier = Verifier::new(config, store).await?;
    let rocket = rocket
        .attach(ApiKey::with_verifier(Arc::new(verifier)))
        .manage(admin)
        .manage(manage)
        .manage(rotation)
        .manage(leaks)
        .mount("/apikey", apikey_rocket::rotation::routes())
        .mount("/apikey", apikey_rocket::leaks::routes())
        .mount("/apikey/keys", apikey_rocket::manage::routes())
        .mount(
            "/",
            routes![my_service, whoami, health, ready, billing, orders, stats, openapi],
        )
        .mount("/admin", apikey_rocket::admin::routes())
        .mount("/", swagger_ui());
    #[cfg(feature = "metrics")]
    let rocket = rocket.mount("/", routes![scrape]);
    Ok((rocket, seeded))
}

/// What `cargo run -p my-service` does: the demo on Rocket's configuration (the embedded
/// SQLite store unless `APIKEY_DATABASE_URL` or a config file says otherwise), printing the
/// keys of a first start once, until Rocket shuts down.
pub async fn serve() -> std::process::ExitCode {
    use std::process::ExitCode;

    // Rocket's own settings (address, port, …) are read first: a bad one stops the demo with
    // what is wrong, before any key is made or shown.
    let figment = rocket::Config::figment();
    if let Err(e) = figment.extract::<rocket::Config>() {
        eprintln!("my-service: invalid Rocket configuration: {e}");
        return ExitCode::FAILURE;
    }
    let (rocket, seeded) = match app(rocket::custom(figment)).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("my-service: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(keys) = seeded {
        let config = rocket
            .figment()
            .extract::<rocket::Config>()
            .unwrap_or_default();
        let origin = format!("http://{}:{}", config.address, config.port);
        println!("{}", keys.announcement(&origin));
    }
    match rocket.launch().await {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("my-service: {e}");
            ExitCode::FAILURE
        }
    }
}
