//! The verification state the layer carries to every request, at the bottom of the crate: the
//! layer, the extractors, the route layers and OpenAPI read it, and nothing here reaches up to
//! them.

use std::fmt;
use std::sync::Arc;

use apikey_core::config::{self, ApiKeyConfig};
use apikey_core::http::{Answers, Prepared};
use apikey_core::{AuthError, ConfigError, SetupError, SharedStore, Verifier};
use figment::Figment;
use http::HeaderName;

/// Reads apikey's configuration: `apikeys.toml` (or the file `APIKEY_CONFIG` names; an Odoo
/// INI file is read as such), then `APIKEY_*` environment variables.
pub fn load_config() -> Result<ApiKeyConfig, ConfigError> {
    load_config_from(Figment::new())
}

/// Reads apikey's configuration as [`load_config`] does, on top of the service's own
/// `figment` (its `apikey` and `api_key_<name>` sections).
pub fn load_config_from(figment: Figment) -> Result<ApiKeyConfig, ConfigError> {
    ApiKeyConfig::from_figment(&config::layered(figment, None)?)
}

/// What verifies a request and answers a refusal: the verifier and every refusal's answer,
/// prepared once. Cheap to clone (one `Arc`). Request handlers can verify with it but cannot
/// reach the store: key administration is not a request-path capability.
#[derive(Clone)]
pub struct ApiKeyState(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    pub(crate) verifier: Arc<Verifier>,
    /// `require_route_auth` and `allow_unguarded`, for [`ApiRouter`](crate::ApiRouter).
    pub(crate) route_rules: (bool, Vec<String>),
    pub(crate) answers: Answers,
    pub(crate) header: HeaderName,
}

impl ApiKeyState {
    /// Keys from the store named by `[apikey] database_url` (SQLite by default) and the
    /// `[api_key_<name>]` sections, as [`load_config`] reads them.
    pub async fn from_config() -> Result<Self, SetupError> {
        Self::configured(load_config()?).await
    }

    /// Keys from the store `config` names and its sections.
    pub async fn configured(config: ApiKeyConfig) -> Result<Self, SetupError> {
        let store = apikey_core::open(&config.settings).await?;
        Self::with_store(config, store).await
    }

    /// Keys from `store` and the sections of `config` (its `database_url` is not used).
    pub async fn with_store(config: ApiKeyConfig, store: SharedStore) -> Result<Self, SetupError> {
        let rules = (
            config.settings.require_route_auth,
            config.settings.allow_unguarded.clone(),
        );
        let mut state = Self::with_verifier(Arc::new(Verifier::new(config, store).await?))?;
        if let Some(inner) = Arc::get_mut(&mut state.0) {
            inner.route_rules = rules;
        }
        Ok(state)
    }

    /// A verifier built by the caller (tests, custom setups).
    pub fn with_verifier(verifier: Arc<Verifier>) -> Result<Self, SetupError> {
        let header = HeaderName::from_bytes(verifier.header().as_bytes()).map_err(|_| {
            SetupError::Config(ConfigError {
                section: "apikey".into(),
                source_name: "the verifier".into(),
                message: "`header` is not a valid HTTP header name".into(),
            })
        })?;
        Ok(ApiKeyState(Arc::new(Inner {
            route_rules: (false, Vec::new()),
            answers: Answers::new(verifier.header(), verifier.accepts_bearer()),
            verifier,
            header,
        })))
    }

    /// The header that carries keys.
    pub fn header(&self) -> &str {
        self.0.verifier.header()
    }

    /// Whether `Authorization: Bearer <key>` is accepted too.
    pub fn accepts_bearer(&self) -> bool {
        self.0.verifier.accepts_bearer()
    }

    /// Store queries made by verification so far (cache misses), for metrics.
    pub fn store_queries(&self) -> u64 {
        self.0.verifier.store_queries()
    }

    /// Unknown keys refused by the digest filter without a store query, for metrics.
    pub fn filtered(&self) -> u64 {
        self.0.verifier.filtered()
    }

    /// Valid keys cached right now, for metrics.
    pub fn cached_keys(&self) -> usize {
        self.0.verifier.cached_keys()
    }

    /// Whether the store's change feed is live (caches and the digest filter are bypassed
    /// while it is not), for metrics.
    pub fn feed_live(&self) -> bool {
        self.0.verifier.feed_live()
    }

    /// Where rate limits and quotas are kept, and whether they fall back to per instance
    /// (shared limits unreachable), for metrics.
    pub fn limits(&self) -> apikey_core::limits::LimitsStats {
        self.0.verifier.limits_stats()
    }

    /// Whether this instance can serve (its store answers, its change feed is live, its digest
    /// filter loaded), for a readiness probe: what a `GET /ready` route answers.
    pub async fn ready(&self) -> apikey_core::Readiness {
        self.0.verifier.ready().await
    }

    /// The verifier (to flush usage on shutdown with `verifier().shutdown()`, or verify
    /// outside a route).
    pub fn verifier(&self) -> &Verifier {
        &self.0.verifier
    }

    /// `require_route_auth` and `allow_unguarded` as configured (off for a state made
    /// [`with_verifier`](Self::with_verifier)).
    pub(crate) fn route_rules(&self) -> (bool, &[String]) {
        (self.0.route_rules.0, &self.0.route_rules.1)
    }

    /// The answer apikey gives for `err`, for handlers that refuse on their own terms.
    pub fn answer(&self, err: AuthError) -> crate::Refused {
        crate::Refused(self.0.answers.refusal(err))
    }

    pub(crate) fn prepared(&self, err: AuthError) -> Prepared {
        self.0.answers.refusal(err)
    }
}

impl fmt::Debug for ApiKeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyState")
            .field("header", &self.header())
            .finish()
    }
}
