//! `Sunset` (RFC 8594): a response to a key that stops working soon says when, so the client
//! learns before it breaks.

use apikey_core::http::http_date;
use rocket::{Request, Response};

use crate::guard::Verified;

/// Adds `Sunset` when this request's key is valid and ends soon.
pub(crate) fn announce<'r>(req: &'r Request<'_>, res: &mut Response<'r>) {
    if let Some(date) = Verified::of(req).sunset().and_then(http_date) {
        res.set_raw_header("Sunset", date);
    }
}
