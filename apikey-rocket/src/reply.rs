//! The answers the core's apps make whole (the admin page, the management API), sent as they
//! are.

use std::io::Cursor;

use apikey_core::http::{AppRoute, Reply};
use rocket::data::{Data, ToByteUnit};
use rocket::http::{Header, Method, Status};
use rocket::response::{self, Responder};
use rocket::route::{Handler, Route};
use rocket::Request;

/// A Rocket route per row of a core app's table, each named as the table names it, all served
/// by `handler`.
pub(crate) fn mounted<H: Handler + Clone>(table: &[AppRoute], handler: H) -> Vec<Route> {
    table
        .iter()
        .map(|r| {
            let method = r.method.parse::<Method>().unwrap_or(Method::Get);
            let mut route = Route::new(method, r.path, handler.clone());
            route.name = Some(r.name.into());
            route
        })
        .collect()
}

/// A core app's answer, sent as it is.
pub(crate) struct Answered(pub(crate) Reply);

impl<'r> Responder<'r, 'static> for Answered {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let Reply {
            status,
            headers,
            body,
        } = self.0;
        let mut res = rocket::Response::build();
        res.status(Status::new(status));
        for (name, value) in headers {
            res.header(Header::new(name, value));
        }
        res.sized_body(body.len(), Cursor::new(body)).ok()
    }
}

/// The body of a POST or PATCH, at most `limit` bytes (413 beyond it, 400 when it cannot be
/// read); empty for other methods.
pub(crate) async fn body(
    req: &Request<'_>,
    data: Data<'_>,
    limit: usize,
) -> Result<Vec<u8>, Status> {
    if !matches!(req.method(), Method::Post | Method::Patch) {
        return Ok(Vec::new());
    }
    match data.open(limit.bytes()).into_bytes().await {
        Ok(body) if body.is_complete() => Ok(body.into_inner()),
        Ok(_) => Err(Status::PayloadTooLarge),
        Err(_) => Err(Status::BadRequest),
    }
}

/// Where the request's route is mounted (no trailing `/`), and the request's path below it.
pub(crate) fn below_mount<'r>(req: &'r Request<'_>) -> (String, &'r str) {
    let base = req
        .route()
        .map(|r| r.uri.base().trim_end_matches('/').to_owned())
        .unwrap_or_default();
    let full = req.uri().path().as_str();
    let path = full.strip_prefix(base.as_str()).unwrap_or(full);
    (base, path)
}
