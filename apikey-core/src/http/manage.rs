//! The management API (feature `manage`): keys administered over HTTP with JSON, as plain
//! request data in and an answer out, like the admin page. Every adapter mounts this one app
//! (`apikey_rocket::manage::routes()`, `apikey_axum::manage::router(…)`, by the demos at
//! `/apikey/keys`): it verifies the caller's key as any `api_key` route does, then hands
//! [`ManageApp::handle`] the caller's identity, the method, the path below the mount point, the
//! query and the body, and sends the [`ManageAnswer`] back as it is — so the answers are the
//! same, byte for byte, on every framework.
//!
//! | method and path | what it does |
//! |---|---|
//! | `GET /` `?user=&group=&expiring=14d&revoked=true` | the keys the filter selects |
//! | `POST /` (JSON: `name`, `user`, `groups`, `scopes`, `expires_in`, `rate_limit`, `quota`, `allow_ip`, `description`, `meta`) | creates a key: 201, the key in the answer once |
//! | `GET /{tech_name}` | one key |
//! | `PATCH /{tech_name}` (JSON: any of `user`, `expires_at`, `expires_in`, `description`, `meta`, `groups`, `scopes`, `rate_limit`, `quota`, `allow_ip`; `null` clears) | changes it in one atomic change |
//! | `DELETE /{tech_name}` | deletes it: 204 |
//! | `POST /{tech_name}/revoke`, `/activate` | revokes, re-activates |
//! | `POST /{tech_name}/rotate` (JSON, optional: `grace`) | a new secret, in the answer once |
//! | `GET /{tech_name}/usage?days=30` | requests per day and the quota's use |
//!
//! Only keys in `[apikey] admin_group` may call it (403 otherwise, the answer of any route's
//! groups); every change is recorded in the audit trail as made by `key:<the caller's key
//! name>`. Errors are problem documents (RFC 9457); no answer is cached (`no-store`).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;

use super::{Problem, RouteAuth};
use crate::admin::usage::{self, UsageError};
use crate::model::{
    de_duration, AllowIp, Groups, Identity, KeyChange, KeyEdit, KeyFilter, KeyRecord, KeyView,
    Meta, MetaEdit, Quota, RateLimit, Scopes,
};
use crate::store::{SharedStore, StoreError};
use crate::verify::{AuthError, Verifier};
use crate::{Actor, ApiKeyConfig, CreateKey, KeyManager};

/// The largest body the management API reads (adapters stop reading there: 413).
pub const BODY_LIMIT: usize = 64 * 1024;

/// The media type of its answers (errors are `application/problem+json`).
pub const JSON: &str = "application/json";

/// One route of the management API: a valid key is needed ([`AUTH`]), in `admin_group`.
pub type ManageRoute = super::AppRoute;

const fn route(
    name: &'static str,
    method: &'static str,
    path: &'static str,
    summary: &'static str,
) -> ManageRoute {
    super::AppRoute {
        name,
        method,
        path,
        auth: AUTH,
        summary,
    }
}

/// Every route of the management API. Each needs a valid key in `admin_group`.
pub const ROUTES: &[ManageRoute] = &[
    route("list_keys", "GET", "/", "List keys (filters combine)"),
    route("create_key", "POST", "/", "Create a key (shown once)"),
    route("show_key", "GET", "/<tech_name>", "Show a key"),
    route("edit_key", "PATCH", "/<tech_name>", "Change a key"),
    route("delete_key", "DELETE", "/<tech_name>", "Delete a key"),
    route("revoke_key", "POST", "/<tech_name>/revoke", "Revoke a key"),
    route(
        "activate_key",
        "POST",
        "/<tech_name>/activate",
        "Re-activate a key",
    ),
    route(
        "rotate_key",
        "POST",
        "/<tech_name>/rotate",
        "Give a key a new secret (shown once)",
    ),
    route(
        "key_usage",
        "GET",
        "/<tech_name>/usage",
        "A key's requests per day and its quota's use",
    ),
];

