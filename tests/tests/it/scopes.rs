//! Scopes on Rocket's `#[route]`: all of a route's scopes, covered by the key's own or its
//! wildcards, checked after the groups, with metadata handed to the handler; the compile-time
//! rule of `#[route(scopes)]` and the run-time rule of the core agree.

use std::sync::Arc;

use apikey_core::model::{check_required_scope, Meta};
use apikey_core::{CreateKey, MemoryStore, SharedStore};
use apikey_rocket::{route, ApiKey, Caller};
use apikey_tests::{api_key, client, create_key, rocket_with, spec};
use rocket::http::Status;

#[route(POST, "/orders", scopes = ["orders:write", "invoices:read"])]
fn all_orders(caller: &Caller) -> String {
    caller.meta("plan").unwrap_or("-").to_owned()
}

#[route(POST, "/billing-orders", groups = ["billing"], scopes = ["orders:write"])]
fn billing_orders(caller: &Caller) -> String {
    caller.key_name().to_owned()
}

#[route("/reports", auth = "public", scopes = ["reports:read"])]
fn reports(caller: Option<&Caller>) -> String {
    caller.map_or_else(|| "nobody".to_owned(), |c| c.user().to_owned())
}

#[rocket::async_test]
async fn all_of_a_routes_scopes_with_the_keys_wildcards() {
    let store: SharedStore = Arc::new(MemoryStore::new());
    let mut keys = std::collections::HashMap::new();
    for (name, scopes, groups) in [
        (
            "both",
            &["orders:write", "invoices:read"][..],
            &["billing"][..],
        ),
        ("one", &["orders:write"], &["billing"]),
        ("wild", &["orders:*", "invoices:*"], &[]),
        ("star", &["*"], &["billing"]),
        ("none", &[], &["billing"]),
    ] {
        let key = create_key(
            &store,
            CreateKey {
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                meta: Meta::new([("plan", format!("{name}-plan"))]).unwrap(),
                ..spec(name, name, groups)
            },
        )
        .await;
        keys.insert(name, key.expose().to_owned());
    }
    let client = client(
        rocket_with("")
            .attach(ApiKey::with_store(store.clone()))
            .mount("/", rocket::routes![all_orders, billing_orders, reports]),
    )
    .await;
    let post = |uri: &'static str, key: String| {
        let client = &client;
        async move {
            let res = client.post(uri).header(api_key(&key)).dispatch().await;
            (res.status(), res.into_string().await.unwrap_or_default())
        }
    };
    for (name, orders, billing) in [
        ("both", Status::Ok, Status::Ok),
        ("one", Status::Forbidden, Status::Ok),
        ("wild", Status::Ok, Status::Forbidden),
        ("star", Status::Ok, Status::Ok),
        ("none", Status::Forbidden, Status::Forbidden),
    ] {
        let (status, body) = post("/orders", keys[name].clone()).await;
        assert_eq!(status, orders, "{name}: {body}");
        if status == Status::Ok {
            assert_eq!(body, format!("{name}-plan"), "metadata in the handler");
        } else {
            assert!(body.contains("Missing scope"), "{name}: {body}");
        }
        let (status, body) = post("/billing-orders", keys[name].clone()).await;
        assert_eq!(status, billing, "{name}: {body}");
    }
    // Outside the groups: the groups' refusal, whatever the scopes.
    let (_, body) = post("/billing-orders", keys["wild"].clone()).await;
    assert!(body.contains("not allowed to use"), "{body}");
    // A public route: no key passes; a key without the scope does not.
    let res = client.get("/reports").dispatch().await;
    assert_eq!(res.status(), Status::Ok);
    let res = client
        .get("/reports")
        .header(api_key(&keys["one"]))
        .dispatch()
        .await;
    assert_eq!(res.status(), Status::Forbidden);
    let res = client
        .get("/reports")
        .header(api_key(&keys["star"]))
        .dispatch()
        .await;
    assert_eq!(res.status(), Status::Ok);
    // The inventory lists every route's scopes.
    let inventory = apikey_rocket::route_inventory(client.rocket());
    let listed = inventory
        .routes
        .iter()
        .find(|r| r.path == "/orders")
        .unwrap();
    assert_eq!(listed.scopes, ["orders:write", "invoices:read"]);
}

/// What `#[route(scopes = …)]` refuses at compile time is exactly what the core refuses at run
/// time (`Auth::scopes` on axum).
#[test]
fn the_compile_time_and_run_time_rules_agree() {
    let long = "a".repeat(129);
    let cases = [
        "orders:write",
        "orders",
        "a.b-c_d:E9",
        "orders:",
        ":orders",
        "orders::write",
        "orders:*",
        "*",
        "*:read",
        "orders write",
        "orders/write",
        "ördres:write",
        "",
        &long,
        "orders:write\n",
    ];
    for scope in cases {
        assert_eq!(
            apikey_codegen::required_scope(scope).is_ok(),
            check_required_scope(scope).is_ok(),
            "{scope:?}"
        );
    }
}

/// A config section's scopes and metadata are the key's: its own (no stored key), or in place
/// of those of the stored key of its tech name.
#[rocket::async_test]
async fn config_sections_give_scopes_and_metadata() {
    let store: SharedStore = Arc::new(MemoryStore::new());
    create_key(
        &store,
        CreateKey {
            scopes: vec!["orders:read".into()],
            meta: Meta::new([("plan", "stored")]).unwrap(),
            ..spec("Stored One", "s", &[])
        },
    )
    .await;
    let toml = r#"
        [default.api_key_from_config]
        key = "a-key-from-the-config-file"
        user = "cfg"
        scopes = ["orders:*"]
        meta = { plan = "configured" }

        [default.api_key_stored_one]
        key = "the-stored-ones-configured-key"
        scopes = ["orders:write", "invoices:read"]
    "#;
    let client = client(
        rocket_with(toml)
            .attach(ApiKey::with_store(store.clone()))
            .mount("/", rocket::routes![all_orders]),
    )
    .await;
    let post = |key: &'static str| {
        let client = &client;
        async move {
            let res = client.post("/orders").header(api_key(key)).dispatch().await;
            (res.status(), res.into_string().await.unwrap_or_default())
        }
    };
    // `orders:*` covers `orders:write` but not `invoices:read`.
    assert_eq!(
        post("a-key-from-the-config-file").await.0,
        Status::Forbidden
    );
    // The section's scopes replace the stored key's; its metadata stays the stored one's.
    assert_eq!(
        post("the-stored-ones-configured-key").await,
        (Status::Ok, "stored".to_owned())
    );
}
