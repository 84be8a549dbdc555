//! `POST …/rotate`: a key rotates itself (opt-in). Route it where it should live:
//!
//! ```no_run
//! # use apikey_axum::{core, ApiKeyLayer, ApiKeyState};
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = apikey_axum::load_config()?;
//! let store = core::open(&config.settings).await?;
//! let rotation = core::admin::SelfRotation::new(store.clone(), &config);
//! let state = ApiKeyState::with_store(config, store).await?;
//! let app: axum::Router = axum::Router::new()
//!     .route("/apikey/rotate", apikey_axum::rotation::route(rotation))
//!     .layer(ApiKeyLayer::new(state));
//! # Ok(())
//! # }
//! ```
//!
//! The answer is `{"name", "key", "previous_key_valid_until"}` with `Cache-Control: no-store`;
//! a key set in a config section gets 403, a second rotation within `self_rotation_every` 429
//! with `Retry-After`.

use std::sync::Arc;

use apikey_core::admin::SelfRotation;
use apikey_core::http::Problem;
use axum::extract::Extension;
use axum::response::{IntoResponse, Response};
use axum::routing::{post, MethodRouter};
use axum::Json;
use http::header::{HeaderValue, CACHE_CONTROL};
use http::Extensions;

use crate::{ApiKeyState, Auth, Caller, Refused};

/// The self-rotation route: `POST`, authenticated by the key that rotates.
pub fn route<S: Clone + Send + Sync + 'static>(rotation: SelfRotation) -> MethodRouter<S> {
    post(rotate)
        .route_layer(Auth::api_key())
        .layer(Extension(Arc::new(rotation)))
}

async fn rotate(
    caller: Caller,
    keys: ApiKeyState,
    Extension(rotation): Extension<Arc<SelfRotation>>,
    extensions: Extensions,
) -> Response {
    // The `Caller` extractor verified this request: the secret it presented is kept with it.
    let Some(presented) = crate::verify::presented_secret(&extensions) else {
        let problem = Problem::new(503, "Key rotation is not set up on this service.");
        return Refused(problem.prepare()).into_response();
    };
    match rotation
        .rotate(keys.verifier(), &caller.0, &presented)
        .await
    {
        Ok(rotated) => {
            let mut res = Json(rotated).into_response();
            // The body holds a key: no cache may keep it.
            res.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
        Err(e) => Refused(Problem::for_rotation(&e)).into_response(),
    }
}
