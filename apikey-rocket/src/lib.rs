//! Authenticate Rocket requests by an API key in the `API-KEY` header.
//!
//! ```no_run
//! use apikey_rocket::{route, ApiKey, Caller};
//! use rocket::routes;
//!
//! #[route("/my_service", auth = "api_key")]
//! fn my_service(caller: &Caller) -> String {
//!     format!("hello {}", caller.user())
//! }
//!
//! #[rocket::launch]
//! fn rocket() -> _ {
//!     rocket::build()
//!         .attach(ApiKey::fairing())
//!         .mount("/", routes![my_service])
//! }
//! ```
//!
//! `#[route]` takes the path, an optional method (`POST, "/path"` or `method = "POST"`),
//! Rocket's `data`, `format` and `rank`, `auth = "api_key" | "public" | "none" | path::Guard`
//! (default `"api_key"`) and `groups = ["billing", …]`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// `#[route]` names this crate by its path, also in its own routes.
extern crate self as apikey_rocket;

#[cfg(feature = "admin")]
#[cfg_attr(docsrs, doc(cfg(feature = "admin")))]
pub mod admin;
mod caller;
mod catchers;
mod cors;
mod facts;
mod fairing;
mod guard;
pub mod leaks;
#[cfg(feature = "manage")]
#[cfg_attr(docsrs, doc(cfg(feature = "manage")))]
pub mod manage;
#[cfg(feature = "openapi")]
#[cfg_attr(docsrs, doc(cfg(feature = "openapi")))]
pub mod openapi;
mod problem;
#[cfg(any(feature = "admin", feature = "manage"))]
mod reply;
pub mod rotation;
mod routes;
mod state;
mod sunset;

pub use apikey_core as core;
pub use apikey_core::{AuthError, KeyRecord, KeyStore};
pub use apikey_macros::route;
pub use caller::Caller;
pub use fairing::{load_config, ApiKey};
pub use problem::{Prepared, Problem};
pub use routes::{route_inventory, RouteAuth, RouteInfo, RouteInventory};
pub use state::ApiKeyState;

/// Paths used by the code `#[route]` generates. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::guard::{assert_request_guard, AnyGroup, ApiKeyGuard, Policy, PublicGuard};
    pub use crate::routes::{Declared, RouteAuth};
    pub use ::inventory;
    pub use rocket;
}
