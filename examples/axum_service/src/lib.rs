//! The apikey demo service on axum: the routes and answers of `my-service`.
#![forbid(unsafe_code)]

use std::sync::Arc;

use apikey_axum::admin::Admin;
use apikey_axum::core::admin::{LeakReports, SelfRotation};
use apikey_axum::core::{Actor, ApiKeyConfig, KeyManager};
use apikey_axum::manage::Manage;
use apikey_axum::{ApiApp, ApiKeyState, ApiRouter, Auth, Caller};
#[cfg(feature = "metrics")]
pub use apikey_demo_kit::prometheus;
pub use apikey_demo_kit::{
    seed, Hello, Order, Seeded, Stats, WhoAmI, ADMIN_KEY_NAME, DEMO_KEY_NAME,
};
use axum::extract::State;
use axum::http::Method;
use axum::Json;
use utoipa::OpenApi;
use utoipa_axum::routes;
use utoipa_swagger_ui::{Config, SwaggerUi};

/// Needs a valid key; says who called.
#[utoipa::path(get, path = "/my_service", responses((status = 200, body = Hello)))]
pub async fn my_service(caller: Caller) -> Json<Hello> {
    Json(Hello::from(&*caller))
}

/// A key is optional here; a bad one is still refused.
#[utoipa::path(get, path = "/whoami", responses((status = 200, body = WhoAmI)))]
pub async fn whoami(caller: Option<Caller>) -> Json<WhoAmI> {
    Json(WhoAmI::from(caller.as_deref()))
}

/// No check at all.
#[utoipa::path(get, path = "/health", responses((status = 200, body = String)))]
pub async fn health() -> &'static str {
    "ok"
}

/// Only keys in the `billing` group.
#[utoipa::path(post, path = "/billing", responses((status = 200, body = Hello)))]
pub async fn billing(caller: Caller) -> Json<Hello> {
    Json(Hello::from(&*caller))
}

/// Only keys with the `orders:write` scope (`orders:*` or `*` cover it); answers the plan in
/// the key's metadata, if any.
#[utoipa::path(post, path = "/orders", responses((status = 200, body = Order)))]
pub async fn orders(caller: Caller) -> Json<Order> {
    Json(Order::from(&*caller))
}

/// Verification counters (used by the load benchmark to count store queries).
#[utoipa::path(get, path = "/stats", responses((status = 200, body = Stats)))]
pub async fn stats(keys: ApiKeyState) -> Json<Stats> {
    Json(Stats::from(keys.verifier()))
}

/// The document `/openapi.json` serves, made once at start.
#[derive(Clone)]
struct Document(Arc<utoipa::openapi::OpenApi>);

/// The OpenAPI document of the running service: security, groups and problem responses come
/// from the routes' `Auth`.
#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "This document")))]
async fn openapi(State(doc): State<Document>) -> Json<utoipa::openapi::OpenApi> {
    Json(doc.0.as_ref().clone())
}

/// Whether this instance can serve: 200 `{"ready":true}`, or 503 with what is missing (the
/// store, the change feed, the digest filter). No key needed, nothing of keys.
#[utoipa::path(get, path = "/ready", responses(
    (status = 200, description = "Ready"),
    (status = 503, description = "Not ready, and what is missing")
))]
pub async fn ready(
    keys: ApiKeyState,
) -> (
    axum::http::StatusCode,
    axum::Json<apikey_axum::core::Readiness>,
) {
    let readiness = keys.ready().await;
    let status = if readiness.ready {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(readiness))
}

/// apikey's metrics (and any other the process records) in Prometheus text format.
#[cfg(feature = "metrics")]
async fn scrape() -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            apikey_demo_kit::PROMETHEUS_TEXT,
        )],
        prometheus().render(),
    )
}

/// The demo's API, as `#[utoipa::path]` describes it; apikey adds who may call what.
#[derive(OpenApi)]
#[openapi(info(
    title = "axum-service",
    description = "The apikey demo service on axum."
))]
pub struct ApiDoc;