/// The auth of every management route, for inventories: a valid key, in `admin_group`.
pub const AUTH: RouteAuth = RouteAuth::ApiKey;

/// One management request as the adapter received it, its key verified.
#[derive(Debug, Clone, Copy)]
pub struct ManageRequest<'a> {
    /// The method, upper case.
    pub method: &'a str,
    /// Where the routes are mounted (`/apikey/keys`), no trailing `/`: a created key's
    /// `Location` starts there.
    pub base: &'a str,
    /// The path below the mount point: `/`, `/shop`, `/shop/revoke` (empty counts as `/`).
    pub path: &'a str,
    /// The query string, without `?`.
    pub query: Option<&'a str>,
    /// The body, at most [`BODY_LIMIT`] bytes.
    pub body: &'a [u8],
}

/// What the adapter sends back: the status, the headers and the body (empty for a 204).
pub type ManageAnswer = super::Reply;

impl ManageAnswer {
    fn json(status: u16, value: &impl Serialize) -> Self {
        ManageAnswer {
            status,
            headers: vec![
                ("Content-Type", Cow::Borrowed(JSON)),
                ("Cache-Control", Cow::Borrowed("no-store")),
            ],
            body: serde_json::to_vec(value).unwrap_or_default(),
        }
    }

    fn problem(status: u16, detail: impl Into<String>) -> Self {
        let problem = Problem::new(status, detail);
        ManageAnswer {
            status,
            headers: vec![
                ("Content-Type", Cow::Borrowed(super::PROBLEM_JSON)),
                ("Cache-Control", Cow::Borrowed("no-store")),
            ],
            body: serde_json::to_vec(&problem).unwrap_or_default(),
        }
    }

    fn no_content() -> Self {
        ManageAnswer {
            status: 204,
            headers: vec![("Cache-Control", Cow::Borrowed("no-store"))],
            body: Vec::new(),
        }
    }

    fn store_error(e: &StoreError) -> Self {
        match e {
            StoreError::NotFound(_) => Self::problem(404, e.to_string()),
            StoreError::Duplicate(_) => Self::problem(409, e.to_string()),
            StoreError::Invalid(_) | StoreError::RotationRefused(_) => {
                Self::problem(400, e.to_string())
            }
            // A store's message may name a server: not for callers.
            StoreError::Unavailable(_) | StoreError::Behind { .. } | StoreError::TooNew { .. } => {
                crate::obs::error!("apikey: the management API cannot reach the store: {e}");
                Self::problem(
                    503,
                    "Keys cannot be administered right now; try again later.",
                )
            }
        }
    }

    fn no_such_key(tech_name: &str) -> Self {
        Self::problem(404, format!("no key with the tech name {tech_name:?}"))
    }
}

/// The management API: the one mutation path and the group whose keys may call it. One per
/// service, shared by its requests.
pub struct ManageApp {
    manager: KeyManager,
    store: SharedStore,
    config: ApiKeyConfig,
}

/// A key with its secret, shown once (create, rotate).
#[derive(Serialize)]
struct WithSecret<'a> {
    key: &'a str,
    #[serde(flatten)]
    view: KeyView<'a>,
}

#[derive(Serialize)]
struct Listed<'a> {
    keys: Vec<KeyView<'a>>,
}

/// A duration as JSON gives it: whole seconds or `90d`.
#[derive(Debug, Clone, Copy, Deserialize)]
struct Span(#[serde(deserialize_with = "de_duration")] Duration);

/// `POST /`: a new key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKeyBody {
    name: String,
    user: String,
    #[serde(default)]
    groups: Groups,
    #[serde(default)]
    scopes: Scopes,
    expires_in: Option<Span>,
    rate_limit: Option<RateLimit>,
    quota: Option<Quota>,
    #[serde(default)]
    allow_ip: AllowIp,
    description: Option<String>,
    #[serde(default)]
    meta: Meta,
}

