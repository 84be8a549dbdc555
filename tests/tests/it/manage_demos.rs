//! Keys a team owns, on both demos as real processes on real sockets: the management API at
//! `/apikey/keys` (every call, who may make it, its problems), scopes on `POST /orders` (the
//! key's wildcards, the 403 body), metadata handed to the handler, and the same answers byte
//! for byte from Rocket and axum.

use std::path::Path;

use apikey_tests::demo::{printed_key, Demo, Raw, Server};
use serde_json::{json, Value};

use crate::{AXUM, ROCKET};

on_both_demos!(
    scopes_and_metadata_reach_the_handler,
    every_management_call,
    management_is_for_the_admin_group_only,
);

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", dir.join("keys.db").display())
}

/// A demo on a new store: its admin key and its demo key.
fn first_start(demo: Demo) -> (tempfile::TempDir, Server, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(demo, dir.path(), &sqlite_url(dir.path()), &[]);
    let out = server.output();
    let admin = printed_key(&out, "Created an admin key");
    let key = printed_key(&out, "Created the demo API key");
    (dir, server, admin, key)
}

fn call(server: &Server, key: &str, method: &str, path: &str, body: Option<Value>) -> Raw {
    let header = format!("API-KEY: {key}").into_bytes();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let json = b"Content-Type: application/json".to_vec();
    server
        .send(method, path, &[&header, &json], body.as_bytes())
        .unwrap_or_else(|| panic!("{method} {path}: no answer"))
}

/// Creates a key through the management API; its secret.
fn create(server: &Server, admin: &str, body: Value) -> String {
    let res = call(server, admin, "POST", "/apikey/keys", Some(body));
    assert_eq!(res.status, 201, "{}", res.text());
    res.json()["key"].as_str().unwrap().to_owned()
}

fn orders(server: &Server, key: &str) -> Raw {
    call(server, key, "POST", "/orders", None)
}

fn scopes_and_metadata_reach_the_handler(demo: Demo) {
    let (_dir, server, admin, demo_key) = first_start(demo);
    // The demo key holds `orders:*`.
    let res = orders(&server, &demo_key);
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json(), json!({"user": "demo", "key": "demo"}));

    let writer = create(
        &server,
        &admin,
        json!({"name": "writer", "user": "w", "scopes": ["orders:write"],
               "meta": {"plan": "pro", "customer": "c-42"}}),
    );
    let res = orders(&server, &writer);
    assert_eq!(res.status, 200, "{}", res.text());
    // The plan comes with the identity: no store query on the request.
    assert_eq!(
        res.json(),
        json!({"user": "w", "key": "writer", "plan": "pro"})
    );
    let queries = || server.get("/stats", &[]).unwrap().json()["store_queries"].clone();
    // The change feed may still echo the key's creation for a few milliseconds (and drop
    // the entry once): warm the cache after it has.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(orders(&server, &writer).status, 200);
    let before = queries();
    for _ in 0..3 {
        assert_eq!(orders(&server, &writer).json()["plan"], "pro");
    }
    assert_eq!(queries(), before, "metadata is cached with the identity");
    for (name, scopes, allowed) in [
        ("star", json!(["*"]), true),
        ("nested", json!(["orders:write:*"]), false),
        ("reader", json!(["orders:read"]), false),
        ("near", json!(["ordersx:*"]), false),
        ("nothing", json!([]), false),
    ] {
        let key = create(
            &server,
            &admin,
            json!({"name": name, "user": "u", "scopes": scopes}),
        );
        let res = orders(&server, &key);
        if allowed {
            assert_eq!(res.status, 200, "{name}: {}", res.text());
        } else {
            assert_eq!(res.status, 403, "{name}: {}", res.text());
            assert_eq!(res.header("content-type"), Some("application/problem+json"));
            assert_eq!(
                res.json(),
                json!({
                    "type": "about:blank",
                    "title": "Forbidden",
                    "status": 403,
                    "detail": "Missing scope: the API key lacks a scope this resource needs \
                               (the operation's security requirement lists them)."
                }),
                "{name}"
            );
        }
    }
    // A scope given later counts on the next request; a key's groups are not scopes.
    let res = call(
        &server,
        &admin,
        "PATCH",
        "/apikey/keys/reader",
        Some(json!({"scopes": ["orders:read", "orders:write"]})),
    );
    assert_eq!(res.status, 200, "{}", res.text());
    let reader = create(
        &server,
        &admin,
        json!({"name": "billing only", "user": "u", "groups": ["orders:write"]}),
    );
    assert_eq!(orders(&server, &reader).status, 403);

    // The OpenAPI document lists the scopes: the extension and the security requirement.
    let doc = server.get("/openapi.json", &[]).unwrap().json();
    let op = &doc["paths"]["/orders"]["post"];
    assert_eq!(op["x-apikey-scopes"], json!(["orders:write"]));
    assert_eq!(op["security"], json!([{"ApiKey": ["orders:write"]}]));
    assert!(op["responses"]["403"].is_object(), "{op}");
}