/// The demo's routes over `keys`, each declaring who may call it (the guard, the OpenAPI
/// security of the document `/openapi.json` serves and the route inventory come from that one
/// declaration), with the admin page at `/admin`, the management API at `/apikey/keys`, keys
/// rotating themselves at `POST /apikey/rotate` and leak reports at
/// `POST /apikey/secret-scanning`.
pub fn router(
    keys: &ApiKeyState,
    admin: Admin,
    manage: Manage,
    rotation: SelfRotation,
    leaks: LeakReports,
) -> Result<ApiApp, Box<dyn std::error::Error>> {
    let docs = SwaggerUi::new("/docs").config(Config::new(["/openapi.json"]));
    let routes = ApiRouter::<Document>::new(keys)
        .with_openapi(ApiDoc::openapi())
        .routes(Auth::api_key(), routes!(my_service))
        .routes(Auth::public(), routes!(whoami))
        .routes(Auth::none(), routes!(health))
        .routes(Auth::none(), routes!(ready))
        .routes(Auth::api_key().groups(["billing"]), routes!(billing))
        .routes(Auth::api_key().scopes(["orders:write"]), routes!(orders))
        .routes(Auth::none(), routes!(stats))
        .routes(Auth::none(), routes!(openapi))
        .merge_unguarded(
            &[(Method::GET, "/docs"), (Method::GET, "/docs/{*rest}")],
            docs,
        )
        .self_rotation("/apikey/rotate", rotation)
        .leak_reports("/apikey/secret-scanning", leaks)
        .manage("/apikey/keys", manage)
        .admin("/admin", apikey_axum::admin::router(keys, admin)?);
    #[cfg(feature = "metrics")]
    let routes = routes.get("/metrics", Auth::none(), scrape);
    let app = routes.build()?;
    let doc = app.openapi().cloned().unwrap_or_default();
    // The document is the one route's state: no other request carries it.
    Ok(app.with_state(Document(Arc::new(doc))))
}

/// The demo application on `config`: its router, its verification state (to flush request
/// counts on shutdown) and the keys created when the store was empty. The store `config`
/// names is opened once, seeded, and verified against.
pub async fn app(
    config: ApiKeyConfig,
) -> Result<(ApiApp, ApiKeyState, Option<Seeded>), Box<dyn std::error::Error>> {
    let store = apikey_axum::core::open(&config.settings).await?;
    // What my-service's log says at start: where the store is, whatever the working directory.
    if let Some(path) = apikey_axum::core::store::sqlite_file(&config.settings.database_url) {
        println!(
            "apikey: the key store is the SQLite file {}",
            path.display()
        );
    }
    // The demo's own changes (its seeded keys) are audited as made by the demo.
    let manager = KeyManager::new(store.clone(), &config)
        .with_actor(Actor::new("axum-service").expect("a valid actor"));
    let seeded = seed(&manager, &config.settings.admin_group).await?;
    let manage = Manage::new(manager.clone(), store.clone(), &config);
    let admin = Admin::new(manager, &config);
    #[cfg(feature = "metrics")]
    prometheus();
    let rotation = SelfRotation::new(store.clone(), &config);
    let leaks = LeakReports::new(store.clone(), &config)?;
    let keys = ApiKeyState::with_store(config, store).await?;
    Ok((router(&keys, admin, manage, rotation, leaks)?, keys, seeded))
}

/// What `cargo run -p axum-service` does: the demo at 127.0.0.1:8000 (`HOST` and `PORT`
/// override it) on the configured store (the embedded SQLite store by default), printing the
/// keys of a first start once, until Ctrl-C or SIGTERM.
pub async fn serve() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("axum-service: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port: u16 = match std::env::var("PORT") {
        Ok(port) => port
            .parse()
            .map_err(|_| format!("PORT must be a port number, not {port:?}"))?,
        Err(_) => 8000,
    };
    let config = apikey_axum::load_config()?;
    let (router, keys, seeded) = app(config).await?;
    let listener = tokio::net::TcpListener::bind((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot listen on {host}:{port}: {e}"))?;
    if let Some(keys) = seeded {
        let origin = format!("http://{host}:{port}");
        println!("{}", keys.announcement(&origin));
    }
    println!("axum-service: listening on http://{host}:{port}");
    // With the peer's address in each request: keys bound to networks are checked against it.
    let app = router
        .into_router()
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await?;
    // Request counts and leased limit tokens not written yet are written now.
    keys.verifier().shutdown().await?;
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
