//! CORS preflights: browsers send them without a key, so they must never need one.

use apikey_core::config::DEFAULT_HEADER;
use rocket::http::{Method, Status};
use rocket::{Request, Response};

use crate::state::ApiKeyState;

/// CORS preflights never need a key (browsers send them without one): a preflight no route
/// answered gets `204`, and every preflight answer lists the key header in
/// `Access-Control-Allow-Headers`. Origins are left to a CORS fairing, if any.
pub(crate) fn allow_key_header<'r>(req: &'r Request<'_>, res: &mut Response<'r>) {
    if req.method() != Method::Options {
        return;
    }
    let Some(method) = req.headers().get_one("Access-Control-Request-Method") else {
        return;
    };
    let keys = req.rocket().state::<ApiKeyState>();
    let header = keys.map_or(DEFAULT_HEADER, |k| k.header());
    let bearer = keys.is_some_and(|k| k.accepts_bearer());
    if res.status() == Status::NotFound {
        res.set_status(Status::NoContent);
        res.set_sized_body(0, std::io::Cursor::new(""));
        res.remove_header("Content-Type");
        res.set_raw_header("Access-Control-Allow-Methods", method.to_owned());
    }
    // What the route's own CORS answer allows, else what the browser asked for.
    let base = res
        .headers()
        .get_one("Access-Control-Allow-Headers")
        .or_else(|| req.headers().get_one("Access-Control-Request-Headers"));
    let value = apikey_core::http::preflight_allow_headers(base, header, bearer);
    res.set_raw_header("Access-Control-Allow-Headers", value);
}
