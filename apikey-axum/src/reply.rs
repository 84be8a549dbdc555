//! The answers the core's apps make whole (the admin page, the management API), sent as they
//! are.

use apikey_core::http::Reply;
use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{NestedPath, Request};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderName, HeaderValue, StatusCode};

/// A core app's answer as axum's response.
pub(crate) fn respond(reply: Reply) -> Response {
    let Reply {
        status,
        headers,
        body,
    } = reply;
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let map = res.headers_mut();
    for (name, value) in headers {
        // `from_bytes` takes the app's names as written and keeps them in lower case.
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            map.append(name, value);
        }
    }
    res
}

/// A request to one of the core's apps: its parts, its body (at most `limit` bytes: 413
/// beyond it) and where the app is nested (no trailing `/`).
pub(crate) struct AppRequest {
    pub(crate) parts: Parts,
    pub(crate) body: Bytes,
}

impl AppRequest {
    pub(crate) async fn read(req: Request, limit: usize) -> Result<Self, Response> {
        let (parts, body) = req.into_parts();
        match to_bytes(body, limit).await {
            Ok(body) => Ok(AppRequest { parts, body }),
            Err(_) => Err(StatusCode::PAYLOAD_TOO_LARGE.into_response()),
        }
    }

    /// Where the app is nested (`/admin`), no trailing `/`.
    pub(crate) fn base(&self) -> &str {
        self.parts
            .extensions
            .get::<NestedPath>()
            .map_or("", |n| n.as_str())
            .trim_end_matches('/')
    }
}
