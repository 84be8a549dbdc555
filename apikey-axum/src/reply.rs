//! The answers the core's apps make whole (the admin page, the management API), sent as they
//! are.

use apikey_core::http::Reply;
use axum::body::Body;
use axum::response::Response;
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