/// A field that may be absent (left as it is), `null` (cleared) or a value.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// `PATCH /{tech_name}`: the fields to change.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EditBody {
    user: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    expires_at: Option<Option<Rfc3339>>,
    expires_in: Option<Span>,
    #[serde(default, deserialize_with = "nullable")]
    description: Option<Option<String>>,
    /// Entries to set; `null` removes one.
    #[serde(default)]
    meta: BTreeMap<String, Option<String>>,
    groups: Option<Groups>,
    scopes: Option<Scopes>,
    #[serde(default, deserialize_with = "nullable")]
    rate_limit: Option<Option<RateLimit>>,
    #[serde(default, deserialize_with = "nullable")]
    quota: Option<Option<Quota>>,
    #[serde(default, deserialize_with = "nullable")]
    allow_ip: Option<Option<AllowIp>>,
}

/// An RFC 3339 instant.
#[derive(Debug, Clone, Copy, Deserialize)]
struct Rfc3339(#[serde(with = "time::serde::rfc3339")] OffsetDateTime);

/// `POST /{tech_name}/rotate`: how long the old secret keeps working.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    grace: Option<Span>,
}

/// Reads a JSON body (an empty one is `{}` where `empty` allows it).
fn body<'a, T: Deserialize<'a> + Default>(bytes: &'a [u8], empty: bool) -> Result<T, String> {
    if empty && bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| format!("the body is not what this call takes: {e}"))
}

/// The list filter a query gives (`user`, `group`, `expiring`, `revoked`); an unknown
/// parameter is refused rather than ignored (a misspelt filter would list every key).
fn filter(query: Option<&str>) -> Result<KeyFilter, String> {
    let mut filter = KeyFilter::default();
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if !filter.set(&name, &value)? {
            return Err(format!(
                "unknown filter {:?}: use user, group, expiring or revoked",
                crate::model::escape_unsafe(&name)
            ));
        }
    }
    Ok(filter)
}

/// `?days=N` of a usage call (30 by default, at most ten years).
fn days(query: Option<&str>) -> Result<u32, String> {
    let mut days = 30;
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match name.as_ref() {
            "days" => {
                days = value
                    .parse::<u32>()
                    .ok()
                    .filter(|d| (1..=3660).contains(d))
                    .ok_or_else(|| "`days` is a whole number from 1 to 3660".to_owned())?
            }
            other => {
                return Err(format!(
                    "unknown parameter {:?}: use days",
                    crate::model::escape_unsafe(other)
                ))
            }
        }
    }
    Ok(days)
}

impl ManageApp {
    /// Administers through `manager` (its actor is replaced, per request, by the calling
    /// key); the keys of `config`'s `admin_group` may call it.
    pub fn new(manager: KeyManager, store: SharedStore, config: &ApiKeyConfig) -> Self {
        ManageApp {
            manager,
            store,
            config: config.clone(),
        }
    }

    /// The group whose keys may call it (`admin_group`).
    pub fn group(&self) -> &str {
        &self.config.settings.admin_group
    }

