//! The answers the core's apps make whole (the admin page, the management API), sent as they
//! are.

use std::io::Cursor;

use apikey_core::http::Reply;
use rocket::http::{Header, Status};
use rocket::response::{self, Responder};
use rocket::Request;

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
