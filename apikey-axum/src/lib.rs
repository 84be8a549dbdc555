//! Authenticate axum (tower) requests by an API key in the `API-KEY` header, with the same
//! keys, configuration, stores and answers as `apikey-rocket`.
//!
//! ```no_run
//! use apikey_axum::{ApiKeyLayer, ApiKeyState, Auth, Caller};
//! use axum::routing::{get, post};
//! use axum::Router;
//!
//! /// A valid key is required.
//! async fn my_service(caller: Caller) -> String {
//!     format!("hello {}", caller.user())
//! }
//!
//! /// A key is optional; a bad one is still refused.
//! async fn whoami(caller: Option<Caller>) -> String {
//!     caller.map_or("nobody".into(), |c| c.user().to_owned())
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // `apikeys.toml`, `APIKEY_*` variables; the embedded SQLite store by default.
//!     let keys = ApiKeyState::from_config().await?;
//!     let app = Router::new()
//!         .route("/my_service", get(my_service))
//!         .route("/whoami", get(whoami))
//!         .route(
//!             "/billing",
//!             post(my_service).route_layer(Auth::api_key().groups(["billing"])),
//!         )
//!         .layer(ApiKeyLayer::new(keys.clone()));
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//!     axum::serve(listener, app).await?;
//!     // Request counts and leased limit tokens not written yet are written now.
//!     keys.verifier().shutdown().await?;
//!     Ok(())
//! }
//! ```
//!
//! - [`ApiKeyLayer`] carries the verification state to every request; install it once, on
//!   the whole router. It adds `Sunset` to responses to keys that stop working soon and lets
//!   CORS preflights through without a key.
//! - [`Caller`] (a valid key required) and `Option<Caller>` (no key is `None`, a bad key is
//!   refused) are the extractors; [`Auth`] is the route layer that requires a key, optional
//!   or not, and groups. The key is verified once per request, whatever asks.
//! - A refusal is a [`Refused`]: the same `application/problem+json` bytes, status and
//!   headers (`WWW-Authenticate`, `Retry-After`) as apikey-rocket's.
//! - Feature `openapi`: [`openapi::guarded`] guards `utoipa_axum::routes!(…)` and documents
//!   the security of each operation.
//!
//! The admin page is Rocket-only for now (`apikey-rocket`, feature `admin`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "admin")]
#[cfg_attr(docsrs, doc(cfg(feature = "admin")))]
pub mod admin;
mod auth;
mod caller;
mod client;
mod extract;
mod layer;
pub mod leaks;
#[cfg(feature = "manage")]
#[cfg_attr(docsrs, doc(cfg(feature = "manage")))]
pub mod manage;
#[cfg(feature = "openapi")]
#[cfg_attr(docsrs, doc(cfg(feature = "openapi")))]
pub mod openapi;
mod refused;
#[cfg(any(feature = "admin", feature = "manage"))]
mod reply;
pub mod rotation;
mod router;
mod service;
mod state;
mod verify;

pub use apikey_core as core;
pub use apikey_core::{AuthError, KeyRecord, KeyStore};
pub use auth::{Auth, AuthFuture, AuthService};
pub use caller::Caller;
pub use client::ClientAddr;
pub use layer::{ApiKeyFuture, ApiKeyLayer, ApiKeyService};
pub use refused::Refused;
pub use router::{ApiApp, ApiRouter, UnguardedRoutes};
pub use state::{load_config, load_config_from, ApiKeyState};