    /// Answers one request of the key `caller` (verified by the adapter, as for any `api_key`
    /// route). `Err` when the key may not administer keys (not in `admin_group`): the adapter
    /// answers it as it answers any route's refusal.
    pub async fn handle(
        &self,
        verifier: &Verifier,
        caller: &Identity,
        req: &ManageRequest<'_>,
    ) -> Result<ManageAnswer, AuthError> {
        verifier.authorize(caller, &[self.group()], &[] as &[&str])?;
        let acting = self
            .manager
            .clone()
            .with_actor(Actor::escaped(&format!("key:{}", caller.key_name())));
        let manager = &acting;
        let path = req.path.trim_matches('/');
        let mut parts = path.splitn(2, '/');
        let tech = parts.next().unwrap_or_default();
        let action = parts.next();
        Ok(match (req.method, tech, action) {
            ("GET", "", None) => self.list(manager, req.query).await,
            ("POST", "", None) => self.create(manager, req.base, req.body).await,
            (_, "", None) => not_allowed("GET, POST"),
            (method, tech, None) => match method {
                "GET" => self.with_key(tech, |r| async move { Ok(show(&r)) }).await,
                "PATCH" => {
                    self.with_key(tech, |r| self.edit(manager, r, req.body))
                        .await
                }
                "DELETE" => {
                    self.with_key(tech, |r| async move {
                        manager.delete(&r.name).await?;
                        Ok(ManageAnswer::no_content())
                    })
                    .await
                }
                _ => not_allowed("GET, PATCH, DELETE"),
            },
            ("POST", tech, Some("revoke")) => {
                self.with_key(tech, |r| async move {
                    Ok(show(&manager.revoke(&r.name).await?))
                })
                .await
            }
            ("POST", tech, Some("activate")) => {
                self.with_key(tech, |r| async move {
                    Ok(show(&manager.activate(&r.name).await?))
                })
                .await
            }
            ("POST", tech, Some("rotate")) => {
                self.with_key(tech, |r| self.rotate(manager, r, req.body))
                    .await
            }
            ("GET", tech, Some("usage")) => self.usage(tech, req.query).await,
            (_, _, Some("revoke" | "activate" | "rotate")) => not_allowed("POST"),
            (_, _, Some("usage")) => not_allowed("GET"),
            _ => ManageAnswer::problem(404, "No such management call."),
        })
    }

    /// Runs `then` on the key of this tech name (404 when there is none).
    async fn with_key<F, Fut>(&self, tech: &str, then: F) -> ManageAnswer
    where
        F: FnOnce(KeyRecord) -> Fut,
        Fut: std::future::Future<Output = Result<ManageAnswer, StoreError>>,
    {
        let found = match self.store.get_by_tech_name(tech).await {
            Ok(found) => found,
            Err(e) => return ManageAnswer::store_error(&e),
        };
        let Some(record) = found else {
            return ManageAnswer::no_such_key(tech);
        };
        then(record)
            .await
            .unwrap_or_else(|e| ManageAnswer::store_error(&e))
    }

    async fn list(&self, manager: &KeyManager, query: Option<&str>) -> ManageAnswer {
        let filter = match filter(query) {
            Ok(f) => f,
            Err(message) => return ManageAnswer::problem(400, message),
        };
        match manager.list(&filter).await {
            Ok(keys) => ManageAnswer::json(
                200,
                &Listed {
                    keys: keys.iter().map(KeyView::from).collect(),
                },
            ),
            Err(e) => ManageAnswer::store_error(&e),
        }
    }

    async fn create(&self, manager: &KeyManager, base: &str, bytes: &[u8]) -> ManageAnswer {
        let new: NewKeyBody = match body(bytes, false) {
            Ok(new) => new,
            Err(message) => return ManageAnswer::problem(400, message),
        };
        let spec = CreateKey {
            name: new.name,
            user: new.user,
            groups: new.groups.into_vec(),
            expires_in: new.expires_in.map(|s| s.0),
            rate_limit: new.rate_limit,
            quota: new.quota,
            allow_ip: new.allow_ip,
            scopes: new.scopes.into_vec(),
            description: new.description.filter(|d| !d.is_empty()),
            meta: new.meta,
        };
        match manager.create(spec).await {
            Ok((record, key)) => {
                let mut answer = ManageAnswer::json(
                    201,
                    &WithSecret {
                        key: key.expose(),
                        view: KeyView::from(&record),
                    },
                );
                answer.headers.push((
                    "Location",
                    Cow::Owned(format!("{base}/{}", record.tech_name)),
                ));
                answer
            }
            Err(e) => ManageAnswer::store_error(&e),
        }
    }

