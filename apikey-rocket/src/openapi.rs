//! OpenAPI (feature `openapi`, on utoipa): what `#[route]` knows, written into a document the
//! service already builds with `#[utoipa::path]` and `#[derive(OpenApi)]`, so nothing is stated
//! twice.
//!
//! ```ignore
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

use rocket::{Phase, Rocket};
use serde_json::json;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{Components, OpenApi, RefOr, Response, Schema};

use crate::routes::{route_inventory, RouteAuth, RouteInfo, RouteInventory};
use crate::state::ApiKeyState;

/// The name of the API key security scheme.
pub const API_KEY_SCHEME: &str = "ApiKey";
/// The name of the Bearer security scheme (with `accept_bearer`).
pub const BEARER_SCHEME: &str = "Bearer";
/// The name of the problem document schema.
pub const PROBLEM_SCHEMA: &str = "Problem";

/// Writes apikey's facts into an OpenAPI document (also a `utoipa::Modify`).
#[derive(Debug, Clone)]
pub struct ApiKeyDocs {
    routes: RouteInventory,
    header: String,
    bearer: bool,
}

impl ApiKeyDocs {
    /// For these routes, keys in `header` (and `Authorization: Bearer` when `bearer`).
    pub fn new(routes: RouteInventory, header: impl Into<String>, bearer: bool) -> Self {
        ApiKeyDocs {
            routes,
            header: header.into(),
            bearer,
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
            state.map_or(apikey_core::config::DEFAULT_HEADER, ApiKeyState::header),
            state.is_some_and(ApiKeyState::accepts_bearer),
        )
    }

    /// Writes the schemes, and each `#[route]` operation's security, groups and responses.
    pub fn apply(&self, doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Components::new);
        self.add_components(components);
        for (path, item) in doc.paths.paths.iter_mut() {
            for (method, operation) in operations(item) {
                if let Some(route) = self.route(method, path) {
                    self.describe(operation, route);
                }
            }
        }
    }

    fn add_components(&self, components: &mut Components) {
        let scheme = |value| serde_json::from_value(value).expect("a valid security scheme");
        components.security_schemes.insert(
            API_KEY_SCHEME.into(),
            scheme(json!({ "type": "apiKey", "in": "header", "name": self.header })),
        );
        if self.bearer {
            components.security_schemes.insert(
                BEARER_SCHEME.into(),
                scheme(json!({ "type": "http", "scheme": "bearer" })),
            );
        }
        let problem: Schema = serde_json::from_value(json!({
            "type": "object",
            "description": "A problem document (RFC 9457). Never holds the key.",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": { "type": "string", "example": "about:blank" },
                "title": { "type": "string" },
                "status": { "type": "integer" },
                "detail": { "type": "string" }
            }
        }))
        .expect("a valid schema");
        components
            .schemas
            .insert(PROBLEM_SCHEMA.into(), RefOr::T(problem));
    }

    /// The `#[route]` behind `method` `path` (an OpenAPI path: `{id}` for `<id>`).
    fn route(&self, method: &str, path: &str) -> Option<&RouteInfo> {
        self.routes.routes.iter().find(|r| {
            r.method.eq_ignore_ascii_case(method)
                && openapi_path(&r.path) == path
                && !matches!(r.auth, RouteAuth::Unguarded | RouteAuth::Custom)
        })
    }

    fn requirement(&self) -> Vec<SecurityRequirement> {
        let mut alternatives = vec![SecurityRequirement::new(API_KEY_SCHEME, [""; 0])];
        if self.bearer {
            alternatives.push(SecurityRequirement::new(BEARER_SCHEME, [""; 0]));
        }
        alternatives
    }

    fn describe(&self, operation: &mut Operation, route: &RouteInfo) {
        let mut problems = vec![("503", "The key store cannot be reached right now.")];
        match route.auth {
            RouteAuth::ApiKey => operation.security = Some(self.requirement()),
            RouteAuth::Public => {
                let mut optional = vec![SecurityRequirement::default()];
                optional.extend(self.requirement());
                operation.security = Some(optional);
            }
            // Open on purpose: say so, so the document does not inherit a global requirement.
            _ => {
                operation.security = Some(vec![SecurityRequirement::default()]);
                return;
            }
        }
        problems.push(("401", "The API key is missing or not valid."));
        problems.push((
            "429",
            "The API key is over its rate limit; see Retry-After.",
        ));
        if !route.groups.is_empty() {
            problems.push((
                "403",
                "The API key is not in a group this operation allows.",
            ));
            let groups = route.groups.join(", ");
            let sentence = format!("Needs an API key in one of the groups: {groups}.");
            operation.description = Some(match operation.description.take() {
                Some(d) if !d.trim().is_empty() => format!("{d}\n\n{sentence}"),
                _ => sentence,
            });
            let extensions = operation.extensions.get_or_insert_with(Default::default);
            extensions.insert("x-apikey-groups".into(), json!(route.groups));
        }
        for (status, description) in problems {
            let response: Response = serde_json::from_value(json!({
                "description": description,
                "content": { "application/problem+json": {
                    "schema": { "$ref": format!("#/components/schemas/{PROBLEM_SCHEMA}") }
                } }
            }))
            .expect("a valid response");
            operation
                .responses
                .responses
                .entry(status.into())
                .or_insert(RefOr::T(response));
        }
    }
}

impl utoipa::Modify for ApiKeyDocs {
    fn modify(&self, openapi: &mut OpenApi) {
        self.apply(openapi);
    }
}

/// The operations of a path item, with their methods.
fn operations(item: &mut PathItem) -> Vec<(&'static str, &mut Operation)> {
    [
        ("GET", &mut item.get),
        ("PUT", &mut item.put),
        ("POST", &mut item.post),
        ("DELETE", &mut item.delete),
        ("OPTIONS", &mut item.options),
        ("HEAD", &mut item.head),
        ("PATCH", &mut item.patch),
        ("TRACE", &mut item.trace),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.as_mut().map(|op| (m, op)))
    .collect()
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
