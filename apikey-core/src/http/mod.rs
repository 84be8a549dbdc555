//! What a refused request is answered, as bytes: the status, the `application/problem+json`
//! body (RFC 9457) and the `WWW-Authenticate` / `Retry-After` headers, prepared once and sent
//! as they are by every adapter (Rocket, axum), so that both give the very same answers. Also
//! the two response headers apikey adds to answers it did not make: `Sunset` (RFC 8594) for a
//! key that stops working soon, and the key header in a CORS preflight's
//! `Access-Control-Allow-Headers`.

#[cfg(feature = "admin")]
#[cfg_attr(docsrs, doc(cfg(feature = "admin")))]
pub mod admin;
mod answers;
pub mod inventory;
mod keys;
#[cfg(feature = "manage")]
#[cfg_attr(docsrs, doc(cfg(feature = "manage")))]
pub mod manage;
#[cfg(feature = "openapi")]
#[cfg_attr(docsrs, doc(cfg(feature = "openapi")))]
pub mod openapi;

pub use answers::{Answers, Prepared, Problem, PROBLEM_JSON};
pub use keys::Keys;

use serde::Serialize;

use time::macros::format_description;
use time::OffsetDateTime;

use crate::limits::Budget;
use crate::verify::AuthError;

/// An answer an app of the core makes whole (the admin page, the management API), which the
/// adapters send as it is: the status, the headers, the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The headers, in order.
    pub headers: Vec<(&'static str, std::borrow::Cow<'static, str>)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The value of the header `name` (case-insensitive), if set.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }
}

/// One route of an app of the core (the admin page, the management API): what the adapters
/// register (Rocket's path syntax, below the mount point) and what route inventories list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppRoute {
    /// The handler's name, as the inventory shows it.
    pub name: &'static str,
    /// The method, upper case.
    pub method: &'static str,
    /// The path below the mount point, `<name>` for a segment.
    pub path: &'static str,
    /// How it is guarded.
    pub auth: RouteAuth,
    /// What it does, for OpenAPI documents (empty for pages).
    pub summary: &'static str,
}

impl AppRoute {
    /// Its path under the app's mount point `base` (no trailing `/`): `base` itself for `/`.
    pub fn under(&self, base: &str) -> String {
        match self.path {
            "/" => base.to_owned(),
            sub => format!("{base}{sub}"),
        }
    }
}

/// How a route is guarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteAuth {
    /// `auth = "api_key"`: a valid key is required.
    ApiKey,
    /// `auth = "public"`: a key is optional; a bad one is refused.
    Public,
    /// `auth = "none"`: declared open.
    None,
    /// `auth = path::Guard`: a guard of the service's own.
    Custom,
    /// Mounted with the framework's own routing: apikey knows nothing of it.
    Unguarded,
}

/// The `RateLimit-Policy` and `RateLimit` field values (draft-ietf-httpapi-ratelimit-headers,
/// revision 09: lists of quoted policy names with `q`/`w` and `r`/`t` parameters) for a request
/// of a key with limits: `"rate";q=100;w=60, "quota";q=10000;w=2592000` and
/// `"rate";r=99;t=1, "quota";r=9998;t=86399`. `None` for a key without limits; `RateLimit` lists
/// only the policies whose remaining count this instance knows (`None` when it knows none).
///
/// ```
/// use apikey_core::http::ratelimit_fields;
/// use apikey_core::limits::{Budget, Policy};
/// let rate = Policy { quota: 100, window_secs: 60, remaining: Some(99), reset_secs: 1 };
/// let fields = ratelimit_fields(&Budget { rate: Some(rate), quota: None }).unwrap();
/// assert_eq!(fields.0, r#""rate";q=100;w=60"#);
/// assert_eq!(fields.1.as_deref(), Some(r#""rate";r=99;t=1"#));
/// assert!(ratelimit_fields(&Budget::default()).is_none());
/// ```
pub fn ratelimit_fields(budget: &Budget) -> Option<(String, Option<String>)> {
    if budget.is_empty() {
        return None;
    }
    // Written by hand, not with `format!`: these go on every response of a key with limits,
    // and the formatting machinery costs several times the text itself.
    let policies = [("\"rate\"", budget.rate), ("\"quota\"", budget.quota)];
    let mut policy = String::with_capacity(64);
    let mut left = String::with_capacity(64);
    for (name, p) in policies {
        let Some(p) = p else { continue };
        if !policy.is_empty() {
            policy.push_str(", ");
        }
        policy.push_str(name);
        policy.push_str(";q=");
        push_u64(&mut policy, p.quota);
        policy.push_str(";w=");
        push_u64(&mut policy, p.window_secs);
        if let Some(r) = p.remaining {
            if !left.is_empty() {
                left.push_str(", ");
            }
            left.push_str(name);
            left.push_str(";r=");
            push_u64(&mut left, r);
            left.push_str(";t=");
            push_u64(&mut left, p.reset_secs);
        }
    }
    Some((policy, (!left.is_empty()).then_some(left)))
}