    async fn edit(
        &self,
        manager: &KeyManager,
        record: KeyRecord,
        bytes: &[u8],
    ) -> Result<ManageAnswer, StoreError> {
        let edit: EditBody = match body(bytes, false) {
            Ok(edit) => edit,
            Err(message) => return Ok(ManageAnswer::problem(400, message)),
        };
        let now = OffsetDateTime::now_utc();
        let expires_at = match (edit.expires_at, edit.expires_in) {
            (Some(_), Some(_)) => {
                return Ok(ManageAnswer::problem(
                    400,
                    "give expires_at or expires_in, not both",
                ))
            }
            (Some(at), None) => Some(at.map(|a| a.0)),
            (None, Some(span)) => match crate::model::expiry_after(now, span.0) {
                Ok(at) => Some(Some(at)),
                Err(message) => return Ok(ManageAnswer::problem(400, message)),
            },
            (None, None) => None,
        };
        let (set, unset): (Vec<_>, Vec<_>) = edit.meta.into_iter().partition(|(_, v)| v.is_some());
        let meta = match MetaEdit::new(
            set.into_iter().map(|(k, v)| (k, v.unwrap_or_default())),
            unset.into_iter().map(|(k, _)| k),
        ) {
            Ok(meta) => meta,
            Err(message) => return Ok(ManageAnswer::problem(400, message)),
        };
        let change = KeyEdit {
            user: edit.user,
            expires_at,
            description: edit.description,
            meta,
            groups: edit.groups,
            scopes: edit.scopes,
            rate_limit: edit.rate_limit,
            quota: edit.quota,
            allow_ip: edit.allow_ip.map(Option::unwrap_or_default),
        };
        if change.is_empty() {
            return Ok(ManageAnswer::problem(400, "nothing to change"));
        }
        let changed = manager
            .change(&record.name, KeyChange::Edit(Box::new(change)))
            .await?;
        Ok(show(&changed))
    }

    async fn rotate(
        &self,
        manager: &KeyManager,
        record: KeyRecord,
        bytes: &[u8],
    ) -> Result<ManageAnswer, StoreError> {
        let asked: RotateBody = match body(bytes, true) {
            Ok(asked) => asked,
            Err(message) => return Ok(ManageAnswer::problem(400, message)),
        };
        let grace = asked.grace.map_or(Duration::ZERO, |g| g.0);
        let (rotated, key) = manager.rotate(&record.name, grace).await?;
        Ok(ManageAnswer::json(
            200,
            &WithSecret {
                key: key.expose(),
                view: KeyView::from(&rotated),
            },
        ))
    }

    async fn usage(&self, tech: &str, query: Option<&str>) -> ManageAnswer {
        let days = match days(query) {
            Ok(days) => days,
            Err(message) => return ManageAnswer::problem(400, message),
        };
        let name = match self.store.get_by_tech_name(tech).await {
            Ok(Some(r)) => r.name,
            Ok(None) if self.config.sections.iter().any(|s| s.tech_name == tech) => tech.to_owned(),
            Ok(None) => return ManageAnswer::no_such_key(tech),
            Err(e) => return ManageAnswer::store_error(&e),
        };
        match usage::report(&self.config, &self.store, &name, days).await {
            Ok(report) => ManageAnswer::json(200, &report),
            Err(UsageError::NotFound(_)) => ManageAnswer::no_such_key(tech),
            Err(UsageError::Store(e)) => ManageAnswer::store_error(&e),
            Err(e @ UsageError::Quota(_)) => {
                crate::obs::error!("apikey: the management API: {e}");
                ManageAnswer::problem(503, "Usage cannot be read right now; try again later.")
            }
        }
    }
}

fn show(record: &KeyRecord) -> ManageAnswer {
    ManageAnswer::json(200, &KeyView::from(record))
}

fn not_allowed(allow: &'static str) -> ManageAnswer {
    let mut answer = ManageAnswer::problem(405, "This call does not take that method.");
    answer.headers.push(("Allow", Cow::Borrowed(allow)));
    answer
}

