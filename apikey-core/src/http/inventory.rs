//! Who may call each route of a service: the listing both adapters give (Rocket's
//! `route_inventory`, axum's `ApiRouter`), and the `require_route_auth` check on it.

use serde::Serialize;

use super::RouteAuth;

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
    /// The scopes a key must hold (all of them); empty: none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// The guard type of `auth = path::Guard`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guard: Option<String>,
}

/// Every route of a service and who may call it, sorted by path then method.
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

    /// With `require_route_auth` (`require`), every route must be declared, or its path be
    /// listed in `allow_unguarded` (`allowed`); `Err` lists the others and says how to declare
    /// them (`how`: "#[route(…, auth = …)]" on Rocket).
    pub fn check(&self, require: bool, allowed: &[String], how: &str) -> Result<(), String> {
        if !require {
            return Ok(());
        }
        let open = self.unguarded_except(allowed);
        if open.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = open
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        Err(format!(
            "require_route_auth is on and these routes do not say who may call them: {}; \
             declare them with {how} or list their paths in allow_unguarded",
            list.join(", ")
        ))
    }

    /// Sorted by path, then method: the order both adapters list routes in.
    pub fn sorted(mut self) -> Self {
        self.routes
            .sort_by(|a, b| (&a.path, &a.method).cmp(&(&b.path, &b.method)));
        self
    }
}
