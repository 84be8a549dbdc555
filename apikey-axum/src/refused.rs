//! Refusals as axum responses: the bytes `apikey_core::http` prepares, so that a refusal here
//! is the very answer apikey-rocket gives.

use apikey_core::http::{Prepared, PROBLEM_JSON};
use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use http::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::StatusCode;

/// A refused request's answer: `application/problem+json` with `WWW-Authenticate` on 401 and
/// `Retry-After` on 429. The rejection of the [`Caller`](crate::Caller) extractor and the
/// answer of [`Auth`](crate::Auth) route layers.
#[derive(Debug, Clone)]
pub struct Refused(pub(crate) Prepared);

impl Refused {
    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        self.0.status()
    }

    /// The bytes, status and headers, as every adapter sends them.
    pub fn as_core(&self) -> &Prepared {
        &self.0
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let p = self.0;
        let mut res = Response::new(Body::from(Bytes::from_owner(p.body().clone())));
        *res.status_mut() =
            StatusCode::from_u16(p.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = res.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(challenge) = p.challenge() {
            // Built from a header name the configuration checked: visible ASCII only.
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        if let Some(secs) = p.retry_after_secs() {
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}
