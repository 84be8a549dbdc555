//! OpenAPI (feature `openapi`, on utoipa): what `#[route]` knows, written into a document the
//! service already builds with `#[utoipa::path]` and `#[derive(OpenApi)]`, so nothing is stated
//! twice.
//!
//! ```no_run
//! use apikey_rocket::openapi::ApiKeyDocs;
//! use apikey_rocket::{route, ApiKeyState, Caller};
//! use rocket::serde::json::Json;
//! use rocket::State;
//! use utoipa::OpenApi;
//!
//! #[utoipa::path(get, path = "/hello", responses((status = 200, body = String)))]
//! #[route("/hello", auth = "api_key")]
//! fn hello(caller: &Caller) -> String {
//!     format!("hello {}", caller.user())
//! }
//!
//! #[derive(OpenApi)]
//! #[openapi(paths(hello))]
//! struct ApiDoc;
//!
//! #[route("/openapi.json", auth = "none")]
//! fn openapi(keys: &State<ApiKeyState>) -> Json<utoipa::openapi::OpenApi> {
//!     let mut doc = ApiDoc::openapi();
//!     ApiKeyDocs::for_service(keys).apply(&mut doc);
//!     Json(doc)
//! }
//! ```
//!
//! It adds the `ApiKey` security scheme (`in: header`, the configured header name) and, with
//! `accept_bearer`, a `Bearer` scheme; on every operation of a `#[route]` handler its
//! `security` (required for `api_key`, optional for `public`, none for `none`), its groups (the
//! `x-apikey-groups` extension and a sentence in the description) and the problem responses
//! apikey can give (401, 403 with groups, 429, 503).

use apikey_core::http::openapi::{Guarded, SecurityDocs};
use rocket::{Phase, Rocket};
use utoipa::openapi::OpenApi;

use crate::routes::{route_inventory, RouteAuth, RouteInfo, RouteInventory};
use crate::state::ApiKeyState;

pub use apikey_core::http::openapi::{
    API_KEY_SCHEME, AUTH_EXTENSION, BEARER_SCHEME, GROUPS_EXTENSION, PROBLEM_SCHEMA,
};

/// Writes apikey's facts into an OpenAPI document (also a `utoipa::Modify`).
#[derive(Debug, Clone)]
pub struct ApiKeyDocs {
    routes: RouteInventory,
    docs: SecurityDocs,
}

impl ApiKeyDocs {
    /// For these routes, keys in `header` (and `Authorization: Bearer` when `bearer`).
    pub fn new(routes: RouteInventory, header: impl Into<String>, bearer: bool) -> Self {
        ApiKeyDocs {
            routes,
            docs: SecurityDocs::new(header, bearer),
        }
    }

    /// For the service the fairing runs: the routes mounted when it started, its header and
    /// its `accept_bearer` (take `&State<ApiKeyState>` in a handler).
    pub fn for_service(state: &ApiKeyState) -> Self {
        Self::new(
            state.routes().clone(),
            state.header(),
            state.accepts_bearer(),
        )
    }

    /// For a Rocket instance in any phase: its routes, and its header and `accept_bearer`
    /// once the fairing has run.
    pub fn for_rocket<P: Phase>(rocket: &Rocket<P>) -> Self {
        let state = rocket.state::<ApiKeyState>();
        Self::new(
            route_inventory(rocket),
            state.map_or(apikey_core::config::DEFAULT_HEADER, |s| s.header()),
            state.is_some_and(|s| s.accepts_bearer()),
        )
    }

    /// Writes the schemes, and each `#[route]` operation's security, groups and responses.
    pub fn apply(&self, doc: &mut OpenApi) {
        self.docs.apply(doc, |method, path, _| {
            self.route(method, path).map(|r| Guarded {
                auth: r.auth,
                groups: r.groups.clone(),
                scopes: r.scopes.clone(),
            })
        });
    }

    /// The `#[route]` behind `method` `path` (an OpenAPI path: `{id}` for `<id>`).
    fn route(&self, method: &str, path: &str) -> Option<&RouteInfo> {
        self.routes.routes.iter().find(|r| {
            r.method.eq_ignore_ascii_case(method)
                && openapi_path(&r.path) == path
                && !matches!(r.auth, RouteAuth::Unguarded | RouteAuth::Custom)
        })
    }
}

impl utoipa::Modify for ApiKeyDocs {
    fn modify(&self, openapi: &mut OpenApi) {
        self.apply(openapi);
    }
}

/// A Rocket path as OpenAPI writes it: `<id>` → `{id}`, `<rest..>` → `{rest}`, no query.
fn openapi_path(rocket: &str) -> String {
    let path = rocket.split('?').next().unwrap_or_default();
    path.split('/')
        .map(
            |segment| match segment.strip_prefix('<').and_then(|s| s.strip_suffix('>')) {
                Some(name) => format!("{{{}}}", name.trim_end_matches("..")),
                None => segment.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::openapi_path;

    #[test]
    fn paths_as_openapi_writes_them() {
        assert_eq!(openapi_path("/items/<id>"), "/items/{id}");
        assert_eq!(openapi_path("/files/<rest..>"), "/files/{rest}");
        assert_eq!(openapi_path("/search?<q>"), "/search");
        assert_eq!(openapi_path("/"), "/");
    }
}
