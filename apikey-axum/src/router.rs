//! A router where adding a route says who may call it: the guard, the route inventory and (with
//! feature `openapi`) the OpenAPI security come from that one declaration, and building it
//! checks `require_route_auth`, as Rocket's fairing does at launch.
//!
//! ```
//! use apikey_axum::{ApiKeyState, ApiRouter, Auth, Caller};
//! use axum::http::Method;
//!
//! async fn my_service(caller: Caller) -> String {
//!     format!("hello {}", caller.user())
//! }
//! async fn billing(caller: Caller) -> String {
//!     format!("{} may bill", caller.key_name())
//! }
//! async fn health() -> &'static str {
//!     "ok"
//! }
//!
//! # async fn run(keys: ApiKeyState) -> Result<(), Box<dyn std::error::Error>> {
//! let app = ApiRouter::new(&keys)
//!     .get("/my_service", Auth::api_key(), my_service)
//!     .route(Method::POST, "/billing", Auth::api_key().groups(["billing"]), billing)
//!     .get("/health", Auth::none(), health)
//!     .build()?;                                  // require_route_auth is checked here
//! println!("{}", app.inventory().summary());     // 2 api_key, 0 public, 1 none, …
//! let router: axum::Router = app.into_router();  // each route carries the state
//! # let _ = router; Ok(()) }
//! ```
//!
//! Routes from elsewhere (a Swagger UI, a router of another crate) are merged with
//! [`ApiRouter::merge_unguarded`], saying which routes they bring: they are listed as
//! `unguarded`, and with `require_route_auth` only their paths in `allow_unguarded` may stay.
//! What is added to the router after [`ApiRouter::build`] is unknown to the inventory. The built
//! router has a fallback of its own (404, and a CORS preflight to an unknown path answered as
//! the `ApiKeyLayer` answers it): nest it, or merge it into a router without a fallback (axum
//! refuses to merge two routers that both have one).

use std::convert::Infallible;
use std::fmt;

use apikey_core::http::inventory::{RouteInfo, RouteInventory};
use apikey_core::http::RouteAuth;
use axum::handler::Handler;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use http::Method;

use apikey_core::admin::{LeakReports, SelfRotation};

use crate::{ApiKeyLayer, ApiKeyState, Auth};

/// An axum router whose every route declares its [`Auth`]. Build it with [`ApiRouter::build`].
pub struct ApiRouter<S = ()> {
    keys: ApiKeyState,
    router: Router<S>,
    routes: Vec<RouteInfo>,
    /// The paths of the routes added here (axum's syntax), and those with an `OPTIONS` route.
    own_paths: Vec<String>,
    options_paths: Vec<String>,
    #[cfg(feature = "openapi")]
    doc: Option<utoipa::openapi::OpenApi>,
}

/// A built [`ApiRouter`]: the router (the [`ApiKeyLayer`] on it) and its route inventory.
pub struct ApiApp<S = ()> {
    router: Router<S>,
    inventory: RouteInventory,
    #[cfg(feature = "openapi")]
    doc: Option<utoipa::openapi::OpenApi>,
}

/// `require_route_auth` is on and routes do not say who may call them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnguardedRoutes(pub String);

impl fmt::Display for UnguardedRoutes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "apikey: {}", self.0)
    }
}

impl std::error::Error for UnguardedRoutes {}

/// An axum path as the inventory writes paths, in Rocket's syntax so that both adapters list
/// alike: `{id}` → `<id>`, `{*rest}` → `<rest..>`.
fn listed(path: &str) -> String {
    path.split('/')
        .map(
            |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => match name.strip_prefix('*') {
                    Some(rest) => format!("<{rest}..>"),
                    None => format!("<{name}>"),
                },
                None => segment.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// The name of a handler that is a function (`my_service`), as the inventory shows it; `None`
/// for a closure.
fn handler_name<H>() -> Option<&'static str> {
    let full = std::any::type_name::<H>();
    let name = full.rsplit("::").next()?;
    let plain = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    plain.then_some(name)
}

fn filter(method: &Method) -> Option<MethodFilter> {
    Some(match *method {
        Method::GET => MethodFilter::GET,
        Method::POST => MethodFilter::POST,
        Method::PUT => MethodFilter::PUT,
        Method::PATCH => MethodFilter::PATCH,
        Method::DELETE => MethodFilter::DELETE,
        Method::HEAD => MethodFilter::HEAD,
        Method::OPTIONS => MethodFilter::OPTIONS,
        Method::TRACE => MethodFilter::TRACE,
        _ => return None,
    })
}

/// `methods` guarded by `auth`, carrying `keys` (the route needs no `ApiKeyLayer`: one apikey
/// service per request).
fn guard<S>(keys: &ApiKeyState, auth: &Auth, methods: MethodRouter<S>) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    methods.route_layer(auth.clone().carrying(keys))
}

