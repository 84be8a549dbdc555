//! The management API (feature `manage`): keys administered over HTTP with JSON, for keys in
//! `admin_group`. The app is the core's ([`apikey_core::http::manage`], the same on axum, so
//! the answers are the same byte for byte); these routes verify the caller's key as any
//! `api_key` route does and hand the app Rocket's request.
//!
//! ```no_run
//! use apikey_rocket::core::{open, ApiKeyConfig, KeyManager};
//! use apikey_rocket::manage::{self, Manage};
//! use apikey_rocket::ApiKey;
//!
//! #[rocket::launch]
//! async fn rocket() -> _ {
//!     let config = ApiKeyConfig::default();
//!     let store = open(&config.settings).await.expect("the key store opens");
//!     let keys = KeyManager::new(store.clone(), &config);
//!     rocket::build()
//!         .attach(ApiKey::with_store(store.clone()))
//!         .manage(Manage::new(keys, store, &config))
//!         .mount("/apikey/keys", manage::routes())
//! }
//! ```
//!
//! Every change is recorded in the audit trail as made by `key:<the calling key's name>`.

use apikey_core::http::manage::{ManageRequest, BODY_LIMIT, ROUTES};
use rocket::data::Data;
use rocket::http::Status;
use rocket::route::{Handler, Outcome, Route};
use rocket::Request;

use crate::guard::verified;
use crate::reply::{below_mount, body, mounted, Answered};
use crate::state::ApiKeyState;

/// What the management routes need (managed state): the one mutation path and the group
/// whose keys may call them.
pub use apikey_core::http::manage::ManageApp as Manage;

/// The management routes, to mount where the API should live (`/apikey/keys`).
pub fn routes() -> Vec<Route> {
    mounted(ROUTES, ManageHandler)
}

/// Every management route: the caller's key verified, Rocket's request to the core's app, its
/// answer back.
#[derive(Clone)]
struct ManageHandler;

#[rocket::async_trait]
impl Handler for ManageHandler {
    async fn handle<'r>(&self, req: &'r Request<'_>, data: Data<'r>) -> Outcome<'r> {
        let (Some(app), Some(keys)) = (
            req.rocket().state::<Manage>(),
            req.rocket().state::<ApiKeyState>(),
        ) else {
            apikey_core::__event!(
                error,
                "apikey: the management routes need the ApiKey fairing and \
                 `.manage(Manage::new(…))`"
            );
            return Outcome::Error(Status::ServiceUnavailable);
        };
        let entry = verified(req).await;
        let caller = match entry.outcome() {
            Ok(caller) => caller,
            Err(e) => return Outcome::Error(entry.refuse(*e)),
        };
        let body = match body(req, data, BODY_LIMIT).await {
            Ok(body) => body,
            Err(status) => return Outcome::Error(status),
        };
        let (base, path) = below_mount(req);
        let request = ManageRequest {
            method: req.method().as_str(),
            base: &base,
            path,
            query: req.uri().query().map(|q| q.as_str()),
            body: &body,
        };
        match app.handle(keys.verifier(), &caller.0, &request).await {
            Ok(answer) => Outcome::from(req, Answered(answer)),
            Err(e) => Outcome::Error(entry.refuse(e)),
        }
    }
}