/// Describes the management API mounted at `base` (`/apikey/keys`) in an OpenAPI document:
/// an operation per route, marked (see [`super::openapi::mark`]) as needing a key in `group`,
/// so that the adapters' security docs add the scheme, the security and the problem answers.
#[cfg(feature = "openapi")]
#[cfg_attr(docsrs, doc(cfg(all(feature = "manage", feature = "openapi"))))]
pub fn describe(doc: &mut utoipa::openapi::OpenApi, base: &str, group: &str) {
    use serde_json::json;
    use utoipa::openapi::path::Operation;

    let base = base.trim_end_matches('/');
    let json_answer = |description: &str| json!({ "description": description, "content": { JSON: { "schema": { "type": "object" } } } });
    for r in ROUTES {
        let path = r.under(base).replace("<tech_name>", "{tech_name}");
        let mut parameters = Vec::new();
        if r.path.contains("<tech_name>") {
            parameters.push(json!({
                "name": "tech_name", "in": "path", "required": true,
                "description": "The key's tech name", "schema": { "type": "string" }
            }));
        }
        let query = |name: &str, description: &str| {
            json!({ "name": name, "in": "query", "required": false,
                    "description": description, "schema": { "type": "string" } })
        };
        match r.name {
            "list_keys" => {
                parameters.push(query("user", "Only keys of this user"));
                parameters.push(query("group", "Only keys in this group"));
                parameters.push(query(
                    "expiring",
                    "Only keys expiring within this long (e.g. 14d)",
                ));
                parameters.push(query(
                    "revoked",
                    "true: only revoked keys; false: only active",
                ));
            }
            "key_usage" => parameters.push(query("days", "How many days back (30)")),
            _ => {}
        }
        let responses = match r.name {
            "create_key" => json!({ "201": json_answer("The key, shown once, and its record") }),
            "rotate_key" => {
                json!({ "200": json_answer("The new key, shown once, and the record") })
            }
            "delete_key" => json!({ "204": { "description": "Deleted" } }),
            "list_keys" => json!({ "200": json_answer("The keys (`keys`), never a secret") }),
            _ => json!({ "200": json_answer("The key (or its usage), never a secret") }),
        };
        let mut operation = json!({
            "operationId": r.name,
            "summary": r.summary,
            "tags": ["apikey management"],
            "parameters": parameters,
            "responses": responses,
        });
        if matches!(r.method, "POST" | "PATCH") && !matches!(r.name, "revoke_key" | "activate_key")
        {
            operation["requestBody"] = json!({
                "required": r.name != "rotate_key",
                "content": { JSON: { "schema": { "type": "object" } } }
            });
        }
        let Ok(mut operation) = serde_json::from_value::<Operation>(operation) else {
            continue;
        };
        super::openapi::mark(&mut operation, AUTH, &[group], &[] as &[&str]);
        let item = doc.paths.paths.entry(path).or_default();
        let slot = match r.method {
            "GET" => &mut item.get,
            "POST" => &mut item.post,
            "PATCH" => &mut item.patch,
            "DELETE" => &mut item.delete,
            _ => continue,
        };
        *slot = Some(operation);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_refuse_unknown_parameters() {
        let f = filter(Some(
            "user=alice&group=billing%20ops&expiring=14d&revoked=true",
        ))
        .unwrap();
        assert_eq!(f.user.as_deref(), Some("alice"));
        assert_eq!(f.group.as_deref(), Some("billing ops"));
        assert_eq!(f.expiring_within, Some(Duration::from_secs(14 * 86_400)));
        assert_eq!(f.revoked, Some(true));
        assert!(filter(Some("usr=alice")).is_err());
        assert!(filter(Some("revoked=maybe")).is_err());
        assert_eq!(filter(None).unwrap(), KeyFilter::default());
        assert_eq!(days(Some("days=7")).unwrap(), 7);
        assert!(days(Some("days=0")).is_err());
    }

    #[test]
    fn edits_tell_absent_from_null() {
        let e: EditBody = body(
            br#"{"description": null, "meta": {"a": "1", "b": null}}"#,
            false,
        )
        .unwrap();
        assert!(matches!(e.description, Some(None)));
        assert!(e.expires_at.is_none() && e.rate_limit.is_none());
        assert_eq!(e.meta.len(), 2);
        assert!(body::<EditBody>(br#"{"descripton": "x"}"#, false).is_err());
        assert!(body::<RotateBody>(b"", true).unwrap().grace.is_none());
    }
}
