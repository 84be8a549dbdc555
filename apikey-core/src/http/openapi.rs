//! OpenAPI (feature `openapi`, on utoipa): who may call an operation, written into a document
//! the service already builds with `#[utoipa::path]`, by the same code for every adapter.
//!
//! It adds the `ApiKey` security scheme (`in: header`, the configured header name) and, with
//! `accept_bearer`, a `Bearer` scheme; on every guarded operation its `security` (required for
//! `api_key`, optional for `public`, explicitly none for `none`), its groups (the
//! `x-apikey-groups` extension and a sentence in the description), its scopes (the
//! `x-apikey-scopes` extension, the security requirement's scopes and a sentence), the
//! `x-apikey-auth` extension, and the problem responses apikey can give (401, 403 with groups
//! or scopes, 429, 503).

use serde_json::json;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{Components, OpenApi, RefOr, Response, Schema};

use super::RouteAuth;

/// The name of the API key security scheme.
pub const API_KEY_SCHEME: &str = "ApiKey";
/// The name of the Bearer security scheme (with `accept_bearer`).
pub const BEARER_SCHEME: &str = "Bearer";
/// The name of the problem document schema.
pub const PROBLEM_SCHEMA: &str = "Problem";
/// The extension naming an operation's `auth` (`api_key`, `public`, `none`).
pub const AUTH_EXTENSION: &str = "x-apikey-auth";
/// The extension listing an operation's groups.
pub const GROUPS_EXTENSION: &str = "x-apikey-groups";
/// The extension listing an operation's scopes.
pub const SCOPES_EXTENSION: &str = "x-apikey-scopes";

/// What an operation needs: its auth mode, groups and scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guarded {
    /// How it is guarded.
    pub auth: RouteAuth,
    /// The groups a key must be in (any of them); empty: every valid key.
    pub groups: Vec<String>,
    /// The scopes a key must hold (all of them); empty: none.
    pub scopes: Vec<String>,
}

/// Writes the schemes and what each operation needs into an OpenAPI document.
#[derive(Debug, Clone)]
pub struct SecurityDocs {
    header: String,
    bearer: bool,
}

impl SecurityDocs {
    /// For keys in `header` (and `Authorization: Bearer` when `bearer`).
    pub fn new(header: impl Into<String>, bearer: bool) -> Self {
        SecurityDocs {
            header: header.into(),
            bearer,
        }
    }

    /// Writes the schemes, and for every operation `guarded(method, path, operation)` knows
    /// (method upper case, path as OpenAPI writes it), its security, groups and responses.
    pub fn apply<F>(&self, doc: &mut OpenApi, mut guarded: F)
    where
        F: FnMut(&str, &str, &Operation) -> Option<Guarded>,
    {
        let components = doc.components.get_or_insert_with(Components::new);
        self.add_components(components);
        for (path, item) in doc.paths.paths.iter_mut() {
            for (method, operation) in operations(item) {
                if let Some(g) = guarded(method, path, operation) {
                    self.describe(operation, &g);
                }
            }
        }
    }

