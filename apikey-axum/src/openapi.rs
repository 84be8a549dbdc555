//! OpenAPI (feature `openapi`, on utoipa and utoipa-axum): routes added with [`guarded`] are
//! guarded and documented by the one declaration, so the two cannot drift apart.
//!
//! ```no_run
//! use apikey_axum::openapi::{guarded, ApiKeyDocs};
//! use apikey_axum::{ApiKeyLayer, ApiKeyState, Auth, Caller};
//! use axum::{Extension, Json};
//! use utoipa::OpenApi;
//! use utoipa_axum::router::OpenApiRouter;
//! use utoipa_axum::routes;
//!
//! /// Says who called.
//! #[utoipa::path(get, path = "/hello", responses((status = 200, body = String)))]
//! async fn hello(caller: Caller) -> String {
//!     format!("hello {}", caller.user())
//! }
//!
//! #[derive(OpenApi)]
//! struct ApiDoc;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let state = ApiKeyState::from_config().await?;
//! let (router, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
//!     .routes(guarded(Auth::api_key(), routes!(hello)))
//!     .split_for_parts();
//! let mut doc = doc;
//! ApiKeyDocs::for_state(&state).apply(&mut doc);
//! let app: axum::Router = router
//!     .route("/openapi.json", axum::routing::get(move || async move { Json(doc) }))
//!     .layer(ApiKeyLayer::new(state));
//! # let _ = app; Ok(()) }
//! ```
//!
//! The document then has the `ApiKey` security scheme (`in: header`, the configured header)
//! and, with `accept_bearer`, a `Bearer` scheme; every guarded operation has its `security`
//! (required for `api_key`, optional for `public`, none for `none`), its groups (the
//! `x-apikey-groups` extension and a sentence in the description) and the problem responses
//! apikey can give (401, 403 with groups, 429, 503): what apikey-rocket writes for `#[route]`.

use apikey_core::http::openapi::{mark, operations, SecurityDocs};
use apikey_core::http::RouteAuth;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::UtoipaMethodRouter;

use crate::{ApiKeyState, Auth};

pub use apikey_core::http::openapi::{
    API_KEY_SCHEME, AUTH_EXTENSION, BEARER_SCHEME, GROUPS_EXTENSION, PROBLEM_SCHEMA,
};

/// Guards the routes of `routes!(…)` with `auth` (as a route layer) and marks their
/// operations with it, for [`ApiKeyDocs`] to describe.
pub fn guarded<S>(auth: Auth, routes: UtoipaMethodRouter<S>) -> UtoipaMethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    let (schemas, mut paths, router) = routes;
    for item in paths.paths.values_mut() {
        for (_, operation) in operations(item) {
            mark(
                operation,
                auth.mode(),
                auth.group_names(),
                auth.scope_names(),
            );
        }
    }
    let router = match auth.mode() {
        RouteAuth::None => router,
        _ => router.route_layer(auth),
    };
    (schemas, paths, router)
}

/// Writes apikey's facts into an OpenAPI document (also a `utoipa::Modify`).
#[derive(Debug, Clone)]
pub struct ApiKeyDocs(SecurityDocs);

impl ApiKeyDocs {
    /// For keys in `header` (and `Authorization: Bearer` when `bearer`).
    pub fn new(header: impl Into<String>, bearer: bool) -> Self {
        ApiKeyDocs(SecurityDocs::new(header, bearer))
    }

    /// For the service `state` verifies for: its header and `accept_bearer`.
    pub fn for_state(state: &ApiKeyState) -> Self {
        Self::new(state.header(), state.accepts_bearer())
    }

    /// Writes the schemes, and each [`guarded`] operation's security, groups and responses.
    pub fn apply(&self, doc: &mut OpenApi) {
        self.0.apply_marked(doc);
    }
}

impl utoipa::Modify for ApiKeyDocs {
    fn modify(&self, openapi: &mut OpenApi) {
        self.apply(openapi);
    }
}