/// Appends `n` in decimal (two digits a step: these go on every response of a key with
/// limits).
fn push_u64(out: &mut String, n: u64) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// The HTTP status code of a refusal.
pub fn status_of(err: AuthError) -> u16 {
    match err {
        AuthError::Missing | AuthError::Invalid(_) => 401,
        AuthError::Forbidden | AuthError::MissingScope | AuthError::AddressNotAllowed => 403,
        AuthError::Unavailable => 503,
        AuthError::RateLimited { .. } | AuthError::QuotaExhausted { .. } => 429,
    }
}

/// The reason phrase of a status code (RFC 9110), as the `title` of a problem.
pub fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// An HTTP-date (RFC 9110 IMF-fixdate), as `Sunset` carries it: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(t: OffsetDateTime) -> Option<String> {
    let format = format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.to_offset(time::UtcOffset::UTC).format(&format).ok()
}

/// The `Access-Control-Allow-Headers` of a CORS preflight's answer: `base` (what the route's own
/// CORS answer allows, else what the browser asked for in `Access-Control-Request-Headers`)
/// with the key header (and `Authorization` when Bearer keys are accepted) added unless it is
/// already listed (or `*` is). Browsers send preflights without a key, so a key header they
/// were not told about would block every cross-origin call.
pub fn preflight_allow_headers(base: Option<&str>, key_header: &str, bearer: bool) -> String {
    let base = base.map(str::trim).unwrap_or_default();
    let lists = |name: &str| {
        base.split(',')
            .any(|h| h.trim().eq_ignore_ascii_case(name) || h.trim() == "*")
    };
    let mut needed = vec![key_header];
    if bearer {
        needed.push("Authorization");
    }
    let missing: Vec<&str> = needed.into_iter().filter(|h| !lists(h)).collect();
    match (base.is_empty(), missing.is_empty()) {
        (true, _) => missing.join(", "),
        (false, true) => base.to_owned(),
        (false, false) => format!("{base}, {}", missing.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_whole() {
        for n in [
            0,
            7,
            10,
            99,
            100,
            4_000_000_000,
            1_000_000_000_000,
            u64::MAX,
        ] {
            let mut out = String::from("q=");
            push_u64(&mut out, n);
            assert_eq!(out, format!("q={n}"));
        }
    }

    #[test]
    fn dates_are_imf_fixdate() {
        let t = OffsetDateTime::from_unix_timestamp(784_111_777).unwrap();
        assert_eq!(
            http_date(t).as_deref(),
            Some("Sun, 06 Nov 1994 08:49:37 GMT")
        );
    }

    #[test]
    fn preflights_list_the_key_header_once() {
        assert_eq!(preflight_allow_headers(None, "API-KEY", false), "API-KEY");
        assert_eq!(
            preflight_allow_headers(Some("content-type"), "API-KEY", true),
            "content-type, API-KEY, Authorization"
        );
        assert_eq!(
            preflight_allow_headers(Some(" api-key , x-other "), "API-KEY", false),
            "api-key , x-other"
        );
        assert_eq!(preflight_allow_headers(Some("*"), "API-KEY", true), "*");
    }

    #[test]
    fn refusal_statuses() {
        assert_eq!(status_of(AuthError::Missing), 401);
        assert_eq!(status_of(AuthError::INVALID), 401);
        assert_eq!(status_of(AuthError::Forbidden), 403);
        assert_eq!(status_of(AuthError::Unavailable), 503);
        assert_eq!(
            status_of(AuthError::QuotaExhausted {
                retry_after_secs: 3
            }),
            429
        );
        assert_eq!(reason(429), "Too Many Requests");
    }
}

#[cfg(test)]
mod ratelimit_tests {
    use super::*;
    use crate::limits::Policy;

    #[test]
    fn ratelimit_fields_write_every_number() {
        let p = |quota, window_secs, remaining, reset_secs| Policy {
            quota,
            window_secs,
            remaining,
            reset_secs,
        };
        let budget = Budget {
            rate: Some(p(u64::from(u32::MAX), 1, None, 0)),
            quota: Some(p(u64::MAX, 31_622_400, Some(0), 10)),
        };
        let (policy, left) = ratelimit_fields(&budget).unwrap();
        assert_eq!(
            policy,
            r#""rate";q=4294967295;w=1, "quota";q=18446744073709551615;w=31622400"#
        );
        assert_eq!(left.as_deref(), Some(r#""quota";r=0;t=10"#));
    }
}
