//! Problem documents, serialized once and answered many times.

use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;

use super::{reason, status_of};
use crate::admin::{LeakError, RotateError};
use crate::store::StoreError;
use crate::verify::AuthError;

/// The media type of every refusal's body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem document (RFC 9457), with the challenge header of a 401.
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

impl Problem {
    /// A problem for `status` with a detail sentence.
    pub fn new(status: u16, detail: impl Into<String>) -> Self {
        Problem {
            kind: "about:blank",
            title: reason(status),
            status,
            detail: detail.into(),
            challenge: None,
            retry_after: None,
        }
    }

    /// The problem for an authentication failure; 401s carry
    /// `WWW-Authenticate: ApiKey header="<header>"`, 429s `Retry-After`.
    pub fn for_auth(err: AuthError, header: &str) -> Self {
        let status = status_of(err);
        let detail = match err {
            AuthError::Missing => format!("This resource needs an API key in the {header} header."),
            AuthError::Invalid(_) => format!("The API key in the {header} header is not valid."),
            AuthError::Forbidden => "The API key is not allowed to use this resource.".into(),
            AuthError::MissingScope => {
                "Missing scope: the API key lacks a scope this resource needs (the operation's \
                 security requirement lists them)."
                    .into()
            }
            AuthError::AddressNotAllowed => {
                "Address not allowed: the API key may not be used from this address.".into()
            }
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
        if status == 401 {
            problem.challenge = Some(format!("ApiKey header=\"{header}\""));
        }
        if let AuthError::RateLimited { retry_after_secs }
        | AuthError::QuotaExhausted { retry_after_secs } = err
        {
            problem.retry_after = Some(retry_after_secs);
        }
        problem
    }

    /// The answer to a key that may not rotate itself now: 403 for a key set in a config
    /// section, 429 with `Retry-After` within `self_rotation_every`, 503 when the store fails.
    pub fn for_rotation(err: &RotateError) -> Prepared {
        let retry = match err {
            RotateError::TooSoon { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        };
        let detail = match err {
            // A store's message may name a server: not for callers.
            RotateError::Store(StoreError::Unavailable(_)) => {
                "API keys cannot be changed right now; try again later.".to_owned()
            }
            other => other.to_string(),
        };
        Problem::new(err.status(), detail)
            .prepare()
            .retry_after(retry)
    }

    /// The answer to a secret scanning report that is not taken: 401 for a missing or bad
    /// signature (the same whatever the tokens), 400 for a signed report that is not a list of
    /// tokens, 503 when no verifying key is configured or the store fails.
    pub fn for_leak_report(err: &LeakError) -> Prepared {
        let detail = match err {
            LeakError::Store(_) => "Reports cannot be taken right now; try again later.".to_owned(),
            other => other.to_string(),
        };
        let retry = match err {
            LeakError::Throttled { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        };
        Problem::new(err.status(), detail)
            .prepare()
            .retry_after(retry)
    }

    /// The `WWW-Authenticate` challenge (401s only).
    pub fn challenge(&self) -> Option<&str> {
        self.challenge.as_deref()
    }

    /// Serializes once, for answering many times.
    pub fn prepare(&self) -> Prepared {
        Prepared {
            status: self.status,
            body: serde_json::to_vec(self).unwrap_or_default().into(),
            challenge: self.challenge.as_deref().map(interned),
            retry_after: self.retry_after,
        }
    }
}

/// The one copy of a challenge, kept for the life of the process: answers hand it to the
/// framework as a `'static` string, so a refusal copies nothing. There is one challenge per
/// configured header and Bearer setting; each distinct one is kept once.
fn interned(challenge: &str) -> &'static str {
    static KEPT: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut kept = KEPT.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(known) = kept.iter().find(|k| **k == challenge) {
        return known;
    }
    let leaked: &'static str = Box::leak(challenge.into());
    kept.push(leaked);
    leaked
}

/// A problem serialized ahead of time: refusals are answered without formatting anything.
/// Cloning it copies two pointers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    status: u16,
    body: Arc<[u8]>,
    challenge: Option<&'static str>,
    retry_after: Option<u32>,
}

impl Prepared {
    /// The same problem with another `Retry-After`.
    pub fn retry_after(mut self, secs: Option<u32>) -> Self {
        self.retry_after = secs;
        self
    }

    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The problem+json body.
    pub fn body(&self) -> &Arc<[u8]> {
        &self.body
    }

