//! The demo's routes and who may call each, held against the reviewed snapshot in
//! `tests/inventory.json`: CI fails when a route becomes public, loses a group or appears
//! unguarded. After a deliberate change, review the diff and refresh the snapshot with
//! `UPDATE_INVENTORY=1 cargo test -p axum-service --test inventory`.

use apikey_axum::core::ApiKeyConfig;
use figment::providers::{Format, Toml};
use figment::Figment;

#[tokio::test]
async fn the_route_inventory_is_the_reviewed_one() {
    let figment = Figment::new().merge(Toml::string(
        "[apikey]\ndatabase_url = \"memory:\"\nrequire_route_auth = true\n\
         allow_unguarded = [\"/docs\", \"/docs/<rest..>\"]\n",
    ));
    let config = ApiKeyConfig::from_figment(&figment).unwrap();
    let (app, _, _) = axum_service::app(config).await.unwrap();
    apikey_demo_kit::check_inventory(app.inventory(), env!("CARGO_MANIFEST_DIR"), "axum-service");
}

/// With `require_route_auth`, the demo's Swagger UI (merged from utoipa, declaring nothing)
/// must be allowed by path: without that, building the router fails and names it.
#[tokio::test]
async fn require_route_auth_refuses_undeclared_routes() {
    let figment = Figment::new().merge(Toml::string(
        "[apikey]\ndatabase_url = \"memory:\"\nrequire_route_auth = true\n",
    ));
    let config = ApiKeyConfig::from_figment(&figment).unwrap();
    let Err(e) = axum_service::app(config).await else {
        panic!("an undeclared route was accepted");
    };
    let message = e.to_string();
    assert!(message.contains("require_route_auth"), "{message}");
    assert!(message.contains("GET /docs/<rest..>"), "{message}");
    assert!(message.contains("allow_unguarded"), "{message}");
}
