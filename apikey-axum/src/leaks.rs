//! `POST …/secret-scanning`: leaked keys reported by the secret scanner that found them
//! (GitHub's secret scanning partner format; opt-in). Route it where it should live:
//!
//! ```no_run
//! # use apikey_axum::{core, ApiKeyLayer, ApiKeyState};
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = apikey_axum::load_config()?;
//! let store = core::open(&config.settings).await?;
//! let leaks = core::admin::LeakReports::new(store.clone(), &config)?;
//! let state = ApiKeyState::with_store(config, store).await?;
//! let app: axum::Router = axum::Router::new()
//!     .route("/apikey/secret-scanning", apikey_axum::leaks::route(leaks))
//!     .layer(ApiKeyLayer::new(state));
//! # Ok(())
//! # }
//! ```
//!
//! The request needs no key: it is signed (`Github-Public-Key-Signature`, verified with the
//! keys of `secret_scanning_keys`). The answer is the scanner's list of labels.

use std::sync::Arc;

use apikey_core::admin::{LeakReports, MAX_REPORT_BYTES};
use apikey_core::http::Problem;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Extension};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, MethodRouter};
use axum::Json;
use http::HeaderMap;

use crate::Refused;

/// The report route: `POST`, no key (the report is signed), bodies up to 1 MiB.
pub fn route<S: Clone + Send + Sync + 'static>(leaks: LeakReports) -> MethodRouter<S> {
    post(report)
        .layer::<_, std::convert::Infallible>(Extension(Arc::new(leaks)))
        .layer(DefaultBodyLimit::max(MAX_REPORT_BYTES))
}

async fn report(
    headers: HeaderMap,
    Extension(leaks): Extension<Arc<LeakReports>>,
    body: Bytes,
) -> Response {
    let signature = headers
        .get("github-public-key-signature")
        .and_then(|v| v.to_str().ok());
    match leaks.report(&body, signature).await {
        Ok(labels) => Json(labels).into_response(),
        Err(e) => Refused(Problem::for_leak_report(&e)).into_response(),
    }
}
