//! Extractors: `Caller` requires a valid key, `Option<Caller>` takes one when sent.

use apikey_core::AuthError;
use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;

use crate::caller::Caller;
use crate::refused::Refused;
use crate::state::ApiKeyState;
use crate::verify::{refusal, verified, InRequest};

/// A valid key is required: a missing, invalid or refused key answers the refusal (401, 429,
/// 503) and the handler does not run.
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Refused> {
        match verified(&parts.headers, &parts.extensions).await {
            Ok(caller) => Ok(caller),
            Err(e) => Err(refusal(&parts.extensions, e)),
        }
    }
}

/// A key is optional (`auth = "public"` in apikey-rocket): no key is `None`; a key that is
/// sent must be valid (a bad one answers 401, not `None`, so it is never silently ignored).
impl<S: Send + Sync> OptionalFromRequestParts<S> for Caller {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Refused> {
        match verified(&parts.headers, &parts.extensions).await {
            Ok(caller) => Ok(Some(caller)),
            Err(AuthError::Missing) => Ok(None),
            Err(e) => Err(refusal(&parts.extensions, e)),
        }
    }
}

/// The verification state, in a handler (counters for `/stats`, the answer to a refusal of the
/// handler's own): `async fn stats(keys: ApiKeyState)`. Without the
/// [`ApiKeyLayer`](crate::ApiKeyLayer) it answers 503.
impl<S: Send + Sync> FromRequestParts<S> for ApiKeyState {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Refused> {
        match parts.extensions.get::<InRequest>() {
            Some(keys) => Ok(keys.state().clone()),
            None => {
                apikey_core::__event!(error, "apikey: the ApiKeyLayer is not installed");
                Err(refusal(&parts.extensions, AuthError::Unavailable))
            }
        }
    }
}
