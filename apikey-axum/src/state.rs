//! The verification state the layer carries to every request, at the bottom of the crate: the
//! layer, the extractors, the route layers and OpenAPI read it, and nothing here reaches up to
//! them.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use apikey_core::config::{self, ApiKeyConfig};
use apikey_core::http::{Keys, Prepared};
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

/// What verifies a request and answers a refusal: the core's [`Keys`] (its accessors, the
/// same on Rocket: `header()`, `store_queries()`, `ready()`, `verifier()`, …). Cheap to clone
/// (one `Arc`). Request handlers can verify with it but cannot reach the store: key
/// administration is not a request-path capability.
#[derive(Clone)]
pub struct ApiKeyState(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    pub(crate) keys: Keys,
    pub(crate) header: HeaderName,
    /// `require_route_auth` and `allow_unguarded`, for [`ApiRouter`](crate::ApiRouter).
    pub(crate) route_rules: (bool, Vec<String>),
}

impl Deref for ApiKeyState {
    type Target = Keys;

    fn deref(&self) -> &Keys {
        &self.0.keys
    }
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
            keys: Keys::new(verifier),
            header,
        })))
    }

    /// `require_route_auth` and `allow_unguarded` as configured (off for a state made
    /// [`with_verifier`](Self::with_verifier)).
    pub(crate) fn route_rules(&self) -> (bool, &[String]) {
        (self.0.route_rules.0, &self.0.route_rules.1)
    }

    /// The answer apikey gives for `err`, for handlers that refuse on their own terms.
    pub fn answer(&self, err: AuthError) -> crate::Refused {
        crate::Refused(self.0.keys.refusal(err))
    }

    pub(crate) fn prepared(&self, err: AuthError) -> Prepared {
        self.0.keys.refusal(err)
    }
}

impl fmt::Debug for ApiKeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyState")
            .field("header", &self.header())
            .finish()
    }
}
