//! The admin page on axum (feature `admin`): keys, users and the audit trail in a browser, the
//! very app Rocket mounts ([`apikey_core::http::admin`]), its cookies encrypted with the
//! `admin_cookie_key` setting.
//!
//! ```no_run
//! use apikey_axum::admin::{self, Admin};
//! use apikey_axum::core::{open, ApiKeyConfig, KeyManager};
//! use apikey_axum::{ApiKeyLayer, ApiKeyState};
//!
//! # async fn app() -> Result<axum::Router, Box<dyn std::error::Error>> {
//! let config = apikey_axum::load_config()?;
//! let store = open(&config.settings).await?;
//! let admin = Admin::new(KeyManager::new(store.clone(), &config), &config);
//! let keys = ApiKeyState::with_store(config, store).await?;
//! let app = axum::Router::new()
//!     .nest("/admin", admin::router(&keys, admin)?)
//!     .layer(ApiKeyLayer::new(keys));
//! # Ok(app)
//! # }
//! ```
//!
//! Only keys in `[apikey] admin_group` (`apikey-admin`) may log in; sessions are bound to the
//! secret that logged in, end at logout on every instance, after 30 minutes idle and at
//! `admin_session_lifetime`; failed logins are limited per address and per key; every change
//! is a POST carrying the session's CSRF token. Serve the app with
//! `into_make_service_with_connect_info::<SocketAddr>()`, so that logins are counted per client
//! address (and keys bound to networks can log in).

use std::sync::Arc;

use apikey_core::http::admin::{cookie, AdminAnswer, AdminRequest, PrivateJar, FORM_LIMIT};
use apikey_core::ConfigError;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use http::header::{COOKIE, SET_COOKIE};
use http::HeaderValue;

use crate::reply::AppRequest;
use crate::state::ApiKeyState;

/// What the admin routes need: the one mutation path, the admin group, how sessions are
/// kept, and the count of failed logins.
pub use apikey_core::http::admin::AdminApp as Admin;

#[derive(Clone)]
struct AdminState {
    app: Arc<Admin>,
    keys: ApiKeyState,
    cookies: cookie::Key,
}

/// The admin page's routes, to nest where the page should live (`.nest("/admin", …)`). Fails
/// in a release build when `admin_cookie_key` is not set (a debug build makes a key up, and
/// sessions end with the process).
pub fn router<S>(keys: &ApiKeyState, admin: Admin) -> Result<Router<S>, ConfigError> {
    let cookies = admin.cookie_key().map_err(|message| ConfigError {
        section: "apikey".into(),
        source_name: "the configuration".into(),
        message,
    })?;
    let state = AdminState {
        app: Arc::new(admin),
        keys: keys.clone(),
        cookies,
    };
    Ok(Router::new()
        .route("/", any(handle))
        .route("/{*rest}", any(handle))
        .fallback(handle)
        .with_state(state))
}

/// Every admin request: axum's request to the core's app, its answer back.
async fn handle(State(state): State<AdminState>, req: Request) -> Response {
    let req = match AppRequest::read(req, FORM_LIMIT).await {
        Ok(req) => req,
        Err(res) => return res,
    };
    let (base, parts) = (req.base(), &req.parts);
    let client = crate::verify::client_by(&state.keys, &parts.headers, &parts.extensions);
    let sent = parts
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let mut jar = PrivateJar::new(&state.cookies, sent);
    let request = AdminRequest {
        method: parts.method.as_str(),
        base,
        path: parts.uri.path(),
        query: parts.uri.query(),
        body: &req.body,
        client,
        // axum does not know whether TLS ends in this process; behind a TLS proxy set
        // `admin_secure_cookie = "always"`.
        tls: parts.uri.scheme_str() == Some("https"),
    };
    let answer = state
        .app
        .handle(state.keys.verifier(), &request, &mut jar)
        .await;
    respond(answer, &jar)
}

fn respond(answer: AdminAnswer, jar: &PrivateJar) -> Response {
    let mut res = crate::reply::respond(answer);
    for cookie in jar.set_cookies() {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            res.headers_mut().append(SET_COOKIE, value);
        }
    }
    res
}