    /// The `WWW-Authenticate` value (401s only). `'static`, so that adapters send it without
    /// copying it.
    pub fn challenge(&self) -> Option<&'static str> {
        self.challenge
    }

    /// The `Retry-After` delay in seconds (429s only).
    pub fn retry_after_secs(&self) -> Option<u32> {
        self.retry_after
    }
}

/// Every refusal's answer, prepared when the service starts.
#[derive(Debug, Clone)]
pub struct Answers {
    missing: Prepared,
    invalid: Prepared,
    forbidden: Prepared,
    missing_scope: Prepared,
    address: Prepared,
    unavailable: Prepared,
    rate_limited: Prepared,
    quota_exhausted: Prepared,
    unauthorized: Prepared,
    other_forbidden: Prepared,
    other_unavailable: Prepared,
    too_many: Prepared,
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
        let plain = |s: u16| Problem::new(s, reason(s)).prepare();
        Answers {
            missing: auth(AuthError::Missing),
            invalid: auth(AuthError::INVALID),
            forbidden: auth(AuthError::Forbidden),
            missing_scope: auth(AuthError::MissingScope),
            address: auth(AuthError::AddressNotAllowed),
            unavailable: auth(AuthError::Unavailable),
            rate_limited: auth(AuthError::RateLimited {
                retry_after_secs: 1,
            }),
            quota_exhausted: auth(AuthError::QuotaExhausted {
                retry_after_secs: 1,
            }),
            unauthorized: plain(401),
            other_forbidden: plain(403),
            other_unavailable: plain(503),
            too_many: plain(429),
        }
    }

    /// The answer to a refusal of ours.
    pub fn refusal(&self, err: AuthError) -> Prepared {
        match err {
            AuthError::Missing => self.missing.clone(),
            AuthError::Invalid(_) => self.invalid.clone(),
            AuthError::Forbidden => self.forbidden.clone(),
            AuthError::MissingScope => self.missing_scope.clone(),
            AuthError::AddressNotAllowed => self.address.clone(),
            AuthError::Unavailable => self.unavailable.clone(),
            AuthError::RateLimited { retry_after_secs } => self
                .rate_limited
                .clone()
                .retry_after(Some(retry_after_secs)),
            AuthError::QuotaExhausted { retry_after_secs } => self
                .quota_exhausted
                .clone()
                .retry_after(Some(retry_after_secs)),
        }
    }

    /// The answer for a refusal of ours, or for a status some other guard set (a plain
    /// problem with the status' reason phrase; 401 for statuses apikey never answers).
    pub fn get(&self, err: Option<AuthError>, status: u16) -> Prepared {
        match err {
            Some(err) => self.refusal(err),
            None => match status {
                403 => self.other_forbidden.clone(),
                503 => self.other_unavailable.clone(),
                429 => self.too_many.clone(),
                _ => self.unauthorized.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_keys_get_one_body_naming_the_header() {
        let answers = Answers::new("X-Key", true);
        let invalid = answers.refusal(AuthError::INVALID);
        assert_eq!(invalid.status(), 401);
        assert_eq!(invalid.challenge(), Some("ApiKey header=\"X-Key\", Bearer"));
        let body: serde_json::Value = serde_json::from_slice(invalid.body()).unwrap();
        assert_eq!(body["title"], "Unauthorized");
        assert_eq!(
            body["detail"],
            "The API key in the X-Key header is not valid."
        );
        let limited = answers.refusal(AuthError::RateLimited {
            retry_after_secs: 7,
        });
        assert_eq!(
            (limited.status(), limited.retry_after_secs()),
            (429, Some(7))
        );
        assert_eq!(limited.challenge(), None);
        assert_eq!(answers.get(None, 418).status(), 401);
    }
}