fn names(res: &Raw) -> Vec<String> {
    res.json()["keys"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", res.text()))
        .iter()
        .map(|k| k["name"].as_str().unwrap().to_owned())
        .collect()
}

fn every_management_call(demo: Demo) {
    let (_dir, server, admin, demo_key) = first_start(demo);
    let res = call(
        &server,
        &admin,
        "POST",
        "/apikey/keys",
        Some(json!({
            "name": "Shop Backend", "user": "alice", "groups": ["billing"],
            "scopes": ["orders:write"], "expires_in": "3d", "rate_limit": "100/1m",
            "quota": "1000/1d", "allow_ip": ["127.0.0.0/8"], "description": "the shop",
            "meta": {"plan": "pro"}
        })),
    );
    assert_eq!(res.status, 201, "{}", res.text());
    assert_eq!(res.header("cache-control"), Some("no-store"));
    assert_eq!(res.header("content-type"), Some("application/json"));
    assert_eq!(res.header("location"), Some("/apikey/keys/shop_backend"));
    let created = res.json();
    let shop = created["key"].as_str().unwrap().to_owned();
    assert!(shop.starts_with("ak_"), "{created}");
    assert_eq!(created["tech_name"], "shop_backend");
    assert_eq!(created["status"], "active");
    assert_eq!(created["rate_limit"], "100/1m");
    assert_eq!(created["meta"], json!({"plan": "pro"}));
    assert_eq!(orders(&server, &shop).status, 200);

    // Show never holds a secret; list filters.
    let res = call(&server, &admin, "GET", "/apikey/keys/shop_backend", None);
    assert_eq!(res.status, 200);
    assert!(res.json().get("key").is_none(), "{}", res.text());
    assert!(!res.text().contains(&shop));
    assert_eq!(res.header("cache-control"), Some("no-store"));
    let all = call(&server, &admin, "GET", "/apikey/keys", None);
    assert_eq!(names(&all), ["Shop Backend", "admin", "demo"]);
    let by_user = call(&server, &admin, "GET", "/apikey/keys?user=alice", None);
    assert_eq!(names(&by_user), ["Shop Backend"]);
    let by_group = call(&server, &admin, "GET", "/apikey/keys?group=billing", None);
    assert_eq!(names(&by_group), ["Shop Backend", "demo"]);
    let expiring = call(&server, &admin, "GET", "/apikey/keys?expiring=14d", None);
    assert_eq!(names(&expiring), ["Shop Backend"]);
    let res = call(&server, &admin, "GET", "/apikey/keys?usr=alice", None);
    assert_eq!(
        res.status,
        400,
        "an unknown filter is refused: {}",
        res.text()
    );
    assert_eq!(res.header("content-type"), Some("application/problem+json"));

    // PATCH: several fields in one change; null clears; a past expiry is refused.
    let res = call(
        &server,
        &admin,
        "PATCH",
        "/apikey/keys/shop_backend",
        Some(
            json!({"expires_at": null, "description": null, "rate_limit": null, "user": "alice.b",
                    "meta": {"plan": "enterprise", "tier": "2"}}),
        ),
    );
    assert_eq!(res.status, 200, "{}", res.text());
    let edited = res.json();
    assert!(edited["expires_at"].is_null() && edited["description"].is_null());
    assert!(edited["rate_limit"].is_null());
    assert_eq!(edited["meta"], json!({"plan": "enterprise", "tier": "2"}));
    assert_eq!(
        orders(&server, &shop).json(),
        json!({"user": "alice.b", "key": "Shop Backend", "plan": "enterprise"})
    );
    for (body, status) in [
        (json!({"expires_at": "2001-01-01T00:00:00Z"}), 400),
        (json!({"expires_in": "5000000d"}), 400),
        (json!({"scopes": ["orders:"]}), 400),
        (json!({"colour": "red"}), 400),
        (json!({}), 400),
    ] {
        let res = call(
            &server,
            &admin,
            "PATCH",
            "/apikey/keys/shop_backend",
            Some(body.clone()),
        );
        assert_eq!(res.status, status, "{body}: {}", res.text());
        assert_eq!(res.header("content-type"), Some("application/problem+json"));
    }
    let res = server
        .send(
            "POST",
            "/apikey/keys",
            &[format!("API-KEY: {admin}").as_bytes()],
            b"{not json",
        )
        .unwrap();
    assert_eq!(res.status, 400, "{}", res.text());
    let res = call(
        &server,
        &admin,
        "POST",
        "/apikey/keys",
        Some(json!({"name": "shop backend", "user": "x"})),
    );
    assert_eq!(res.status, 409, "a taken tech name: {}", res.text());

    // Revoke, activate, rotate (the new key once; the old one stops), usage, delete.
    let res = call(
        &server,
        &admin,
        "POST",
        "/apikey/keys/shop_backend/revoke",
        None,
    );
    assert_eq!(res.json()["status"], "revoked");
    assert_eq!(orders(&server, &shop).status, 401);
    let res = call(
        &server,
        &admin,
        "POST",
        "/apikey/keys/shop_backend/activate",
        None,
    );
    assert_eq!(res.json()["status"], "active");
    assert_eq!(orders(&server, &shop).status, 200);
    let res = call(
        &server,
        &admin,
        "POST",
        "/apikey/keys/shop_backend/rotate",
        None,
    );
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.header("cache-control"), Some("no-store"));
    let rotated = res.json()["key"].as_str().unwrap().to_owned();
    assert_ne!(rotated, shop);
    assert_eq!(orders(&server, &shop).status, 401);
    assert_eq!(orders(&server, &rotated).status, 200);
    let res = call(
        &server,
        &admin,
        "GET",
        "/apikey/keys/shop_backend/usage?days=7",
        None,
    );
    assert_eq!(res.status, 200, "{}", res.text());
    let usage = res.json();
    assert_eq!(usage["tech_name"], "shop_backend");
    assert_eq!(usage["quota"]["quota"], "1000/1day");
    let res = call(&server, &admin, "DELETE", "/apikey/keys/shop_backend", None);
    assert_eq!(res.status, 204);
    assert!(res.body.is_empty());
    let res = call(&server, &admin, "GET", "/apikey/keys/shop_backend", None);
    assert_eq!(res.status, 404);
    assert_eq!(res.header("content-type"), Some("application/problem+json"));
    assert_eq!(orders(&server, &rotated).status, 401);
    for path in ["/apikey/keys/nope/revoke", "/apikey/keys/nope/rotate"] {
        assert_eq!(
            call(&server, &admin, "POST", path, None).status,
            404,
            "{path}"
        );
    }

    // Every change is audited as made by the calling key.
    let dir = tempfile::tempdir().unwrap();
    let audit = apikey_tests::run_apikey(
        env!("CARGO_BIN_EXE_apikey-under-test"),
        dir.path(),
        &sqlite_url(_dir.path()),
        &[],
        &["audit", "Shop Backend", "--json"],
    );
    let trail = apikey_tests::json_output(&audit);
    let actions: Vec<(&str, &str)> = trail
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["actor"].as_str().unwrap(), e["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [
            ("key:admin", "create"),
            ("key:admin", "set"),
            ("key:admin", "revoke"),
            ("key:admin", "activate"),
            ("key:admin", "rotate"),
            ("key:admin", "delete"),
        ]
    );
    // The demo key works on as ever.
    assert_eq!(orders(&server, &demo_key).status, 200);
}

