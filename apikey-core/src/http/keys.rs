//! What every adapter's state is: the verifier and every refusal's answer, prepared once, with
//! the accessors handlers and metrics read. Rocket's and axum's `ApiKeyState` dereference to it,
//! so both offer the same ones, written here once.

use std::fmt;
use std::sync::Arc;

use super::{Answers, Prepared};
use crate::limits::LimitsStats;
use crate::verify::{AuthError, Readiness, Verifier};

/// The verification state of a service. Request handlers can verify with it but cannot reach
/// the store: key administration is not a request-path capability.
#[derive(Clone)]
pub struct Keys {
    verifier: Arc<Verifier>,
    answers: Arc<Answers>,
}

impl Keys {
    /// The state of `verifier`, its refusals' answers prepared now.
    pub fn new(verifier: Arc<Verifier>) -> Self {
        Keys {
            answers: Arc::new(Answers::new(verifier.header(), verifier.accepts_bearer())),
            verifier,
        }
    }

    /// The header that carries keys.
    pub fn header(&self) -> &str {
        self.verifier.header()
    }

    /// Whether `Authorization: Bearer <key>` is accepted too.
    pub fn accepts_bearer(&self) -> bool {
        self.verifier.accepts_bearer()
    }

    /// Store queries made by verification so far (cache misses), for metrics.
    pub fn store_queries(&self) -> u64 {
        self.verifier.store_queries()
    }

    /// Unknown keys refused by the digest filter without a store query, for metrics.
    pub fn filtered(&self) -> u64 {
        self.verifier.filtered()
    }

    /// Valid keys cached right now, for metrics.
    pub fn cached_keys(&self) -> usize {
        self.verifier.cached_keys()
    }

    /// Whether the store's change feed is live (caches and the digest filter are bypassed
    /// while it is not), for metrics.
    pub fn feed_live(&self) -> bool {
        self.verifier.feed_live()
    }

    /// Where rate limits and quotas are kept, and whether they fall back to per instance
    /// (shared limits unreachable), for metrics.
    pub fn limits(&self) -> LimitsStats {
        self.verifier.limits_stats()
    }

    /// Whether this instance can serve (its store answers, its change feed is live, its digest
    /// filter loaded), for a readiness probe: what a `GET /ready` route answers.
    pub async fn ready(&self) -> Readiness {
        self.verifier.ready().await
    }

    /// The verifier (to flush usage on shutdown with `verifier().shutdown()`, or verify
    /// outside a route).
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// The answers of every refusal, as bytes.
    pub fn answers(&self) -> &Answers {
        &self.answers
    }

    /// The answer to `err`, as bytes.
    pub fn refusal(&self, err: AuthError) -> Prepared {
        self.answers.refusal(err)
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("header", &self.header())
            .finish()
    }
}
