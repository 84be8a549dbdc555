//! The route inventory: every mounted route and who may call it, and `require_route_auth`.

use std::sync::Arc;

use apikey_core::MemoryStore;
use apikey_rocket::{route, route_inventory, ApiKey, Caller, RouteAuth, RouteInventory};
use apikey_tests::rocket_with;
use rocket::local::asynchronous::Client;
use rocket::request::{FromRequest, Outcome};
use rocket::{get, routes, Request};

#[route("/key")]
fn keyed(caller: &Caller) -> String {
    caller.user().to_owned()
}

#[route(POST, "/billing/<id>", groups = ["billing", "admin"])]
fn billing(id: u32) -> String {
    id.to_string()
}

#[route("/maybe", auth = "public", groups = ["reader"])]
fn maybe() -> &'static str {
    "maybe"
}

#[route("/health", auth = "none")]
fn health() -> &'static str {
    "ok"
}

struct Staff;

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Staff {
    type Error = ();
    async fn from_request(_: &'r Request<'_>) -> Outcome<Self, ()> {
        Outcome::Success(Staff)
    }
}

#[route("/staff", auth = Staff)]
fn staff() -> &'static str {
    "staff"
}

#[get("/plain")]
fn plain() -> &'static str {
    "plain"
}

#[get("/metrics")]
fn metrics() -> &'static str {
    "metrics"
}

fn app(toml: &str) -> rocket::Rocket<rocket::Build> {
    rocket_with(toml)
        .attach(ApiKey::with_store(Arc::new(MemoryStore::new())))
        .mount("/", routes![keyed, maybe, health, staff, plain, metrics])
        .mount("/api", routes![billing])
}

#[test]
fn every_route_says_who_may_call_it() {
    let inventory = route_inventory(&app(""));
    let rows: Vec<(&str, &str, RouteAuth, Vec<&str>)> = inventory
        .routes
        .iter()
        .map(|r| {
            let groups = r.groups.iter().map(String::as_str).collect();
            (r.method.as_str(), r.path.as_str(), r.auth, groups)
        })
        .collect();
    assert_eq!(
        rows,
        [
            (
                "POST",
                "/api/billing/<id>",
                RouteAuth::ApiKey,
                vec!["billing", "admin"]
            ),
            ("GET", "/health", RouteAuth::None, vec![]),
            ("GET", "/key", RouteAuth::ApiKey, vec![]),
            ("GET", "/maybe", RouteAuth::Public, vec!["reader"]),
            ("GET", "/metrics", RouteAuth::Unguarded, vec![]),
            ("GET", "/plain", RouteAuth::Unguarded, vec![]),
            ("GET", "/staff", RouteAuth::Custom, vec![]),
        ]
    );
    let staff = inventory
        .routes
        .iter()
        .find(|r| r.path == "/staff")
        .unwrap();
    assert_eq!(staff.guard.as_deref(), Some("Staff"));
    assert_eq!(
        inventory.summary(),
        "2 api_key, 1 public, 1 none, 1 custom, 2 unguarded"
    );
    let json = serde_json::to_value(&inventory).unwrap();
    assert_eq!(json["routes"][0]["auth"], "api_key");
    assert_eq!(json["routes"][0]["groups"][1], "admin");
    assert_eq!(json["routes"][4]["auth"], "unguarded");
}

#[tokio::test]
async fn require_route_auth_refuses_to_launch_with_an_unguarded_route() {
    let strict = "[default.apikey]\nrequire_route_auth = true\n";
    let err = Client::tracked(app(strict)).await.map(|_| ()).unwrap_err();
    assert!(
        matches!(err.kind(), rocket::error::ErrorKind::FailedFairings(_)),
        "{err:?}"
    );
    let partly = format!("{strict}allow_unguarded = [\"/plain\"]\n");
    let err = Client::tracked(app(&partly)).await.map(|_| ()).unwrap_err();
    assert!(
        matches!(err.kind(), rocket::error::ErrorKind::FailedFairings(_)),
        "/metrics is still open"
    );
    let allowed = format!("{strict}allow_unguarded = [\"/plain\", \"/metrics\"]\n");
    let client = Client::tracked(app(&allowed)).await.expect("launches");
    let state = client
        .rocket()
        .state::<apikey_rocket::ApiKeyState>()
        .unwrap();
    assert_eq!(state.routes().count(RouteAuth::Unguarded), 2);
    // Off by default.
    assert!(Client::tracked(app("")).await.is_ok());
}

#[test]
fn an_empty_service_has_an_empty_inventory() {
    assert_eq!(route_inventory(&rocket_with("")), RouteInventory::default());
}