fn management_is_for_the_admin_group_only(demo: Demo) {
    let (_dir, server, admin, demo_key) = first_start(demo);
    // A valid key outside the admin group: the 403 of any route's groups, nothing done.
    let forbidden = call(&server, &demo_key, "GET", "/apikey/keys", None);
    assert_eq!(forbidden.status, 403);
    let billing = call(&server, &admin, "POST", "/billing", None);
    assert_eq!(billing.status, 403);
    assert_eq!(
        forbidden.body, billing.body,
        "the same refusal as any group's"
    );
    let res = call(
        &server,
        &demo_key,
        "POST",
        "/apikey/keys",
        Some(json!({"name": "mine", "user": "demo", "groups": ["apikey-admin"]})),
    );
    assert_eq!(res.status, 403);
    // No key, a bad key: the 401s of every route.
    let none = server.get("/apikey/keys", &[]).unwrap();
    assert_eq!(none.status, 401);
    assert_eq!(none.body, server.get("/my_service", &[]).unwrap().body);
    let bad = call(&server, "ak_nope", "DELETE", "/apikey/keys/demo", None);
    assert_eq!(bad.status, 401);
    let names = names(&call(&server, &admin, "GET", "/apikey/keys", None));
    assert_eq!(names, ["admin", "demo"], "nothing was created or deleted");
}

