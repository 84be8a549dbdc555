//! `application/problem+json` responses (RFC 9457) for refused requests.

use std::io::Cursor;
use std::sync::Arc;

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
        AuthError::RateLimited { .. } | AuthError::QuotaExhausted { .. } => Status::TooManyRequests,
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
            AuthError::QuotaExhausted { .. } => {
                "Quota exhausted: the API key has used up its quota for this period; it is \
                 refilled after the Retry-After delay."
                    .into()
            }
        };
        let mut problem = Problem::new(status, detail);
        if status == Status::Unauthorized {
            problem.challenge = Some(format!("ApiKey header=\"{header}\""));
        }
        if let AuthError::RateLimited { retry_after_secs }
        | AuthError::QuotaExhausted { retry_after_secs } = err
        {
            problem.retry_after = Some(retry_after_secs);
        }
        problem
    }
}

impl Problem {
    /// Serializes once, for answering many times.
    pub fn prepare(&self) -> Prepared {
        Prepared {
            status: Status::new(self.status),
            body: serde_json::to_vec(self).unwrap_or_default().into(),
            challenge: self.challenge.clone(),
            retry_after: self.retry_after,
        }
    }
}

impl<'r> Responder<'r, 'static> for Problem {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        self.prepare().respond_to(req)
    }
}

/// A problem serialized ahead of time: refusals are answered without formatting anything.
#[derive(Debug, Clone)]
pub struct Prepared {
    status: Status,
    body: Arc<[u8]>,
    challenge: Option<String>,
    retry_after: Option<u32>,
}

impl Prepared {
    /// The same problem with another `Retry-After`.
    pub fn retry_after(mut self, secs: Option<u32>) -> Self {
        self.retry_after = secs;
        self
    }
}

impl<'r> Responder<'r, 'static> for Prepared {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let mut res = rocket::Response::build();
        res.status(self.status)
            .header(ContentType::new("application", "problem+json"))
            .sized_body(self.body.len(), Cursor::new(self.body));
        if let Some(challenge) = self.challenge {
            res.header(Header::new("WWW-Authenticate", challenge));
        }
        if let Some(secs) = self.retry_after {
            res.header(Header::new("Retry-After", secs.to_string()));
        }
        Ok(res.finalize())
    }
}

/// Every answer the catchers give, prepared when the fairing starts.
#[derive(Debug)]
pub(crate) struct Answers {
    missing: Prepared,
    invalid: Prepared,
    forbidden: Prepared,
    unavailable: Prepared,
    rate_limited: Prepared,
    unauthorized: Prepared,
    other_forbidden: Prepared,
    other_unavailable: Prepared,
    too_many: Prepared,
    quota_exhausted: Prepared,
}

impl Answers {
    /// The answers for keys in `header` (and, with `bearer`, in `Authorization: Bearer`: the
    /// 401 challenge then names both schemes).
    pub fn new(header: &str, bearer: bool) -> Self {
        let auth = |e| {
            let mut problem = Problem::for_auth(e, header);
            if bearer {
                if let Some(challenge) = &mut problem.challenge {
                    challenge.push_str(", Bearer");
                }
            }
            problem.prepare()
        };
        let plain = |s: Status| Problem::new(s, s.reason_lossy()).prepare();
        Answers {
            missing: auth(AuthError::Missing),
            invalid: auth(AuthError::Invalid),
            forbidden: auth(AuthError::Forbidden),
            unavailable: auth(AuthError::Unavailable),
            rate_limited: auth(AuthError::RateLimited {
                retry_after_secs: 1,
            }),
            unauthorized: plain(Status::Unauthorized),
            other_forbidden: plain(Status::Forbidden),
            other_unavailable: plain(Status::ServiceUnavailable),
            too_many: plain(Status::TooManyRequests),
            quota_exhausted: auth(AuthError::QuotaExhausted {
                retry_after_secs: 1,
            }),
        }
    }

    /// The answer for a refusal of ours, or for a status some other guard set.
    pub fn get(&self, err: Option<AuthError>, status: Status) -> Prepared {
        match err {
            Some(AuthError::Missing) => self.missing.clone(),
            Some(AuthError::Invalid) => self.invalid.clone(),
            Some(AuthError::Forbidden) => self.forbidden.clone(),
            Some(AuthError::Unavailable) => self.unavailable.clone(),
            Some(AuthError::RateLimited { retry_after_secs }) => self
                .rate_limited
                .clone()
                .retry_after(Some(retry_after_secs)),
            Some(AuthError::QuotaExhausted { retry_after_secs }) => self
                .quota_exhausted
                .clone()
                .retry_after(Some(retry_after_secs)),
            None => match status.code {
                403 => self.other_forbidden.clone(),
                503 => self.other_unavailable.clone(),
                429 => self.too_many.clone(),
                _ => self.unauthorized.clone(),
            },
        }
    }
}
