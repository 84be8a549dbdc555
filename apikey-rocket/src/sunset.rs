//! What a response tells the client of its key: `Sunset` (RFC 8594) when it stops working soon,
//! and the `RateLimit-Policy` / `RateLimit` fields when it has limits, so the client learns
//! before it breaks or is throttled.

use apikey_core::http::{http_date, ratelimit_fields};
use rocket::{Request, Response};

use crate::guard::Verified;

/// Adds `Sunset` when this request's key is valid and ends soon, and its limits when it has
/// some.
pub(crate) fn announce<'r>(req: &'r Request<'_>, res: &mut Response<'r>) {
    let verified = Verified::of(req);
    if let Some(date) = verified.sunset().and_then(http_date) {
        res.set_raw_header("Sunset", date);
    }
    if let Some((policy, left)) = ratelimit_fields(verified.limits()) {
        res.set_raw_header("RateLimit-Policy", policy);
        if let Some(left) = left {
            res.set_raw_header("RateLimit", left);
        }
    }
}