/// What a call answered: its status, the headers that matter, the body as compared.
type Seen = (u16, Vec<(String, String)>, Vec<u8>);

/// Both demos answer every management call the same, byte for byte where nothing differs
/// by nature (a key's secret, its times).
#[test]
fn both_demos_answer_the_same() {
    let runs: Vec<Vec<Seen>> = [ROCKET, AXUM]
        .into_iter()
        .map(|demo| {
            let (_dir, server, admin, demo_key) = first_start(demo);
            let mut seen = Vec::new();
            let mut keep = |res: Raw| {
                let mut headers: Vec<(String, String)> = res
                    .headers
                    .iter()
                    .filter(|(n, _)| {
                        matches!(
                            n.as_str(),
                            "content-type" | "cache-control" | "location" | "allow"
                        )
                    })
                    .cloned()
                    .collect();
                headers.sort();
                let mut body: Value = serde_json::from_slice(&res.body).unwrap_or(Value::Null);
                for k in ["key", "created_at", "last_used_at", "expires_at", "stub"] {
                    if let Some(map) = body.as_object_mut() {
                        map.remove(k);
                    }
                }
                seen.push((res.status, headers, body.to_string().into_bytes()));
            };
            keep(call(
                &server,
                &admin,
                "POST",
                "/apikey/keys",
                Some(
                    json!({"name": "same", "user": "u", "scopes": ["orders:write"],
                            "meta": {"plan": "pro"}, "description": "one"}),
                ),
            ));
            keep(call(&server, &admin, "GET", "/apikey/keys/same", None));
            keep(call(
                &server,
                &admin,
                "PATCH",
                "/apikey/keys/same",
                Some(json!({"meta": {"plan": null}})),
            ));
            keep(call(
                &server,
                &admin,
                "GET",
                "/apikey/keys?revoked=maybe",
                None,
            ));
            keep(call(&server, &admin, "GET", "/apikey/keys/missing", None));
            keep(call(&server, &admin, "DELETE", "/apikey/keys/same", None));
            keep(call(&server, &demo_key, "GET", "/apikey/keys", None));
            keep(call(&server, "ak_nope", "GET", "/apikey/keys", None));
            seen
        })
        .collect();
    for (i, (rocket, axum)) in runs[0].iter().zip(&runs[1]).enumerate() {
        assert_eq!(
            rocket,
            axum,
            "call {i}: {} vs {}",
            String::from_utf8_lossy(&rocket.2),
            String::from_utf8_lossy(&axum.2)
        );
    }
}
