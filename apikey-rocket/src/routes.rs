//! Who may call each route: every `#[route]` registers how it is guarded, and the inventory of a
//! Rocket instance lists every mounted route with it (plain Rocket routes as unguarded).

use rocket::Rocket;
use serde::Serialize;

pub use apikey_core::http::RouteAuth;

/// One `#[route]` as declared, registered at compile time (generated code; not public API).
#[doc(hidden)]
#[derive(Debug)]
pub struct Declared {
    /// The handler's name.
    pub name: &'static str,
    /// The method, upper case.
    pub method: &'static str,
    /// The path as written.
    pub path: &'static str,
    /// The auth mode.
    pub auth: RouteAuth,
    /// The route's groups.
    pub groups: &'static [&'static str],
    /// The custom guard's type, as written.
    pub guard: Option<&'static str>,
}

::inventory::collect!(Declared);

/// One mounted route and who may call it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteInfo {
    /// The method (`GET`, …).
    pub method: String,
    /// The full path, mount point included (`/api/items/<id>`).
    pub path: String,
    /// The handler's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// How it is guarded.
    pub auth: RouteAuth,
    /// The groups a key must be in (any of them); empty: every valid key.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// The guard type of `auth = path::Guard`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guard: Option<String>,
}

/// Every mounted route of a Rocket instance and who may call it, sorted by path then method.
/// Serialize it to snapshot-test a service's exposure (see the README).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RouteInventory {
    /// The routes.
    pub routes: Vec<RouteInfo>,
}

impl RouteInventory {
    /// How many routes are guarded so.
    pub fn count(&self, auth: RouteAuth) -> usize {
        self.routes.iter().filter(|r| r.auth == auth).count()
    }

    /// The one-line summary logged at liftoff.
    pub fn summary(&self) -> String {
        format!(
            "{} api_key, {} public, {} none, {} custom, {} unguarded",
            self.count(RouteAuth::ApiKey),
            self.count(RouteAuth::Public),
            self.count(RouteAuth::None),
            self.count(RouteAuth::Custom),
            self.count(RouteAuth::Unguarded),
        )
    }

    /// The unguarded routes whose path is not in `allowed`.
    pub fn unguarded_except<'a>(&'a self, allowed: &'a [String]) -> Vec<&'a RouteInfo> {
        self.routes
            .iter()
            .filter(|r| r.auth == RouteAuth::Unguarded && !allowed.contains(&r.path))
            .collect()
    }
}

/// The inventory of `rocket`'s mounted routes.
pub fn route_inventory<P: rocket::Phase>(rocket: &Rocket<P>) -> RouteInventory {
    let mut routes: Vec<RouteInfo> = rocket
        .routes()
        .map(|route| {
            let name = route.name.as_deref();
            let method = route.method.as_str();
            let unmounted = route.uri.unmounted_origin.to_string();
            let declared = ::inventory::iter::<Declared>()
                .find(|d| Some(d.name) == name && d.method == method && d.path == unmounted);
            #[cfg(feature = "admin")]
            let declared = declared.or_else(|| admin_route(name, method, &unmounted));
            RouteInfo {
                method: method.to_owned(),
                path: route.uri.to_string(),
                name: name.map(str::to_owned),
                auth: declared.map_or(RouteAuth::Unguarded, |d| d.auth),
                groups: declared
                    .map(|d| d.groups.iter().map(|g| (*g).to_owned()).collect())
                    .unwrap_or_default(),
                guard: declared.and_then(|d| d.guard).map(str::to_owned),
            }
        })
        .collect();
    routes.sort_by(|a, b| (&a.path, &a.method).cmp(&(&b.path, &b.method)));
    RouteInventory { routes }
}

/// The admin page's routes (`apikey_core::http::admin::ROUTES`): they check their own session
/// (`custom`), except the two static files (`none`).
#[cfg(feature = "admin")]
fn admin_route(name: Option<&str>, method: &str, path: &str) -> Option<&'static Declared> {
    use apikey_core::http::admin::{ROUTES, SESSION_GUARD};
    static DECLARED: std::sync::OnceLock<Vec<Declared>> = std::sync::OnceLock::new();
    let all = DECLARED.get_or_init(|| {
        ROUTES
            .iter()
            .map(|r| Declared {
                name: r.name,
                method: r.method,
                path: r.path,
                auth: r.auth,
                groups: &[],
                guard: (r.auth == RouteAuth::Custom).then_some(SESSION_GUARD),
            })
            .collect()
    });
    all.iter()
        .find(|d| Some(d.name) == name && d.method == method && d.path == path)
}
