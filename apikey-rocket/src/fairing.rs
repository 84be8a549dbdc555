//! The fairing: reads the configuration from Rocket's figment, opens the store, manages the
//! verifier and registers the problem+json catchers.

use std::sync::Arc;

use apikey_core::{config, ApiKeyConfig, Settings, SetupError, SharedStore, Verifier};
use rocket::fairing::{self, Fairing, Info, Kind};
use rocket::figment::Figment;
use rocket::{catchers, Build, Orbit, Request, Response, Rocket};

use crate::routes::RouteInventory;
use crate::state::ApiKeyState;
use crate::{catchers, cors, sunset};

enum Source {
    Config,
    Store(SharedStore),
    Verifier(Arc<Verifier>),
}

/// The apikey fairing. Attach it once: `rocket::build().attach(ApiKey::fairing())`.
pub struct ApiKey {
    source: std::sync::Mutex<Option<Source>>,
}

/// Reads apikey's configuration as a service attached to `figment` (Rocket's) would.
pub fn load_config(figment: &Figment) -> Result<ApiKeyConfig, apikey_core::ConfigError> {
    ApiKeyConfig::from_figment(&config::layered(figment.clone(), None)?)
}

impl ApiKey {
    fn with(source: Source) -> Self {
        ApiKey {
            source: std::sync::Mutex::new(Some(source)),
        }
    }

    /// Keys from the store named by `[apikey] database_url` (SQLite by default) and the
    /// `[api_key_<name>]` sections.
    pub fn fairing() -> Self {
        Self::with(Source::Config)
    }

    /// Keys from `store` and the config sections (the configured `database_url` is not used).
    pub fn with_store(store: SharedStore) -> Self {
        Self::with(Source::Store(store))
    }

    /// A verifier built by the caller (tests, custom setups).
    pub fn with_verifier(verifier: Arc<Verifier>) -> Self {
        Self::with(Source::Verifier(verifier))
    }

    async fn build(source: Source, config: ApiKeyConfig) -> Result<Arc<Verifier>, SetupError> {
        Ok(match source {
            Source::Verifier(v) => v,
            Source::Config => {
                let store = apikey_core::open(&config.settings).await?;
                Arc::new(Verifier::new(config, store).await?)
            }
            Source::Store(store) => Arc::new(Verifier::new(config, store).await?),
        })
    }
}

/// With `require_route_auth`, every mounted route must be a `#[route]` (or be listed in
/// `allow_unguarded`).
fn check_routes(settings: &Settings, inventory: &RouteInventory) -> Result<(), String> {
    inventory.check(
        settings.require_route_auth,
        &settings.allow_unguarded,
        "#[route(…, auth = …)]",
    )
}

#[rocket::async_trait]
impl Fairing for ApiKey {
    fn info(&self) -> Info {
        Info {
            name: "apikey",
            kind: Kind::Ignite | Kind::Liftoff | Kind::Response | Kind::Shutdown,
        }
    }

    async fn on_ignite(&self, rocket: Rocket<Build>) -> fairing::Result {
        let source = self.source.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(source) = source else {
            apikey_core::__event!(error, "apikey: the ApiKey fairing was ignited twice");
            return Err(rocket);
        };
        // The configuration is read once, for the route check and the verifier alike.
        let config = match load_config(rocket.figment()) {
            Ok(config) => config,
            Err(e) => {
                apikey_core::__event!(error, "apikey: {e}");
                return Err(rocket);
            }
        };
        let routes = crate::route_inventory(&rocket);
        if let Err(why) = check_routes(&config.settings, &routes) {
            apikey_core::__event!(error, "apikey: {why}");
            return Err(rocket);
        }
        match Self::build(source, config).await {
            Ok(verifier) => Ok(rocket
                .manage(ApiKeyState {
                    routes,
                    keys: apikey_core::http::Keys::new(verifier),
                })
                .register(
                    "/",
                    catchers![
                        catchers::unauthorized,
                        catchers::forbidden,
                        catchers::unavailable,
                        catchers::too_many_requests
                    ],
                )),
            Err(e) => {
                apikey_core::__event!(error, "apikey: {e}");
                Err(rocket)
            }
        }
    }

    /// Rocket 0.5 prints every request's raw headers at debug level (`received request: …`,
    /// before any fairing or guard sees the request) and offers no way to redact one: with
    /// `log_level = "debug"` every API key would be written to the log. Rocket installs its
    /// logger before any fairing runs, so the only lever left is the global level: while the
    /// fairing is attached, logging stops at `info`.
    async fn on_liftoff(&self, rocket: &Rocket<Orbit>) {
        if let Some(state) = rocket.state::<ApiKeyState>() {
            apikey_core::__event!(info, "apikey: routes: {}", state.routes().summary());
        }
        if log::max_level() > log::LevelFilter::Info {
            log::set_max_level(log::LevelFilter::Info);
            apikey_core::__event!(
                warning,
                "apikey: Rocket's debug log prints every request's headers, API keys included; \
                 logging is limited to info while the apikey fairing is attached"
            );
        }
    }

    /// On a graceful shutdown, leased limit tokens not spent go back, and the request counts
    /// and last-used times not written yet are written now.
    async fn on_shutdown(&self, rocket: &Rocket<Orbit>) {
        if let Some(state) = rocket.state::<ApiKeyState>() {
            if let Err(e) = state.verifier().shutdown().await {
                apikey_core::__event!(
                    warning,
                    "apikey: writing request counts at shutdown failed: {e}"
                );
            }
        }
    }

    async fn on_response<'r>(&self, req: &'r Request<'_>, res: &mut Response<'r>) {
        cors::allow_key_header(req, res);
        sunset::announce(req, res);
    }
}