    /// Writes the schemes, and for every operation marked with [`mark`] its security, groups
    /// and responses.
    pub fn apply_marked(&self, doc: &mut OpenApi) {
        self.apply(doc, |_, _, operation| marked(operation));
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

    /// The requirement of a key holding `scopes` (OpenAPI 3.1 lets any scheme name scopes).
    fn requirement(&self, scopes: &[String]) -> Vec<SecurityRequirement> {
        let mut alternatives = vec![SecurityRequirement::new(API_KEY_SCHEME, scopes)];
        if self.bearer {
            alternatives.push(SecurityRequirement::new(BEARER_SCHEME, scopes));
        }
        alternatives
    }

    fn describe(&self, operation: &mut Operation, route: &Guarded) {
        let mut problems = vec![("503", "The key store cannot be reached right now.")];
        match route.auth {
            RouteAuth::ApiKey => operation.security = Some(self.requirement(&route.scopes)),
            RouteAuth::Public => {
                let mut optional = vec![SecurityRequirement::default()];
                optional.extend(self.requirement(&route.scopes));
                operation.security = Some(optional);
            }
            RouteAuth::None => {
                // Open on purpose: say so, so the document does not inherit a global
                // requirement.
                operation.security = Some(vec![SecurityRequirement::default()]);
                mark::<&str, &str>(operation, RouteAuth::None, &[], &[]);
                return;
            }
            RouteAuth::Custom | RouteAuth::Unguarded => return,
        }
        mark(operation, route.auth, &route.groups, &route.scopes);
        problems.push(("401", "The API key is missing or not valid."));
        problems.push((
            "429",
            "The API key is over its rate limit; see Retry-After.",
        ));
        let mut sentences = Vec::new();
        if !route.groups.is_empty() {
            sentences.push(format!(
                "Needs an API key in one of the groups: {}.",
                route.groups.join(", ")
            ));
        }
        if !route.scopes.is_empty() {
            sentences.push(format!(
                "Needs an API key with the scopes: {}.",
                route.scopes.join(", ")
            ));
        }
        match (route.groups.is_empty(), route.scopes.is_empty()) {
            (true, true) => {}
            (false, true) => problems.push((
                "403",
                "The API key is not in a group this operation allows.",
            )),
            (true, false) => {
                problems.push(("403", "The API key lacks a scope this operation needs."))
            }
            (false, false) => problems.push((
                "403",
                "The API key is not in a group this operation allows, or lacks a scope it \
                 needs.",
            )),
        }
        for sentence in sentences {
            operation.description = Some(match operation.description.take() {
                Some(d) if d.contains(&sentence) => d,
                Some(d) if !d.trim().is_empty() => format!("{d}\n\n{sentence}"),
                _ => sentence,
            });
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

impl utoipa::Modify for SecurityDocs {
    /// Describes the operations marked with [`mark`].
    fn modify(&self, openapi: &mut OpenApi) {
        self.apply_marked(openapi);
    }
}

/// Marks an operation with its auth, groups and scopes (the `x-apikey-auth`,
/// `x-apikey-groups` and `x-apikey-scopes` extensions), for [`SecurityDocs::apply_marked`] to
/// describe.
pub fn mark<G: AsRef<str>, S: AsRef<str>>(
    operation: &mut Operation,
    auth: RouteAuth,
    groups: &[G],
    scopes: &[S],
) {
    let label = match auth {
        RouteAuth::ApiKey => "api_key",
        RouteAuth::Public => "public",
        RouteAuth::None => "none",
        RouteAuth::Custom | RouteAuth::Unguarded => return,
    };
    let extensions = operation.extensions.get_or_insert_with(Default::default);
    extensions.insert(AUTH_EXTENSION.into(), json!(label));
    if !groups.is_empty() {
        let groups: Vec<&str> = groups.iter().map(AsRef::as_ref).collect();
        extensions.insert(GROUPS_EXTENSION.into(), json!(groups));
    }
    if !scopes.is_empty() {
        let scopes: Vec<&str> = scopes.iter().map(AsRef::as_ref).collect();
        extensions.insert(SCOPES_EXTENSION.into(), json!(scopes));
    }
}

/// What [`mark`] wrote on an operation.
pub fn marked(operation: &Operation) -> Option<Guarded> {
    let extensions = operation.extensions.as_ref()?;
    let auth = match extensions.get(AUTH_EXTENSION)?.as_str()? {
        "api_key" => RouteAuth::ApiKey,
        "public" => RouteAuth::Public,
        "none" => RouteAuth::None,
        _ => return None,
    };
    let list = |name: &str| {
        extensions
            .get(name)
            .and_then(|g| serde_json::from_value(g.clone()).ok())
            .unwrap_or_default()
    };
    Some(Guarded {
        auth,
        groups: list(GROUPS_EXTENSION),
        scopes: list(SCOPES_EXTENSION),
    })
}

/// The operations of a path item, with their methods (upper case).
pub fn operations(item: &mut PathItem) -> Vec<(&'static str, &mut Operation)> {
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
