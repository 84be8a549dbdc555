//! CORS preflights: browsers send them without a key, so they must never need one.

use apikey_core::config::DEFAULT_HEADER;
use rocket::http::{Method, Status};
use rocket::{Request, Response};

use crate::ApiKeyState;

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
    let header = req
        .rocket()
        .state::<ApiKeyState>()
        .map_or(DEFAULT_HEADER, |k| k.header());
    if res.status() == Status::NotFound {
        res.set_status(Status::NoContent);
        res.set_sized_body(0, std::io::Cursor::new(""));
        res.remove_header("Content-Type");
        res.set_raw_header("Access-Control-Allow-Methods", method.to_owned());
    }
    let allowed = res
        .headers()
        .get_one("Access-Control-Allow-Headers")
        .map(str::to_owned);
    let listed = allowed.as_deref().is_some_and(|a| {
        a.split(',')
            .any(|h| h.trim().eq_ignore_ascii_case(header) || h.trim() == "*")
    });
    if !listed {
        let value = match allowed {
            Some(a) if !a.trim().is_empty() => format!("{a}, {header}"),
            _ => match req.headers().get_one("Access-Control-Request-Headers") {
                Some(asked)
                    if !asked.trim().is_empty()
                        && !asked
                            .split(',')
                            .any(|h| h.trim().eq_ignore_ascii_case(header)) =>
                {
                    format!("{asked}, {header}")
                }
                Some(asked) if !asked.trim().is_empty() => asked.to_owned(),
                _ => header.to_owned(),
            },
        };
        res.set_raw_header("Access-Control-Allow-Headers", value);
    }
}
