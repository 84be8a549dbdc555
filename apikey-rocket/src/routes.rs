//! Who may call each route: every `#[route]` registers how it is guarded, and the inventory of a
//! Rocket instance lists every mounted route with it (plain Rocket routes as unguarded).

use rocket::Rocket;

pub use apikey_core::http::inventory::{RouteInfo, RouteInventory};
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
    /// The route's scopes.
    pub scopes: &'static [&'static str],
    /// The custom guard's type, as written.
    pub guard: Option<&'static str>,
}

::inventory::collect!(Declared);

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
            #[cfg(feature = "manage")]
            let declared = declared.or_else(|| manage_route(name, method, &unmounted));
            #[cfg_attr(not(feature = "manage"), allow(unused_mut))]
            let mut info = RouteInfo {
                method: method.to_owned(),
                path: route.uri.to_string(),
                name: name.map(str::to_owned),
                auth: declared.map_or(RouteAuth::Unguarded, |d| d.auth),
                groups: declared
                    .map(|d| d.groups.iter().map(|g| (*g).to_owned()).collect())
                    .unwrap_or_default(),
                scopes: declared
                    .map(|d| d.scopes.iter().map(|s| (*s).to_owned()).collect())
                    .unwrap_or_default(),
                guard: declared.and_then(|d| d.guard).map(str::to_owned),
            };
            // The management API's routes need a key in the admin group, a setting.
            #[cfg(feature = "manage")]
            if let Some(app) = rocket.state::<apikey_core::http::manage::ManageApp>() {
                if declared.is_some_and(|d| manage_route(Some(d.name), d.method, d.path).is_some())
                {
                    info.groups = vec![app.group().to_owned()];
                }
            }
            info
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
            .map(app_route)
            .map(|d| Declared {
                guard: (d.auth == RouteAuth::Custom).then_some(SESSION_GUARD),
                ..d
            })
            .collect()
    });
    find(all, name, method, path)
}

/// A route of one of the core's apps, as the inventory declares it.
#[cfg(any(feature = "admin", feature = "manage"))]
fn app_route(r: &apikey_core::http::AppRoute) -> Declared {
    Declared {
        name: r.name,
        method: r.method,
        path: r.path,
        auth: r.auth,
        groups: &[],
        scopes: &[],
        guard: None,
    }
}

/// The route of `declared` with this name, method and path.
#[cfg(any(feature = "admin", feature = "manage"))]
fn find(
    declared: &'static [Declared],
    name: Option<&str>,
    method: &str,
    path: &str,
) -> Option<&'static Declared> {
    declared
        .iter()
        .find(|d| Some(d.name) == name && d.method == method && d.path == path)
}

/// The management API's routes (`apikey_core::http::manage::ROUTES`): a valid key (in the
/// admin group, which [`route_inventory`] adds from the app's settings).
#[cfg(feature = "manage")]
fn manage_route(name: Option<&str>, method: &str, path: &str) -> Option<&'static Declared> {
    use apikey_core::http::manage::ROUTES;
    static DECLARED: std::sync::OnceLock<Vec<Declared>> = std::sync::OnceLock::new();
    let all = DECLARED.get_or_init(|| ROUTES.iter().map(app_route).collect());
    find(all, name, method, path)
}
