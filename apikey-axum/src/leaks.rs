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
use axum::extract::{DefaultBodyLimit, Extension, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, MethodRouter};
use axum::Json;

use crate::Refused;

/// The report route: `POST`, no key (the report is signed), bodies up to 1 MiB.
pub fn route<S: Clone + Send + Sync + 'static>(leaks: LeakReports) -> MethodRouter<S> {
    post(report)
        .layer::<_, std::convert::Infallible>(Extension(Arc::new(leaks)))
        .layer(DefaultBodyLimit::max(MAX_REPORT_BYTES))
}

async fn report(Extension(leaks): Extension<Arc<LeakReports>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let client = crate::verify::request_client(&parts.headers, &parts.extensions);
    // Refused before the body is read: no key, no or a malformed signature, an address past
    // its refused reports.
    let admitted = match leaks.admit(
        header("github-public-key-signature"),
        header("github-public-key-identifier"),
        client,
    ) {
        Ok(admitted) => admitted,
        Err(e) => return Refused(Problem::for_leak_report(&e)).into_response(),
    };
    let body = match axum::body::to_bytes(body, MAX_REPORT_BYTES).await {
        Ok(body) => body,
        Err(_) => {
            let problem = Problem::new(413, "The report is too large.");
            return Refused(problem.prepare()).into_response();
        }
    };
    match leaks.report(admitted, &body).await {
        Ok(labels) => Json(labels).into_response(),
        Err(e) => Refused(Problem::for_leak_report(&e)).into_response(),
    }
}
