//! The management API on axum (feature `manage`): keys administered over HTTP with JSON, for
//! keys in `admin_group` — the very app Rocket mounts ([`apikey_core::http::manage`]), so the
//! answers are the same byte for byte.
//!
//! ```no_run
//! use apikey_axum::core::{open, KeyManager};
//! use apikey_axum::manage::{self, Manage};
//! use apikey_axum::{ApiKeyLayer, ApiKeyState};
//!
//! # async fn app() -> Result<axum::Router, Box<dyn std::error::Error>> {
//! let config = apikey_axum::load_config()?;
//! let store = open(&config.settings).await?;
//! let app = Manage::new(KeyManager::new(store.clone(), &config), store.clone(), &config);
//! let keys = ApiKeyState::with_store(config, store).await?;
//! let router = axum::Router::new()
//!     .nest("/apikey/keys", manage::router(app))
//!     .layer(ApiKeyLayer::new(keys));
//! # Ok(router)
//! # }
//! ```
//!
//! Every change is recorded in the audit trail as made by `key:<the calling key's name>`.
//! [`ApiRouter::manage`](crate::ApiRouter::manage) nests it and lists its routes (no layer
//! needed).

use std::sync::Arc;

use apikey_core::http::manage::{ManageRequest, BODY_LIMIT};
use axum::extract::{Extension, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;

use crate::reply::AppRequest;
use crate::{ApiKeyState, Auth, Caller, Refused};

/// What the management routes need: the one mutation path and the group whose keys may call
/// them.
pub use apikey_core::http::manage::ManageApp as Manage;

/// The management routes, to nest where the API should live (`.nest("/apikey/keys", …)`),
/// inside an [`ApiKeyLayer`](crate::ApiKeyLayer): every call needs a valid key, in
/// `admin_group`.
pub fn router<S: Clone + Send + Sync + 'static>(app: Manage) -> Router<S> {
    routes(app, Auth::api_key())
}

/// The routes, each verified as `auth` says (an [`ApiRouter`](crate::ApiRouter) passes one
/// carrying its state).
pub(crate) fn routes<S: Clone + Send + Sync + 'static>(app: Manage, auth: Auth) -> Router<S> {
    Router::new()
        .route("/", any(handle))
        .route("/{*rest}", any(handle))
        .route_layer(auth)
        .layer(Extension(Arc::new(app)))
}

/// Every management call: axum's request to the core's app, its answer back.
async fn handle(
    caller: Caller,
    keys: ApiKeyState,
    Extension(app): Extension<Arc<Manage>>,
    req: Request,
) -> Response {
    let req = match AppRequest::read(req, BODY_LIMIT).await {
        Ok(req) => req,
        Err(res) => return res,
    };
    let parts = &req.parts;
    let request = ManageRequest {
        method: parts.method.as_str(),
        base: req.base(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        body: &req.body,
    };
    match app.handle(keys.verifier(), &caller.0, &request).await {
        Ok(answer) => crate::reply::respond(answer),
        Err(e) => Refused(keys.prepared(e)).into_response(),
    }
}
