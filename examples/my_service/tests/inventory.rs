//! The demo's routes and who may call each, held against the reviewed snapshot in
//! `tests/inventory.json`: CI fails when a route becomes public, loses a group or appears
//! unguarded. After a deliberate change, review the diff and refresh the snapshot with
//! `UPDATE_INVENTORY=1 cargo test -p my-service --test inventory`.

use rocket::figment::providers::{Format, Toml};

#[tokio::test]
async fn the_route_inventory_is_the_reviewed_one() {
    let figment = rocket::Config::figment()
        .merge(Toml::string("[default.apikey]\ndatabase_url = \"memory:\"\n").nested());
    let (rocket, _) = my_service::app(rocket::custom(figment)).await.unwrap();
    let inventory = apikey_rocket::route_inventory(&rocket);
    apikey_demo_kit::check_inventory(&inventory, env!("CARGO_MANIFEST_DIR"), "my-service");
}
