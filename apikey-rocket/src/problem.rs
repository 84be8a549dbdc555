//! `application/problem+json` responses (RFC 9457) for refused requests.

use std::io::Cursor;

use apikey_core::AuthError;
use rocket::http::{ContentType, Header, Status};
use rocket::response::{self, Responder};
use rocket::Request;
use serde::Serialize;

/// A problem document, with the challenge header on 401.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// Always `about:blank`: the status says what happened.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The status' reason phrase.
    pub title: &'static str,
    /// The HTTP status code.
    pub status: u16,
    /// A sentence for humans. Never holds the key.
    pub detail: String,
    #[serde(skip)]
    challenge: Option<String>,
    #[serde(skip)]
    retry_after: Option<u32>,
}

/// The HTTP status for a refusal.
pub fn status_of(err: AuthError) -> Status {
    match err {
        AuthError::Missing | AuthError::Invalid => Status::Unauthorized,
        AuthError::Forbidden => Status::Forbidden,
        AuthError::Unavailable => Status::ServiceUnavailable,
        AuthError::RateLimited { .. } => Status::TooManyRequests,
    }
}

impl Problem {
    /// A problem for `status` with a detail sentence.
    pub fn new(status: Status, detail: impl Into<String>) -> Self {
        Problem {
            kind: "about:blank",
            title: status.reason_lossy(),
            status: status.code,
            detail: detail.into(),
            challenge: None,
            retry_after: None,
        }
    }

    /// The problem for an authentication failure; 401s carry
    /// `WWW-Authenticate: ApiKey header="<header>"`.
    pub fn for_auth(err: AuthError, header: &str) -> Self {
        let status = status_of(err);
        let detail = match err {
            AuthError::Missing => format!("This resource needs an API key in the {header} header."),
            AuthError::Invalid => format!("The API key in the {header} header is not valid."),
            AuthError::Forbidden => "The API key is not allowed to use this resource.".into(),
            AuthError::Unavailable => {
                "API keys cannot be checked right now; try again later.".into()
            }
            AuthError::RateLimited { .. } => {
                "The API key is over its rate limit; retry after the Retry-After delay.".into()
            }
        };
        let mut problem = Problem::new(status, detail);
        if status == Status::Unauthorized {
            problem.challenge = Some(format!("ApiKey header=\"{header}\""));
        }
        if let AuthError::RateLimited { retry_after_secs } = err {
            problem.retry_after = Some(retry_after_secs);
        }
        problem
    }
}

impl<'r> Responder<'r, 'static> for Problem {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let body = serde_json::to_string(&self).map_err(|_| Status::InternalServerError)?;
        let mut res = rocket::Response::build();
        res.status(Status::new(self.status))
            .header(ContentType::new("application", "problem+json"))
            .sized_body(body.len(), Cursor::new(body));
        if let Some(challenge) = self.challenge {
            res.header(Header::new("WWW-Authenticate", challenge));
        }
        if let Some(secs) = self.retry_after {
            res.header(Header::new("Retry-After", secs.to_string()));
        }
        Ok(res.finalize())
    }
}
