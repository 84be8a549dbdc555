//! `application/problem+json` responses (RFC 9457) for refused requests: the bytes
//! `apikey_core::http` prepares, sent as Rocket responses.

use std::io::Cursor;

use apikey_core::http;
use apikey_core::AuthError;
use rocket::http::{ContentType, Header, Status};
use rocket::response::{self, Responder};
use rocket::Request;

/// A problem document, with the challenge header on 401.
#[derive(Debug, Clone)]
pub struct Problem(http::Problem);

/// The HTTP status for a refusal.
pub fn status_of(err: AuthError) -> Status {
    Status::new(http::status_of(err))
}

impl Problem {
    /// A problem for `status` with a detail sentence.
    pub fn new(status: Status, detail: impl Into<String>) -> Self {
        Problem(http::Problem::new(status.code, detail))
    }

    /// The problem for an authentication failure; 401s carry
    /// `WWW-Authenticate: ApiKey header="<header>"`.
    pub fn for_auth(err: AuthError, header: &str) -> Self {
        Problem(http::Problem::for_auth(err, header))
    }

    /// The document (status, title, detail).
    pub fn document(&self) -> &http::Problem {
        &self.0
    }

    /// Serializes once, for answering many times.
    pub fn prepare(&self) -> Prepared {
        Prepared(self.0.prepare())
    }
}

impl<'r> Responder<'r, 'static> for Problem {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        self.prepare().respond_to(req)
    }
}

/// A problem serialized ahead of time: refusals are answered without formatting anything.
#[derive(Debug, Clone)]
pub struct Prepared(pub(crate) http::Prepared);

impl Prepared {
    /// The same problem with another `Retry-After`.
    pub fn retry_after(self, secs: Option<u32>) -> Self {
        Prepared(self.0.retry_after(secs))
    }

    /// The bytes, status and headers, as every adapter sends them.
    pub fn as_core(&self) -> &http::Prepared {
        &self.0
    }
}

impl From<http::Prepared> for Prepared {
    fn from(prepared: http::Prepared) -> Self {
        Prepared(prepared)
    }
}

impl<'r> Responder<'r, 'static> for Prepared {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let p = self.0;
        let body = p.body().clone();
        let mut res = rocket::Response::build();
        res.status(Status::new(p.status()))
            .header(ContentType::new("application", "problem+json"))
            .sized_body(body.len(), Cursor::new(body));
        if let Some(challenge) = p.challenge() {
            res.header(Header::new("WWW-Authenticate", challenge));
        }
        if let Some(secs) = p.retry_after_secs() {
            res.header(Header::new("Retry-After", secs.to_string()));
        }
        Ok(res.finalize())
    }
}