/// A CORS preflight's answer where no route answers `OPTIONS` (204 with the key header among
/// the allowed headers); any other request there: 405 (an `OPTIONS` that is no preflight), or
/// 404 (the router's fallback).
fn preflight_answer(
    keys: &ApiKeyState,
    req: &axum::extract::Request,
    otherwise: http::StatusCode,
) -> axum::response::Response {
    let mut res = axum::response::Response::new(axum::body::Body::empty());
    *res.status_mut() = otherwise;
    if let Some(preflight) = crate::layer::preflight(req) {
        crate::layer::allow_key_header(keys, preflight, &mut res);
    }
    res
}

/// `ApiRouter::route` for one method, as a method of its own.
macro_rules! by_method {
    ($($(#[$doc:meta])* $name:ident $method:ident,)*) => {$(
        $(#[$doc])*
        pub fn $name<H, T>(self, path: &str, auth: Auth, handler: H) -> Self
        where
            H: Handler<T, S>,
            T: 'static,
        {
            self.route(Method::$method, path, auth, handler)
        }
    )*};
}

impl<S> ApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    /// An empty router verifying with `keys`.
    pub fn new(keys: &ApiKeyState) -> Self {
        ApiRouter {
            keys: keys.clone(),
            router: Router::new(),
            routes: Vec::new(),
            own_paths: Vec::new(),
            options_paths: Vec::new(),
            #[cfg(feature = "openapi")]
            doc: None,
        }
    }

    /// Notes a path routed here (`options`: with its own `OPTIONS` route).
    fn own(&mut self, path: &str, options: bool) {
        self.own_paths.push(path.to_owned());
        if options {
            self.options_paths.push(path.to_owned());
        }
    }

    fn declare(&mut self, method: &str, path: &str, name: Option<&str>, auth: &Auth) {
        self.declare_as(
            method,
            path,
            name,
            auth.mode(),
            (auth.group_names(), auth.scope_names()),
            None,
        );
    }

    fn declare_as(
        &mut self,
        method: &str,
        path: &str,
        name: Option<&str>,
        mode: RouteAuth,
        (groups, scopes): (&[String], &[String]),
        guard: Option<&str>,
    ) {
        self.routes.push(RouteInfo {
            method: method.to_owned(),
            path: listed(path),
            name: name.map(str::to_owned),
            auth: mode,
            groups: groups.to_vec(),
            scopes: scopes.to_vec(),
            guard: guard.map(str::to_owned),
        });
    }

    /// `handler` for `method` at `path`, called only as `auth` allows.
    ///
    /// # Panics
    /// As axum's `Router::route` does: a path it refuses, or a method already routed there; and
    /// on a method axum cannot route by (an extension method).
    pub fn route<H, T>(mut self, method: Method, path: &str, auth: Auth, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        let Some(filter) = filter(&method) else {
            panic!("apikey: axum cannot route by the method {method}");
        };
        let name = handler_name::<H>();
        self.declare(method.as_str(), path, name, &auth);
        self.own(path, method == Method::OPTIONS);
        self.router = self
            .router
            .route(path, guard(&self.keys, &auth, on(filter, handler)));
        self
    }

    by_method! {
        /// `handler` for `GET` at `path` (axum answers `HEAD` with it too), called only as
        /// `auth` allows.
        get GET,
        /// `handler` for `POST` at `path`, called only as `auth` allows.
        post POST,
        /// `handler` for `PUT` at `path`, called only as `auth` allows.
        put PUT,
        /// `handler` for `PATCH` at `path`, called only as `auth` allows.
        patch PATCH,
        /// `handler` for `DELETE` at `path`, called only as `auth` allows.
        delete DELETE,
    }

    /// `service` at `path` for the methods of `methods`, checking who may call it itself
    /// (apikey's opt-in routes, a route with a guard of the service's own): listed as `custom`
    /// with `guard`, the name of what checks.
    pub fn custom(
        mut self,
        methods: &[Method],
        path: &str,
        guard: &str,
        service: MethodRouter<S, Infallible>,
    ) -> Self {
        self.own(path, methods.contains(&Method::OPTIONS));
        for method in methods {
            self.declare_as(
                method.as_str(),
                path,
                None,
                RouteAuth::Custom,
                (&[], &[]),
                Some(guard),
            );
        }
        let carried = Auth::none().carrying(&self.keys);
        self.router = self.router.route(path, service.route_layer(carried));
        self
    }

    /// Keys rotating themselves ([`crate::rotation`]): `POST path`, a valid key required (the
    /// one that rotates).
    pub fn self_rotation(mut self, path: &str, rotation: SelfRotation) -> Self {
        self.declare("POST", path, Some("rotate"), &Auth::api_key());
        self.own(path, false);
        let carried = Auth::none().carrying(&self.keys);
        let route = crate::rotation::route(rotation).route_layer(carried);
        self.router = self.router.route(path, route);
        self
    }

    /// Leak reports of secret scanners ([`crate::leaks`]): `POST path`, no key (reports are
    /// signed).
    pub fn leak_reports(mut self, path: &str, leaks: LeakReports) -> Self {
        self.declare("POST", path, Some("report"), &Auth::none());
        self.own(path, false);
        let carried = Auth::none().carrying(&self.keys);
        let route = crate::leaks::route(leaks).route_layer(carried);
        self.router = self.router.route(path, route);
        self
    }

    /// Merges `router`, whose routes say nothing of keys, listing the routes it brings
    /// (`(method, path)`, axum's or Rocket's path syntax) as `unguarded`.
    pub fn merge_unguarded<R>(mut self, routes: &[(Method, &str)], router: R) -> Self
    where
        R: Into<Router<S>>,
    {
        for (method, path) in routes {
            self.declare_as(
                method.as_str(),
                path,
                None,
                RouteAuth::Unguarded,
                (&[], &[]),
                None,
            );
        }
        let router: Router<S> = router.into();
        self.router = self
            .router
            .merge(router.layer(ApiKeyLayer::new(self.keys.clone())));
        self
    }

    /// The admin page ([`crate::admin::router`]) nested at `path` (`/admin`), its routes listed
    /// as Rocket lists them: `custom` (the admin session) but for its two static files.
    #[cfg(feature = "admin")]
    #[cfg_attr(docsrs, doc(cfg(feature = "admin")))]
    pub fn admin(mut self, path: &str, admin: Router<S>) -> Self {
        use apikey_core::http::admin::{ROUTES, SESSION_GUARD};
        let base = path.trim_end_matches('/');
        for r in ROUTES {
            let guard = (r.auth == RouteAuth::Custom).then_some(SESSION_GUARD);
            self.declare_as(
                r.method,
                &r.under(base),
                Some(r.name),
                r.auth,
                (&[], &[]),
                guard,
            );
        }
        self.router = self.router.nest(base, admin);
        self
    }

    /// The management API ([`crate::manage`]) nested at `path` (`/apikey/keys`), its routes
    /// listed (`api_key`, in the admin group) and, with a document, described in it.
    #[cfg(feature = "manage")]
    #[cfg_attr(docsrs, doc(cfg(feature = "manage")))]
    pub fn manage(mut self, path: &str, app: crate::manage::Manage) -> Self {
        use apikey_core::http::manage::ROUTES;
        let base = path.trim_end_matches('/');
        let group = [app.group().to_owned()];
        for r in ROUTES {
            self.declare_as(
                r.method,
                &r.under(base),
                Some(r.name),
                r.auth,
                (&group, &[]),
                None,
            );
        }
        #[cfg(feature = "openapi")]
        if let Some(doc) = &mut self.doc {
            apikey_core::http::manage::describe(doc, base, app.group());
        }
        let carried = Auth::api_key().carrying(&self.keys);
        self.router = self.router.nest(base, crate::manage::routes(app, carried));
        self
    }

    /// Starts from the OpenAPI document `doc` (`ApiDoc::openapi()`): the operations of
    /// [`ApiRouter::routes`] go in it, and [`ApiApp::openapi`] gives it with apikey's schemes,
    /// security, groups and problem responses.
    #[cfg(feature = "openapi")]
    #[cfg_attr(docsrs, doc(cfg(feature = "openapi")))]
    pub fn with_openapi(mut self, doc: utoipa::openapi::OpenApi) -> Self {
        self.doc = Some(doc);
        self
    }

    /// The handlers of `utoipa_axum::routes!(…)`, at the paths and for the methods their
    /// `#[utoipa::path]` says, called only as `auth` allows; their operations are marked so and
    /// added to the document (see [`ApiRouter::with_openapi`]).
    #[cfg(feature = "openapi")]
    #[cfg_attr(docsrs, doc(cfg(feature = "openapi")))]
    pub fn routes(
        mut self,
        auth: Auth,
        routes: utoipa_axum::router::UtoipaMethodRouter<S>,
    ) -> Self {
        use apikey_core::http::openapi::{mark, operations};
        let (schemas, mut paths, methods) = routes;
        let methods = guard(&self.keys, &auth, methods);
        for (path, item) in paths.paths.iter_mut() {
            for (method, operation) in operations(item) {
                mark(
                    operation,
                    auth.mode(),
                    auth.group_names(),
                    auth.scope_names(),
                );
                let name = operation.operation_id.clone();
                self.declare(method, path, name.as_deref(), &auth);
                self.own_paths.push(path.clone());
                if method == "OPTIONS" {
                    self.options_paths.push(path.clone());
                }
            }
            self.router = self.router.route(path, methods.clone());
        }
        let doc = self.doc.get_or_insert_with(Default::default);
        doc.components
            .get_or_insert_with(Default::default)
            .schemas
            .extend(schemas);
        doc.paths.paths.extend(paths.paths);
        self
    }

    /// The built router and its inventory, each route carrying the state (no [`ApiKeyLayer`]
    /// needed; CORS preflights answered as the layer answers them); `Err` when
    /// `require_route_auth` is on and a merged route's path is not in `allow_unguarded`.
    pub fn build(self) -> Result<ApiApp<S>, UnguardedRoutes> {
        let inventory = RouteInventory {
            routes: self.routes,
        }
        .sorted();
        let (require, allowed) = self.keys.route_rules();
        inventory
            .check(
                require,
                allowed,
                "ApiRouter's route, get, post, … (an Auth each)",
            )
            .map_err(UnguardedRoutes)?;
        apikey_core::__event!(info, "apikey: routes: {}", inventory.summary());
        // CORS preflights need no key: where no route answers `OPTIONS`, a preflight gets 204
        // with the key header allowed (what the `ApiKeyLayer` does for a whole router).
        let mut router = self.router;
        let mut done: Vec<&str> = Vec::new();
        for path in &self.own_paths {
            if done.contains(&path.as_str()) || self.options_paths.contains(path) {
                continue;
            }
            done.push(path);
            let keys = self.keys.clone();
            router = router.route(
                path,
                on(MethodFilter::OPTIONS, move |req: axum::extract::Request| {
                    let res = preflight_answer(&keys, &req, http::StatusCode::METHOD_NOT_ALLOWED);
                    async move { res }
                }),
            );
        }
        let keys = self.keys.clone();
        let router = router.fallback(move |req: axum::extract::Request| {
            let res = preflight_answer(&keys, &req, http::StatusCode::NOT_FOUND);
            async move { res }
        });
        Ok(ApiApp {
            #[cfg(feature = "openapi")]
            doc: self.doc.map(|mut doc| {
                crate::openapi::ApiKeyDocs::for_state(&self.keys).apply(&mut doc);
                doc
            }),
            router,
            inventory,
        })
    }
}

impl<S: Clone + Send + Sync + 'static> ApiApp<S> {
    /// The OpenAPI document of [`ApiRouter::with_openapi`] and [`ApiRouter::routes`], with
    /// apikey's schemes, each operation's security, groups and problem responses.
    #[cfg(feature = "openapi")]
    #[cfg_attr(docsrs, doc(cfg(feature = "openapi")))]
    pub fn openapi(&self) -> Option<&utoipa::openapi::OpenApi> {
        self.doc.as_ref()
    }

    /// Every route and who may call it, sorted by path then method: snapshot-test it to review
    /// a service's exposure (the demo does).
    pub fn inventory(&self) -> &RouteInventory {
        &self.inventory
    }

    /// `layer` around every route (an `Extension`, tracing, compression): the routes stay as
    /// declared.
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: tower_layer::Layer<axum::routing::Route> + Clone + Send + Sync + 'static,
        L::Service: tower_service::Service<axum::extract::Request> + Clone + Send + Sync + 'static,
        <L::Service as tower_service::Service<axum::extract::Request>>::Response:
            axum::response::IntoResponse + 'static,
        <L::Service as tower_service::Service<axum::extract::Request>>::Error:
            Into<Infallible> + 'static,
        <L::Service as tower_service::Service<axum::extract::Request>>::Future: Send + 'static,
    {
        self.router = self.router.layer(layer);
        self
    }

    /// Provides the state the routes' handlers extract (axum's `Router::with_state`): the
    /// routes and the inventory stay as they are.
    pub fn with_state<S2>(self, state: S) -> ApiApp<S2> {
        ApiApp {
            router: self.router.with_state(state),
            inventory: self.inventory,
            #[cfg(feature = "openapi")]
            doc: self.doc,
        }
    }

    /// The router, to serve (or to add to: what is added now is not in the inventory).
    pub fn into_router(self) -> Router<S> {
        self.router
    }
}
