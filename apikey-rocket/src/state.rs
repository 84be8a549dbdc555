//! The verification state the fairing manages, at the bottom of the crate: the guards, the
//! catchers, CORS, `Sunset`, OpenAPI and the admin page all read it from here, and nothing here
//! reaches up to them.

use std::fmt;
use std::ops::Deref;

use apikey_core::http::Keys;

/// The verification state managed by the fairing: the core's [`Keys`] (its accessors, the
/// same on axum: `header()`, `store_queries()`, `ready()`, `verifier()`, …) and the route
/// inventory. Request handlers can verify with it but cannot reach the store: key
/// administration is not a request-path capability.
pub struct ApiKeyState {
    pub(crate) keys: Keys,
    pub(crate) routes: crate::routes::RouteInventory,
}

impl Deref for ApiKeyState {
    type Target = Keys;

    fn deref(&self) -> &Keys {
        &self.keys
    }
}

impl ApiKeyState {
    /// Every route mounted when the service started, and who may call it.
    pub fn routes(&self) -> &crate::routes::RouteInventory {
        &self.routes
    }

    /// The answer apikey gives for `err` (the same bytes its catchers send), for handlers that
    /// refuse on their own terms.
    pub fn answer(&self, err: apikey_core::AuthError) -> crate::problem::Prepared {
        self.keys.refusal(err).into()
    }
}

impl fmt::Debug for ApiKeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyState")
            .field("header", &self.header())
            .finish()
    }
}
