//! A mountable admin page (feature `admin`): keys, users and the audit trail in a browser,
//! like Odoo's Settings > Technical > API Keys. The app is the core's
//! ([`apikey_core::http::admin`], the same on axum); these routes only hand it Rocket's request
//! and its private cookies (encrypted with Rocket's `secret_key`).
//!
//! ```no_run
//! use apikey_rocket::admin::{self, Admin};
//! use apikey_rocket::core::{open, ApiKeyConfig, KeyManager};
//! use apikey_rocket::ApiKey;
//!
//! #[rocket::launch]
//! async fn rocket() -> _ {
//!     let config = ApiKeyConfig::default();
//!     let store = open(&config.settings).await.expect("the key store opens");
//!     rocket::build()
//!         .attach(ApiKey::with_store(store.clone()))
//!         .manage(Admin::new(KeyManager::new(store, &config), &config))
//!         .mount("/admin", admin::routes())
//! }
//! ```
//!
//! Only keys in `[apikey] admin_group` (`apikey-admin`) may log in. Every change goes through
//! [`KeyManager`](apikey_core::KeyManager), recorded in the audit trail as made by
//! `admin:<key name>`. Every change is a POST carrying the session's CSRF token; pages are sent
//! with a strict CSP, `no-referrer` and `no-store`.

use apikey_core::http::admin::{AdminCookies, AdminRequest, FORM_LIMIT, ROUTES};
use rocket::data::Data;
use rocket::http::{CookieJar, Status};
use rocket::route::{Handler, Outcome, Route};
use rocket::Request;

use crate::reply::{below_mount, body, mounted, Answered};
use crate::state::ApiKeyState;

/// What the admin routes need (managed state): the one mutation path, the admin group, how
/// sessions are kept, and the count of failed logins.
pub use apikey_core::http::admin::AdminApp as Admin;

/// The admin routes, to mount where the page should live (`/admin`).
pub fn routes() -> Vec<Route> {
    mounted(ROUTES, AdminHandler)
}

/// Every admin route: Rocket's request to the core's app, its answer back.
#[derive(Clone)]
struct AdminHandler;

/// Rocket's private cookies, as the admin app reads and sets them.
struct Jar<'a, 'r>(&'a CookieJar<'r>);

impl AdminCookies for Jar<'_, '_> {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get_private(name).map(|c| c.value().to_owned())
    }

    fn set(&mut self, cookie: rocket::http::Cookie<'static>) {
        self.0.add_private(cookie);
    }

    fn remove(&mut self, cookie: rocket::http::Cookie<'static>) {
        self.0.remove_private(cookie);
    }
}

#[rocket::async_trait]
impl Handler for AdminHandler {
    async fn handle<'r>(&self, req: &'r Request<'_>, data: Data<'r>) -> Outcome<'r> {
        let (Some(admin), Some(keys)) = (
            req.rocket().state::<Admin>(),
            req.rocket().state::<ApiKeyState>(),
        ) else {
            apikey_core::__event!(
                error,
                "apikey: the admin routes need the ApiKey fairing and `.manage(Admin::new(…))`"
            );
            return Outcome::Error(Status::ServiceUnavailable);
        };
        let body = match body(req, data, FORM_LIMIT).await {
            Ok(body) => body,
            Err(status) => return Outcome::Error(status),
        };
        let (base, path) = below_mount(req);
        let query = req.uri().query().map(|q| q.as_str());
        let request = AdminRequest {
            method: req.method().as_str(),
            base: &base,
            path,
            query,
            body: &body,
            client: crate::facts::client_ip(req),
            tls: req.rocket().config().tls_enabled(),
        };
        let answer = admin
            .handle(keys.verifier(), &request, &mut Jar(req.cookies()))
            .await;
        Outcome::from(req, Answered(answer))
    }
}
