//! The verification state the fairing manages, at the bottom of the crate: the guards, the
//! catchers, CORS, `Sunset`, OpenAPI and the admin page all read it from here, and nothing here
//! reaches up to them.

use std::fmt;
use std::sync::Arc;

use apikey_core::Verifier;

use apikey_core::http::Answers;

/// The verification state managed by the fairing. Request handlers can verify with it but
/// cannot reach the store: key administration is not a request-path capability.
pub struct ApiKeyState {
    pub(crate) verifier: Arc<Verifier>,
    pub(crate) answers: Answers,
    pub(crate) routes: crate::routes::RouteInventory,
}

impl ApiKeyState {
    /// The header that carries keys.
    pub fn header(&self) -> &str {
        self.verifier.header()
    }

    /// Every route mounted when the service started, and who may call it.
    pub fn routes(&self) -> &crate::routes::RouteInventory {
        &self.routes
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

    /// The answer apikey gives for `err` (the same bytes its catchers send), for handlers that
    /// refuse on their own terms.
    pub fn answer(&self, err: apikey_core::AuthError) -> crate::problem::Prepared {
        self.answers.refusal(err).into()
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

    /// The client's address of `req`: the TCP peer's, unless the peer is inside
    /// `trusted_proxies`, then what its `client_ip_header` reports (the right-most address that
    /// is not a trusted proxy). Rocket's own `ip_header` is not trusted: a client can set it.
    /// Allowlists and the admin page's login limits read the address from here.
    pub fn client_ip(&self, req: &rocket::Request<'_>) -> Option<std::net::IpAddr> {
        self.verifier.client_of(&crate::facts::Facts(req))
    }

    /// Whether this instance can serve (its store answers, its change feed is live, its digest
    /// filter loaded), for a readiness probe: what a `GET /ready` route answers.
    pub async fn ready(&self) -> apikey_core::Readiness {
        self.verifier.ready().await
    }

    /// The verifier behind the guards (to flush usage on shutdown, or verify outside a route).
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// Where rate limits and quotas are kept, and whether they fall back to per instance
    /// (shared limits unreachable), for metrics.
    pub fn limits(&self) -> apikey_core::limits::LimitsStats {
        self.verifier.limits_stats()
    }
}

impl fmt::Debug for ApiKeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyState")
            .field("header", &self.verifier.header())
            .finish()
    }
}
