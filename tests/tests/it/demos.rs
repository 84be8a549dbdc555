//! The end-to-end suite both demos must pass, unchanged: `my-service` (Rocket) and
//! `axum-service` (axum) as real processes on real sockets, real config files and environment
//! variables, checked on the bytes they send. Every check runs once per demo (`rocket::…`,
//! `axum::…`); `both_demos_answer_byte_for_byte` runs them side by side on one store.

use std::path::Path;
use std::time::Duration;

use apikey_core::{open, ApiKeyConfig, CreateKey, KeyManager, Secret, Settings};
use apikey_tests::demo::{printed_key, Demo, Framework, Raw, Server};
use apikey_tests::{json_output, run_apikey, PgDatabase};

use crate::{AXUM, ROCKET};

on_both_demos!(
    a_first_start_prints_a_key_and_a_curl_line_that_works,
    routes_answer_as_the_spec_says,
    every_invalid_key_gets_one_body,
    limits_answer_429_with_retry_after,
    bearer_keys_when_accepted,
    sunset_on_keys_that_end_soon,
    preflights_need_no_key,
    openapi_says_who_may_call_what,
    swagger_ui_is_served,
    config_file_sections_and_header_name,
    a_key_made_by_another_process_works_on_the_next_request,
    a_dead_store_is_503_never_200,
    ready_says_what_is_missing,
    a_service_role_without_ddl_rights_suffices,
    no_key_in_anything_printed,
    non_utf8_key_values_never_give_more_than_no_key,
    limits_hold_across_two_processes,
    metrics_are_scraped,
    a_bad_configuration_stops_the_demo_with_a_message,
    keys_bound_to_networks,
    forwarding_headers_count_from_trusted_proxies_only,
    keys_rotate_themselves,
    self_rotation_cannot_be_hijacked,
    clients_see_their_limits,
    leaked_keys_reported_by_a_scanner,
    leak_reports_are_cheap_to_refuse_and_never_replayed,
);

/// The keys every check can use, on a SQLite file made before the demo starts (so the demo
/// prints no key of its own).
struct Keys {
    url: String,
    robot: Secret,
    plain: Secret,
    limited: Secret,
    metered: Secret,
    soon: Secret,
    revoked: Secret,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", dir.join("keys.db").display())
}

async fn manager(url: &str) -> KeyManager {
    let settings = Settings {
        database_url: url.to_owned(),
        ..Settings::default()
    };
    KeyManager::new(open(&settings).await.unwrap(), &ApiKeyConfig::default())
}

fn key(name: &str, groups: &[&str]) -> CreateKey {
    CreateKey {
        name: name.into(),
        user: name.into(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        ..CreateKey::default()
    }
}

fn seeded(dir: &Path) -> Keys {
    let url = sqlite_url(dir);
    runtime().block_on(async {
        let m = manager(&url).await;
        let create = async |spec: CreateKey| m.create(spec).await.unwrap().1;
        let robot = create(key("robot", &["billing"])).await;
        let plain = create(key("plain", &[])).await;
        let limited = create(CreateKey {
            rate_limit: Some("2/1h".parse().unwrap()),
            ..key("limited", &[])
        })
        .await;
        let metered = create(CreateKey {
            quota: Some("1/1d".parse().unwrap()),
            ..key("metered", &[])
        })
        .await;
        let soon = create(CreateKey {
            expires_in: Some(Duration::from_secs(2 * 86_400)),
            ..key("soon", &[])
        })
        .await;
        let revoked = create(key("revoked", &[])).await;
        m.revoke("revoked").await.unwrap();
        Keys {
            url: url.clone(),
            robot,
            plain,
            limited,
            metered,
            soon,
            revoked,
        }
    })
}

/// A demo started on a store holding [`Keys`], in a directory of its own (removed when dropped).
fn started(demo: Demo, env: &[(&str, &str)]) -> (tempfile::TempDir, Keys, Server) {
    let dir = tempfile::tempdir().unwrap();
    let keys = seeded(dir.path());
    let server = Server::start(demo, dir.path(), &keys.url, env);
    (dir, keys, server)
}

fn header(name: &str, value: &str) -> Vec<u8> {
    format!("{name}: {value}").into_bytes()
}

fn api_key(key: &str) -> Vec<u8> {
    header("API-KEY", key)
}

/// The one body every invalid key gets (and the one a missing key gets), byte for byte.
const INVALID: &str = r#"{"type":"about:blank","title":"Unauthorized","status":401,"detail":"The API key in the API-KEY header is not valid."}"#;
const MISSING: &str = r#"{"type":"about:blank","title":"Unauthorized","status":401,"detail":"This resource needs an API key in the API-KEY header."}"#;
const FORBIDDEN: &str = r#"{"type":"about:blank","title":"Forbidden","status":403,"detail":"The API key is not allowed to use this resource."}"#;
const ADDRESS: &str = r#"{"type":"about:blank","title":"Forbidden","status":403,"detail":"Address not allowed: the API key may not be used from this address."}"#;
const UNAVAILABLE: &str = r#"{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"API keys cannot be checked right now; try again later."}"#;

fn assert_problem(res: &Option<Raw>, status: u16, body: &str) {
    let res = res.as_ref().expect("an answer");
    assert_eq!(res.status, status, "{}", res.text());
    assert_eq!(res.header("content-type"), Some("application/problem+json"));
    assert_eq!(res.text(), body);
}

fn a_first_start_prints_a_key_and_a_curl_line_that_works(demo: Demo) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(demo, dir.path(), &sqlite_url(dir.path()), &[]);
    let out = server.output();
    let file = std::path::absolute(dir.path().join("keys.db")).unwrap();
    let line = format!(
        "apikey: the key store is the SQLite file {}",
        file.display()
    );
    assert!(out.contains(&line), "the store's path is not in:\n{out}");
    let key = printed_key(&out, "Created the demo API key (shown once, store it now):");
    let curl = format!(
        "curl -H 'API-KEY: {key}' http://127.0.0.1:{}/my_service",
        server.port
    );
    assert!(out.contains(&curl), "no ready curl line in:\n{out}");
    let res = server.get("/my_service", &[&api_key(&key)]).unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(res.text(), r#"{"user":"demo","key":"demo"}"#);
    let billing = server
        .send("POST", "/billing", &[&api_key(&key)], b"")
        .unwrap();
    assert_eq!(billing.status, 200, "the demo key is in group billing");
    drop(server);
    // A second start on the same store prints no key.
    let again = Server::start(demo, dir.path(), &sqlite_url(dir.path()), &[]);
    std::thread::sleep(Duration::from_millis(200));
    assert!(!again.output().contains("Created the demo API key"));
}

fn routes_answer_as_the_spec_says(demo: Demo) {
    let (_dir, keys, server) = started(demo, &[]);
    let robot = api_key(keys.robot.expose());
    let plain = api_key(keys.plain.expose());

    let health = server.get("/health", &[]).unwrap();
    assert_eq!((health.status, health.text().as_str()), (200, "ok"));
    let health = server.get("/health", &[&api_key("not a key")]).unwrap();
    assert_eq!(health.status, 200, "auth = none never looks at the key");

    let ok = server.get("/my_service", &[&robot]).unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("content-type"), Some("application/json"));
    assert_eq!(ok.text(), r#"{"user":"robot","key":"robot"}"#);
    let missing = server.get("/my_service", &[]);
    assert_problem(&missing, 401, MISSING);
    assert_eq!(
        missing.unwrap().header("www-authenticate"),
        Some(r#"ApiKey header="API-KEY""#)
    );
    assert_problem(&server.get("/my_service", &[&api_key("")]), 401, MISSING);

    let anonymous = server.get("/whoami", &[]).unwrap();
    assert_eq!(anonymous.text(), r#"{"user":null,"groups":[]}"#);
    let known = server.get("/whoami", &[&robot]).unwrap();
    assert_eq!(known.text(), r#"{"user":"robot","groups":["billing"]}"#);
    assert_problem(&server.get("/whoami", &[&api_key("wrong")]), 401, INVALID);

    let billing = server.send("POST", "/billing", &[&robot], b"").unwrap();
    assert_eq!(billing.text(), r#"{"user":"robot","key":"robot"}"#);
    assert_problem(
        &server.send("POST", "/billing", &[&plain], b""),
        403,
        FORBIDDEN,
    );
    assert_problem(&server.send("POST", "/billing", &[], b""), 401, MISSING);

    let stats = server.get("/stats", &[]).unwrap().json();
    for field in [
        "store_queries",
        "filtered",
        "cached_keys",
        "feed_live",
        "limits",
    ] {
        assert!(stats.get(field).is_some(), "/stats has {field}: {stats}");
    }
    assert_eq!(stats["feed_live"], true);
}

fn every_invalid_key_gets_one_body(demo: Demo) {
    let (_dir, keys, server) = started(demo, &[]);
    let robot = keys.robot.expose();
    let mut bad_sum = robot.to_owned();
    bad_sum.replace_range(robot.len() - 6.., "000000");
    let unknown_generated = "ak_0000000000000000000000000000000000000000000000000000";
    let cases: Vec<Vec<Vec<u8>>> = vec![
        vec![api_key("never-stored-free-form-key-0123456789")],
        vec![api_key(&bad_sum)],
        vec![api_key(unknown_generated)],
        vec![api_key(keys.revoked.expose())],
        vec![api_key(robot), api_key(robot)],
        vec![api_key(robot), api_key("other")],
        vec![api_key(&format!("{robot}x"))],
    ];
    for case in cases {
        let headers: Vec<&[u8]> = case.iter().map(Vec::as_slice).collect();
        let res = server.get("/my_service", &headers);
        assert_problem(&res, 401, INVALID);
        assert_eq!(
            res.unwrap().header("www-authenticate"),
            Some(r#"ApiKey header="API-KEY""#)
        );
    }
    // Only SP/HTAB around a value are trimmed; the header name is case-insensitive.
    let padded = format!("api-key: \t{robot} ").into_bytes();
    assert_eq!(server.get("/my_service", &[&padded]).unwrap().status, 200);
}

fn limits_answer_429_with_retry_after(demo: Demo) {
    let (_dir, keys, server) = started(demo, &[]);
    let limited = api_key(keys.limited.expose());
    let statuses: Vec<u16> = (0..3)
        .map(|_| server.get("/my_service", &[&limited]).unwrap().status)
        .collect();
    assert_eq!(statuses, [200, 200, 429], "a limit of 2 an hour");
    let refused = server.get("/my_service", &[&limited]).unwrap();
    assert_eq!(
        refused.header("content-type"),
        Some("application/problem+json")
    );
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry), "Retry-After {retry}");
    assert!(refused.text().contains("rate limit"), "{}", refused.text());

    let metered = api_key(keys.metered.expose());
    assert_eq!(server.get("/my_service", &[&metered]).unwrap().status, 200);
    let exhausted = server.get("/my_service", &[&metered]).unwrap();
    assert_eq!(exhausted.status, 429);
    assert!(exhausted.text().contains("Quota exhausted"));
    let retry: u64 = exhausted.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry), "Retry-After {retry}");
}

fn bearer_keys_when_accepted(demo: Demo) {
    let dir = tempfile::tempdir().unwrap();
    let keys = seeded(dir.path());
    let robot = keys.robot.expose();
    let bearer = header("Authorization", &format!("Bearer {robot}"));
    let off = Server::start(demo, dir.path(), &keys.url, &[]);
    assert_problem(&off.get("/my_service", &[&bearer]), 401, MISSING);
    drop(off);
    let on = Server::start(
        demo,
        dir.path(),
        &keys.url,
        &[("APIKEY_ACCEPT_BEARER", "true")],
    );
    assert_eq!(on.get("/my_service", &[&bearer]).unwrap().status, 200);
    let both = on.get("/my_service", &[&bearer, &api_key(robot)]);
    assert_problem(&both, 401, INVALID);
    assert_eq!(
        both.unwrap().header("www-authenticate"),
        Some(r#"ApiKey header="API-KEY", Bearer"#)
    );
}

fn sunset_on_keys_that_end_soon(demo: Demo) {
    let (_dir, keys, server) = started(demo, &[]);
    let soon = server
        .get("/my_service", &[&api_key(keys.soon.expose())])
        .unwrap();
    assert_eq!(soon.status, 200);
    let sunset = soon.header("sunset").expect("a Sunset header");
    assert!(sunset.ends_with(" GMT") && sunset.len() == 29, "{sunset}");
    let robot = server
        .get("/my_service", &[&api_key(keys.robot.expose())])
        .unwrap();
    assert_eq!(robot.header("sunset"), None);
}

fn preflights_need_no_key(demo: Demo) {
    let (_dir, _keys, server) = started(demo, &[]);
    for path in ["/my_service", "/billing"] {
        let res = server
            .send(
                "OPTIONS",
                path,
                &[
                    b"Origin: https://app.example",
                    b"Access-Control-Request-Method: GET",
                    b"Access-Control-Request-Headers: content-type",
                ],
                b"",
            )
            .unwrap();
        assert_eq!(res.status, 204, "{path}");
        assert_eq!(
            res.header("access-control-allow-headers"),
            Some("content-type, API-KEY")
        );
    }
}

fn openapi_says_who_may_call_what(demo: Demo) {
    let (_dir, _keys, server) = started(demo, &[]);
    let doc = server.get("/openapi.json", &[]).unwrap().json();
    assert_eq!(
        doc["components"]["securitySchemes"]["ApiKey"],
        serde_json::json!({"type": "apiKey", "in": "header", "name": "API-KEY"})
    );
    let op = |method: &str, path: &str| doc["paths"][path][method].clone();
    let required = serde_json::json!([{ "ApiKey": [] }]);
    let optional = serde_json::json!([{}, { "ApiKey": [] }]);
    let open = serde_json::json!([{}]);
    assert_eq!(op("get", "/my_service")["security"], required);
    assert_eq!(op("post", "/billing")["security"], required);
    assert_eq!(
        op("post", "/billing")["x-apikey-groups"],
        serde_json::json!(["billing"])
    );
    assert!(op("post", "/billing")["responses"]["403"].is_object());
    assert!(op("get", "/my_service")["responses"]["401"].is_object());
    assert_eq!(op("get", "/whoami")["security"], optional);
    for path in ["/health", "/stats", "/openapi.json"] {
        assert_eq!(op("get", path)["security"], open, "{path}");
    }
}

fn swagger_ui_is_served(demo: Demo) {
    let (_dir, _keys, server) = started(demo, &[]);
    let page = server.get("/docs/", &[]).unwrap();
    assert_eq!(page.status, 200);
    assert!(page.text().contains("swagger-ui"), "{}", page.text());
    let init = server.get("/docs/swagger-initializer.js", &[]).unwrap();
    assert_eq!(init.status, 200);
    assert!(init.text().contains("/openapi.json"), "{}", init.text());
    let script = server.get("/docs/swagger-ui-bundle.js", &[]).unwrap();
    assert_eq!(script.status, 200, "the vendored assets are in the binary");
    assert!(script.body.len() > 100_000);
}

fn config_file_sections_and_header_name(demo: Demo) {
    let dir = tempfile::tempdir().unwrap();
    let keys = seeded(dir.path());
    std::fs::write(
        dir.path().join("apikeys.toml"),
        "[apikey]\nheader = \"X-Token\"\n\n\
         [api_key_partner]\nkey = \"partner-secret-0123456789\"\nuser = \"partner\"\n",
    )
    .unwrap();
    let server = Server::start(demo, dir.path(), &keys.url, &[]);
    let partner = header("X-Token", "partner-secret-0123456789");
    let res = server.get("/my_service", &[&partner]).unwrap();
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.text(), r#"{"user":"partner","key":"partner"}"#);
    let robot = server
        .get("/my_service", &[&header("x-token", keys.robot.expose())])
        .unwrap();
    assert_eq!(robot.status, 200);
    let old = server.get("/my_service", &[&api_key(keys.robot.expose())]);
    let old = old.unwrap();
    assert_eq!(old.status, 401);
    assert_eq!(
        old.header("www-authenticate"),
        Some(r#"ApiKey header="X-Token""#)
    );
    assert!(old.text().contains("X-Token header"));
    drop(server);

    // Odoo's own config file, as it is (server_environment sections, values verbatim).
    let odoo = dir.path().join("odoo.conf");
    std::fs::write(
        &odoo,
        "[options]\ndb_name = prod\n\n[api_key_erp]\nkey = erp_secret_key_0123456789\nuser = erp\n",
    )
    .unwrap();
    let odoo = odoo.display().to_string();
    let server = Server::start(
        demo,
        dir.path(),
        &keys.url,
        &[("APIKEY_CONFIG", odoo.as_str())],
    );
    let erp = server
        .get("/my_service", &[&api_key("erp_secret_key_0123456789")])
        .unwrap();
    assert_eq!(erp.status, 200, "{}", erp.text());
    assert_eq!(erp.text(), r#"{"user":"erp","key":"erp"}"#);
}

fn a_key_made_by_another_process_works_on_the_next_request(demo: Demo) {
    let (_dir, keys, server) = started(demo, &[]);
    let rt = runtime();
    let m = rt.block_on(manager(&keys.url));
    let (_, fresh) = rt.block_on(m.create(key("fresh", &[]))).unwrap();
    let res = server
        .get("/my_service", &[&api_key(fresh.expose())])
        .unwrap();
    assert_eq!(res.status, 200, "a new key works on the first request");
    rt.block_on(m.revoke("fresh")).unwrap();
    // Another process' revocation reaches the demo through the store's change check (every
    // 5 ms on SQLite): within milliseconds, not before the revoking call returns.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let res = loop {
        let res = server.get("/my_service", &[&api_key(fresh.expose())]);
        if res.as_ref().is_some_and(|r| r.status == 401) || std::time::Instant::now() > deadline {
            break res;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_problem(&res, 401, INVALID);
}

/// A demo on a fresh PostgreSQL database reached through a proxy the test can turn into a black
/// hole (the proxy's tasks run on `rt`'s workers while the test talks to the demo); `None`
/// without a PostgreSQL server.
struct Behind {
    rt: tokio::runtime::Runtime,
    db: apikey_tests::PgDatabase,
    proxy: apikey_tests::BlackHoleProxy,
    server: Server,
    _dir: tempfile::TempDir,
}

fn behind_a_proxy(demo: Demo, name: &str) -> Option<Behind> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = rt.block_on(apikey_tests::PgDatabase::create(name)) else {
        eprintln!("skipped: {} is not set", apikey_tests::POSTGRES_ENV);
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let proxy = rt.block_on(apikey_tests::BlackHoleProxy::start(
        &apikey_tests::authority(&db.url),
    ));
    let url = apikey_tests::through(&db.url, proxy.port);
    let heartbeat = [("APIKEY_FEED_HEARTBEAT", "200ms")];
    let server = Server::start(demo, dir.path(), &url, &heartbeat);
    Some(Behind {
        rt,
        db,
        proxy,
        server,
        _dir: dir,
    })
}

fn a_dead_store_is_503_never_200(demo: Demo) {
    let Some(Behind {
        rt,
        db,
        proxy,
        server,
        _dir,
    }) = behind_a_proxy(demo, "demo503")
    else {
        return;
    };
    let key = printed_key(&server.output(), "Created the demo API key");
    assert_eq!(
        server.get("/my_service", &[&api_key(&key)]).unwrap().status,
        200
    );
    proxy.black_hole();
    // The feed goes quiet; within two heartbeats and a store timeout the answer is 503.
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    loop {
        if let Some(res) = server.get("/my_service", &[&api_key(&key)]) {
            assert_ne!(res.status, 401, "a dead store never says the key is bad");
            if res.status == 503 {
                assert_problem(&Some(res), 503, UNAVAILABLE);
                break;
            }
        }
        assert!(std::time::Instant::now() < deadline, "never 503");
        std::thread::sleep(Duration::from_millis(250));
    }
    drop(server);
    proxy.heal();
    rt.block_on(db.drop());
}

/// `GET /ready` (issue "production-shaped stores", item 5): 200 `{"ready":true}` on a healthy
/// instance, no key needed; through a PostgreSQL store behind a proxy turned into a black
/// hole, 503 naming what is missing (the store, the feed), nothing of keys; 200 again once the
/// proxy heals. On SQLite it is ready from the start.
fn ready_says_what_is_missing(demo: Demo) {
    let (_dir, _keys, server) = started(demo, &[]);
    let res = server.get("/ready", &[]).unwrap();
    assert_eq!(
        (res.status, res.text()),
        (200, r#"{"ready":true}"#.to_owned())
    );
    drop(server);

    let Some(Behind {
        rt,
        db,
        proxy,
        server,
        _dir,
    }) = behind_a_proxy(demo, "ready")
    else {
        return;
    };
    let ready = |server: &Server| {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let res = server.get("/ready", &[]).unwrap();
            if res.status == 200 || std::time::Instant::now() > deadline {
                return res;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    assert_eq!(ready(&server).status, 200);
    proxy.black_hole();
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    let down = loop {
        let res = server.get("/ready", &[]).unwrap();
        if res.status == 503 {
            break res;
        }
        assert!(std::time::Instant::now() < deadline, "never 503");
        std::thread::sleep(Duration::from_millis(250));
    };
    let body = down.json();
    assert_eq!(body["ready"], false);
    let missing: Vec<&str> = body["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert!(missing.contains(&"store"), "{missing:?}");
    assert!(missing
        .iter()
        .all(|m| ["store", "feed", "filter"].contains(m)));
    proxy.heal();
    assert_eq!(ready(&server).status, 200, "ready again");
    drop(server);
    rt.block_on(db.drop());
}

/// The GRANTs README and SECURITY give a service's database role: data rights on the `apikey`
/// schema's tables and sequences, no CREATE, no DDL. The schema is migrated by its owner
/// (`apikey migrate`); the demo then runs as the service role — seeding its keys, verifying,
/// answering `/ready` — with no "permission denied" anywhere in its output.
pub const SERVICE_GRANTS: &str = "GRANT USAGE ON SCHEMA apikey TO {role};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA apikey TO {role};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA apikey TO {role};";

fn a_service_role_without_ddl_rights_suffices(demo: Demo) {
    let rt = runtime();
    let Some(db) = rt.block_on(apikey_tests::PgDatabase::create("roles")) else {
        eprintln!("skipped: {} is not set", apikey_tests::POSTGRES_ENV);
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_apikey-under-test");
    let migrated = run_apikey(bin, dir.path(), &db.url, &[], &["migrate"]);
    assert!(migrated.status.success());
    // One role per database (roles are the server's, and tests run side by side).
    let role = format!("svc_{}", db.url.rsplit('/').next().unwrap());
    let grants = SERVICE_GRANTS.replace("{role}", &role);
    rt.block_on(db.run(&format!(
        "CREATE ROLE {role} LOGIN; \
         REVOKE CREATE ON SCHEMA public FROM PUBLIC; {grants}"
    )));
    // The same database, logged in as the service role.
    let (scheme, rest) = db.url.split_once("://").unwrap();
    let host = rest.split_once('@').map_or(rest, |(_, h)| h);
    let url = format!("{scheme}://{role}@{host}");
    // Rights are under test here, not latency: a loaded machine may take long to connect.
    let server = Server::start(
        demo,
        dir.path(),
        &url,
        &[
            ("APIKEY_AUTO_MIGRATE", "false"),
            ("APIKEY_POOL_TIMEOUT", "30s"),
        ],
    );
    let key = printed_key(&server.output(), "Created the demo API key");
    let served = server.get("/my_service", &[&api_key(&key)]).unwrap();
    assert_eq!(served.status, 200, "{}\n{}", served.text(), server.output());
    assert_eq!(server.get("/ready", &[]).unwrap().status, 200);
    let rotated = server
        .send("POST", "/apikey/rotate", &[&api_key(&key)], b"")
        .unwrap();
    assert_eq!(rotated.status, 200, "{}", rotated.text());
    let out = server.stop();
    assert!(!out.contains("permission denied"), "{out}");
    // Nothing it could not do was needed: the role still may not create anything.
    rt.block_on(db.run(&format!("DROP OWNED BY {role}; DROP ROLE {role}")));
    rt.block_on(db.drop());
}

fn no_key_in_anything_printed(demo: Demo) {
    let (_dir, keys, server) = started(
        demo,
        &[
            ("ROCKET_LOG_LEVEL", "debug"),
            ("RUST_LOG", "trace"),
            ("APIKEY_ACCEPT_BEARER", "true"),
        ],
    );
    let k = keys.robot.expose();
    let unknown = "never-stored-free-form-key-0123456789";
    let mut bad_sum = k.to_owned();
    bad_sum.replace_range(k.len() - 6.., "000000");
    for value in [k, unknown, bad_sum.as_str()] {
        server.get("/my_service", &[&api_key(value)]);
        server.get("/whoami", &[&api_key(value)]);
        server.get(
            "/my_service",
            &[&header("Authorization", &format!("Bearer {value}"))],
        );
    }
    let log = server.stop();
    for secret in [k, unknown, bad_sum.as_str()] {
        for window in [secret, &secret[3..19], &secret[secret.len() - 16..]] {
            assert!(!log.contains(window), "{window} is in the log:\n{log}");
        }
    }
    if demo.framework == Framework::Rocket {
        // Rocket's debug log prints raw headers: the fairing caps the level at info.
        assert!(
            log.contains("logging is limited to info"),
            "the server ran at debug level: {log}"
        );
    }
}

/// Rocket 0.5 drops a header value that is not UTF-8 before any guard runs (it counts as no
/// value); axum hands it on and apikey-axum refuses it as an invalid key. Either way it never
/// gives more than sending no key, and never someone else's identity.
fn non_utf8_key_values_never_give_more_than_no_key(demo: Demo) {
    let (_dir, keys, server) = started(demo, &[("ROCKET_LOG_LEVEL", "critical")]);
    let bad: &[u8] = b"API-KEY: \xff\xfe";
    let good = api_key(keys.robot.expose());
    let alone = server.get("/my_service", &[bad]);
    let both = server.get("/my_service", &[&good, bad]);
    let public = server.get("/whoami", &[bad]).unwrap();
    match demo.framework {
        Framework::Rocket => {
            assert_problem(&alone, 401, MISSING);
            assert_eq!(both.unwrap().text(), r#"{"user":"robot","key":"robot"}"#);
            assert_eq!(public.text(), r#"{"user":null,"groups":[]}"#);
        }
        Framework::Axum => {
            assert_problem(&alone, 401, INVALID);
            assert_problem(&both, 401, INVALID);
            assert_problem(&Some(public), 401, INVALID);
        }
    }
}

fn limits_hold_across_two_processes(demo: Demo) {
    let Ok(redis) = std::env::var(apikey_tests::REDIS_ENV) else {
        eprintln!("skipped: {} is not set", apikey_tests::REDIS_ENV);
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    let (limited, metered) = runtime().block_on(async {
        let m = manager(&url).await;
        let limited = CreateKey {
            rate_limit: Some("20/1h".parse().unwrap()),
            ..key("limited", &[])
        };
        let metered = CreateKey {
            quota: Some("10/1d".parse().unwrap()),
            ..key("metered", &[])
        };
        (
            m.create(limited).await.unwrap().1,
            m.create(metered).await.unwrap().1,
        )
    });
    let prefix = apikey_tests::unique_prefix();
    let env = [
        ("APIKEY_LIMITS_URL", redis.as_str()),
        ("APIKEY_LIMITS_PREFIX", prefix.as_str()),
        ("ROCKET_LOG_LEVEL", "critical"),
    ];
    let servers: Vec<Server> = ["a", "b"]
        .iter()
        .map(|d| {
            let d = dir.path().join(d);
            std::fs::create_dir_all(&d).unwrap();
            Server::start(demo, &d, &url, &env)
        })
        .collect();
    let h = api_key(limited.expose());
    let answers: Vec<u16> = (0..40)
        .map(|i| servers[i % 2].get("/my_service", &[&h]).unwrap().status)
        .collect();
    assert_eq!(
        answers.iter().filter(|s| **s == 200).count(),
        20,
        "a limit of 20 an hour admits 20 requests across both"
    );
    assert!(answers.iter().all(|s| *s == 200 || *s == 429));
    let h = api_key(metered.expose());
    let answers: Vec<Raw> = (0..16)
        .map(|i| servers[i % 2].get("/my_service", &[&h]).unwrap())
        .collect();
    let ok = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!(ok, 10, "a quota of 10 a day runs out across both");
    let refused = answers.iter().find(|a| a.status == 429).unwrap();
    assert!(refused.text().contains("Quota exhausted"));
    let retry: i64 = refused.header("retry-after").unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let midnight = 86_400 - now % 86_400;
    assert!(
        (retry - midnight).abs() <= 5,
        "Retry-After {retry} vs {midnight} to midnight UTC"
    );
    for server in &servers {
        let stats = server.get("/stats", &[]).unwrap().json();
        assert_eq!(stats["limits"]["rate_limits"], "redis", "{stats}");
    }
}

fn metrics_are_scraped(demo: Demo) {
    let (_dir, keys, server) = started(demo, &[]);
    server.get("/my_service", &[&api_key(keys.robot.expose())]);
    server.get("/my_service", &[&api_key("wrong")]);
    let res = server.get("/metrics", &[]).unwrap();
    assert_eq!(res.status, 200);
    assert!(res
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/plain")));
    let text = res.text();
    assert!(
        text.contains(r#"apikey_requests_total{outcome="valid"} 1"#),
        "{text}"
    );
    assert!(text.contains("apikey_requests_total{outcome="), "{text}");
}

fn a_bad_configuration_stops_the_demo_with_a_message(demo: Demo) {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    // What is wrong, the environment that says it, and a word the message must hold.
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 4] = [
        (
            "a port that is not one",
            &[("PORT", "nope"), ("ROCKET_PORT", "nope")],
            "port",
        ),
        (
            "a header name that cannot be one",
            &[("APIKEY_HEADER", "no spaces")],
            "header",
        ),
        ("a store URL nobody serves", &[], "nosuch"),
        (
            "a rate limit that is not one",
            &[("APIKEY_RATE_LIMIT", "lots")],
            "rate_limit",
        ),
    ];
    for (what, env, needle) in cases {
        let store = if needle == "nosuch" {
            "nosuch://x"
        } else {
            url.as_str()
        };
        let (status, out) = Server::spawn(demo, dir.path(), store, env).wait();
        assert!(!status.success(), "{what}: the demo started:\n{out}");
        assert!(
            out.to_lowercase().contains(needle),
            "{what}: no word of {needle:?} in:\n{out}"
        );
        assert!(!out.contains("panicked"), "{what}: {out}");
    }
}

/// The same requests to both demos on one store: the same status, apikey's headers and
/// refusal bodies, byte for byte.
/// Runs `check` on a SQLite file, then (when a server is configured) on a PostgreSQL database
/// of its own, named after `name`.
fn on_sqlite_and_postgres(demo: Demo, name: &str, check: fn(Demo, &Path, &str)) {
    let dir = tempfile::tempdir().unwrap();
    check(demo, dir.path(), &sqlite_url(dir.path()));
    let rt = runtime();
    if let Some(db) = rt.block_on(PgDatabase::create(name)) {
        check(demo, dir.path(), &db.url);
        rt.block_on(db.drop());
    }
}

/// Keys bound to networks, administered with the CLI, on SQLite and (when configured)
/// PostgreSQL: accepted from inside their networks only, refused with 403 after verification
/// (an unknown key stays 401), never on a spoofed proxy header the service does not trust.
fn keys_bound_to_networks(demo: Demo) {
    on_sqlite_and_postgres(demo, "networks", networks_on);
}

fn networks_on(demo: Demo, dir: &Path, url: &str) {
    let cli = |args: &[&str]| {
        let bin = env!("CARGO_BIN_EXE_apikey-under-test");
        json_output(&run_apikey(bin, dir, url, &[], args))
    };
    let office = cli(&[
        "--json",
        "create",
        "office",
        "--user",
        "u",
        "--allow-ip",
        "10.0.0.0/8",
        "--allow-ip",
        "2001:db8::/32",
    ]);
    assert_eq!(
        office["allow_ip"],
        serde_json::json!(["10.0.0.0/8", "2001:db8::/32"])
    );
    let office_key = office["key"].as_str().unwrap().to_owned();
    let local = cli(&[
        "--json",
        "create",
        "local",
        "--user",
        "u",
        "--allow-ip",
        "127.0.0.1",
    ]);
    let local_key = local["key"].as_str().unwrap().to_owned();
    // A bad network is refused with a message, and nothing is created.
    let bin = env!("CARGO_BIN_EXE_apikey-under-test");
    let bad = run_apikey(
        bin,
        dir,
        url,
        &[],
        &["create", "bad", "--user", "u", "--allow-ip", "10/8"],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a network"));
    let missing = run_apikey(bin, dir, url, &[], &["allow-ip", "office"]);
    assert_eq!(
        missing.status.code(),
        Some(2),
        "a network or --clear is needed"
    );

    // Rocket trusts no proxy header here (`ip_header = false`), as behind no proxy it must.
    let server = Server::start(demo, dir, url, &[("ROCKET_IP_HEADER", "false")]);
    let get = |key: &str, extra: &[&[u8]]| {
        let k = api_key(key);
        let mut headers: Vec<&[u8]> = vec![&k];
        headers.extend_from_slice(extra);
        server.get("/my_service", &headers)
    };
    assert_eq!(get(&local_key, &[]).unwrap().status, 200, "127.0.0.1 is in");
    assert_problem(&get(&office_key, &[]), 403, ADDRESS);
    let spoof = header("X-Real-IP", "10.1.2.3");
    let forwarded = header("X-Forwarded-For", "10.1.2.3");
    assert_problem(&get(&office_key, &[&spoof, &forwarded]), 403, ADDRESS);
    // After verification only: a wrong key is the same 401 as ever.
    // Its last character changed (to one it is not: a generated key may end in `x`).
    let (body, last) = office_key.split_at(office_key.len() - 1);
    let wrong = format!("{body}{}", if last == "x" { "y" } else { "x" });
    assert_problem(&get(&wrong, &[]), 401, INVALID);

    // Changed by another process: the next requests follow.
    let moved = cli(&["--json", "allow-ip", "office", "127.0.0.0/8", "::1"]);
    assert_eq!(
        moved["allow_ip"],
        serde_json::json!(["127.0.0.0/8", "::1/128"])
    );
    let until = |status: u16, key: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let res = get(key, &[]);
            if res.as_ref().is_some_and(|r| r.status == status)
                || std::time::Instant::now() > deadline
            {
                return res;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    assert_eq!(until(200, &office_key).unwrap().status, 200);
    cli(&["--json", "allow-ip", "local", "192.0.2.0/24"]);
    assert_problem(&until(403, &local_key), 403, ADDRESS);
    let cleared = cli(&["--json", "allow-ip", "local", "--clear"]);
    assert_eq!(cleared["allow_ip"], serde_json::json!([]));
    assert_eq!(until(200, &local_key).unwrap().status, 200);
    let trail = cli(&["--json", "audit", "local"]);
    let summaries: Vec<&str> = trail
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "allow-ip")
        .map(|a| a["summary"].as_str().unwrap())
        .collect();
    assert_eq!(summaries, ["only from 192.0.2.0/24", "from any address"]);
    drop(server);

    // Rocket's own `ip_header` (X-Real-IP by default) is not what apikey trusts: with the
    // demos' defaults no forwarding header moves a client into a key's networks.
    cli(&["--json", "allow-ip", "office", "10.0.0.0/8"]);
    let server = Server::start(demo, dir, url, &[]);
    let k = api_key(&office_key);
    let rfc = header("Forwarded", "for=10.1.2.3");
    for spoofed in [&spoof, &forwarded, &rfc] {
        assert_problem(&server.get("/my_service", &[&k, spoofed]), 403, ADDRESS);
    }
    drop(server);

    // A config section's own list.
    let section = "partner-secret-0123456789";
    let server = Server::start(
        demo,
        dir,
        url,
        &[
            ("ROCKET_IP_HEADER", "false"),
            ("APIKEY_API_KEY_PARTNER__KEY", section),
            ("APIKEY_API_KEY_PARTNER__USER", "partner"),
            ("APIKEY_API_KEY_PARTNER__ALLOW_IP", "10.0.0.0/8, 192.0.2.1"),
        ],
    );
    assert_problem(
        &server.get("/my_service", &[&api_key(section)]),
        403,
        ADDRESS,
    );
    drop(server);
    let server = Server::start(
        demo,
        dir,
        url,
        &[
            ("APIKEY_API_KEY_PARTNER__KEY", section),
            ("APIKEY_API_KEY_PARTNER__USER", "partner"),
            ("APIKEY_API_KEY_PARTNER__ALLOW_IP", "127.0.0.1"),
        ],
    );
    let res = server.get("/my_service", &[&api_key(section)]).unwrap();
    assert_eq!(res.status, 200, "{}", res.text());
}

/// `trusted_proxies` and `client_ip_header` (hardening round 3, item 2): the client's address
/// is the TCP peer's; `X-Forwarded-For`, `Forwarded` and `X-Real-IP` count only when the peer
/// is a trusted proxy, and then the right-most address that is not a trusted proxy.
fn forwarding_headers_count_from_trusted_proxies_only(demo: Demo) {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    let rt = runtime();
    let m = rt.block_on(manager(&url));
    let bound = CreateKey {
        allow_ip: apikey_core::AllowIp::parse(&["10.0.0.0/8"]).unwrap(),
        ..key("office", &[])
    };
    let (_, office) = rt.block_on(m.create(bound)).unwrap();
    let k = api_key(office.expose());
    let xff = |v: &str| header("X-Forwarded-For", v);
    let status =
        |server: &Server, extra: &[u8]| server.get("/my_service", &[&k, extra]).unwrap().status;

    // An untrusted peer (no proxy trusted; then another network trusted): nothing it sends
    // moves it, whichever header the service reads.
    for env in [
        vec![],
        vec![("APIKEY_TRUSTED_PROXIES", "192.0.2.0/24")],
        vec![
            ("APIKEY_TRUSTED_PROXIES", "192.0.2.0/24"),
            ("APIKEY_CLIENT_IP_HEADER", "X-Real-IP"),
        ],
    ] {
        let server = Server::start(demo, dir.path(), &url, &env);
        assert_eq!(status(&server, &xff("10.1.2.3")), 403, "{env:?}");
        assert_eq!(
            status(&server, &header("X-Real-IP", "10.1.2.3")),
            403,
            "{env:?}"
        );
        assert_eq!(
            status(&server, &header("Forwarded", "for=10.1.2.3")),
            403,
            "{env:?}"
        );
    }

    // The peer (127.0.0.1) is a trusted proxy: its X-Forwarded-For is read from the right.
    let server = Server::start(
        demo,
        dir.path(),
        &url,
        &[("APIKEY_TRUSTED_PROXIES", "127.0.0.0/8")],
    );
    assert_eq!(status(&server, &xff("10.1.2.3")), 200);
    // What the client wrote itself stays on the left: the right-most untrusted hop decides.
    assert_eq!(status(&server, &xff("10.1.2.3, 203.0.113.9")), 403);
    assert_eq!(
        status(&server, &xff("203.0.113.9, 10.1.2.3, 127.0.0.2")),
        200
    );
    assert_eq!(status(&server, &xff("unknown")), 403);
    // Only the configured header counts.
    assert_eq!(status(&server, &header("X-Real-IP", "10.1.2.3")), 403);
    drop(server);

    for (name, value) in [
        ("X-Real-IP", "10.1.2.3"),
        ("Forwarded", "for=10.1.2.3;proto=http"),
    ] {
        let server = Server::start(
            demo,
            dir.path(),
            &url,
            &[
                ("APIKEY_TRUSTED_PROXIES", "127.0.0.1"),
                ("APIKEY_CLIENT_IP_HEADER", name),
            ],
        );
        assert_eq!(status(&server, &header(name, value)), 200, "{name}");
        assert_eq!(status(&server, &xff("10.1.2.3")), 403, "{name}");
    }

    // A bad setting stops the service with a message naming it.
    let bad = Server::spawn(
        demo,
        dir.path(),
        &url,
        &[("APIKEY_CLIENT_IP_HEADER", "X-Client")],
    );
    let (code, out) = bad.wait();
    assert!(!code.success());
    assert!(out.contains("client_ip_header"), "{out}");
}

/// `POST /apikey/rotate`, authenticated by the key itself, on SQLite and (when configured)
/// PostgreSQL: a new key once, the old one in grace, once an hour at most, never for a key set
/// in the configuration, audited with the key as actor.
fn keys_rotate_themselves(demo: Demo) {
    on_sqlite_and_postgres(demo, "rotation", rotation_on);
}

fn rotation_on(demo: Demo, dir: &Path, url: &str) {
    let rt = runtime();
    let m = rt.block_on(manager(url));
    let (_, old) = rt.block_on(m.create(key("rotor", &[]))).unwrap();
    let (_, quick) = rt.block_on(m.create(key("quick", &[]))).unwrap();
    let section = "partner-secret-0123456789";
    let server = Server::start(
        demo,
        dir,
        url,
        &[
            ("APIKEY_API_KEY_PARTNER__KEY", section),
            ("APIKEY_API_KEY_PARTNER__USER", "partner"),
        ],
    );
    let rotate = |key: &str| server.send("POST", "/apikey/rotate", &[&api_key(key)], b"");

    let res = rotate(old.expose()).unwrap();
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.header("cache-control"), Some("no-store"));
    assert!(res
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let body = res.json();
    assert_eq!(body["name"], "rotor");
    let new = body["key"].as_str().unwrap().to_owned();
    assert!(new.starts_with("ak_") && new != old.expose());
    let until = body["previous_key_valid_until"].as_str().unwrap();
    let until =
        time::OffsetDateTime::parse(until, &time::format_description::well_known::Rfc3339).unwrap();
    let grace = until - time::OffsetDateTime::now_utc();
    assert!(
        grace > time::Duration::hours(23) && grace <= time::Duration::hours(24),
        "{grace}"
    );

    // The new key works; the old one too, in grace, announcing its end.
    assert_eq!(
        server.get("/my_service", &[&api_key(&new)]).unwrap().status,
        200
    );
    let in_grace = server
        .get("/my_service", &[&api_key(old.expose())])
        .unwrap();
    assert_eq!(in_grace.status, 200);
    assert!(
        in_grace.header("sunset").is_some(),
        "the old key's end is announced"
    );

    // Once an hour at most, whichever of its secrets asks.
    let again = rotate(&new).unwrap();
    assert_eq!(again.status, 429, "{}", again.text());
    assert_eq!(
        again.header("content-type"),
        Some("application/problem+json")
    );
    let retry: u64 = again.header("retry-after").unwrap().parse().unwrap();
    assert!((3000..=3600).contains(&retry), "Retry-After {retry}");
    assert_eq!(rotate(old.expose()).unwrap().status, 429);

    // No key, a bad key: the usual 401s. A key from the configuration: 403.
    assert_problem(
        &server.send("POST", "/apikey/rotate", &[], b""),
        401,
        MISSING,
    );
    assert_problem(&rotate("ak_not-a-real-key"), 401, INVALID);
    let configured = rotate(section).unwrap();
    assert_eq!(configured.status, 403, "{}", configured.text());
    assert!(
        configured.text().contains("configuration"),
        "{}",
        configured.text()
    );
    drop(server);

    // Without a grace period the old key stops at once.
    let server = Server::start(demo, dir, url, &[("APIKEY_SELF_ROTATION_GRACE", "0")]);
    let res = server
        .send("POST", "/apikey/rotate", &[&api_key(quick.expose())], b"")
        .unwrap();
    assert_eq!(res.status, 200, "{}", res.text());
    assert!(res.json()["previous_key_valid_until"].is_null());
    let fresh = res.json()["key"].as_str().unwrap().to_owned();
    assert_problem(
        &server.get("/my_service", &[&api_key(quick.expose())]),
        401,
        INVALID,
    );
    assert_eq!(
        server
            .get("/my_service", &[&api_key(&fresh)])
            .unwrap()
            .status,
        200
    );
    drop(server);

    let trail = rt.block_on(m.audit(&apikey_core::AuditFilter {
        name: Some("rotor".into()),
        since: None,
    }));
    let rotations: Vec<(String, String)> = trail
        .unwrap()
        .into_iter()
        .filter(|a| a.action == "rotate")
        .map(|a| (a.actor, a.summary))
        .collect();
    assert_eq!(rotations.len(), 1, "{rotations:?}");
    assert_eq!(rotations[0].0, "key:rotor");
    assert!(
        rotations[0].1.contains("previous secrets valid until"),
        "{rotations:?}"
    );
}

/// A rotation made to evict a thief never hands the thief the key (hardening round 3, item 1),
/// on SQLite and (when configured) PostgreSQL: a secret in its grace, after the holder's own
/// rotation or an administrator's, is refused with 403 and audited, the key untouched; 16
/// concurrent rotations of one key give exactly one 200 and 429s with `Retry-After`; an
/// interval of 10000 years refuses the second rotation instead of panicking.
fn self_rotation_cannot_be_hijacked(demo: Demo) {
    on_sqlite_and_postgres(demo, "hijack", hijack_on);
}

const IN_GRACE: &str = r#"{"type":"about:blank","title":"Forbidden","status":403,"detail":"a secret in its rotation grace cannot rotate the key"}"#;

fn hijack_on(demo: Demo, dir: &Path, url: &str) {
    let rt = runtime();
    let m = rt.block_on(manager(url));
    let (_, k0) = rt.block_on(m.create(key("victim", &[]))).unwrap();
    let (_, a0) = rt.block_on(m.create(key("by-admin", &[]))).unwrap();
    let (_, r0) = rt.block_on(m.create(key("raced", &[]))).unwrap();
    let rotate = |server: &Server, key: &str| {
        server
            .send("POST", "/apikey/rotate", &[&api_key(key)], b"")
            .unwrap()
    };

    // No interval, so that only the grace rule stands between the thief and the key.
    let server = Server::start(demo, dir, url, &[("APIKEY_SELF_ROTATION_EVERY", "0")]);
    let res = rotate(&server, k0.expose());
    assert_eq!(res.status, 200, "{}", res.text());
    let k1 = res.json()["key"].as_str().unwrap().to_owned();
    // The thief still holds K0, in its grace: refused, and the holder's K1 stays current.
    let stolen = rotate(&server, k0.expose());
    assert_problem(&Some(stolen), 403, IN_GRACE);
    let holder = server.get("/my_service", &[&api_key(&k1)]).unwrap();
    assert_eq!(holder.status, 200);
    assert_eq!(
        holder.header("sunset"),
        None,
        "K1 is still the key's current secret"
    );
    // The holder may rotate again (K1 is current).
    let res = rotate(&server, &k1);
    assert_eq!(res.status, 200, "{}", res.text());

    // After an administrator's rotation, the old secret cannot rotate either.
    let (_, a1) = rt
        .block_on(m.rotate("by-admin", Duration::from_secs(86_400)))
        .unwrap();
    assert_problem(&Some(rotate(&server, a0.expose())), 403, IN_GRACE);
    assert_eq!(
        server
            .get("/my_service", &[&api_key(a1.expose())])
            .unwrap()
            .header("sunset"),
        None
    );
    drop(server);

    // Sixteen concurrent rotations of one key: exactly one is made.
    let server = Server::start(demo, dir, url, &[]);
    let statuses: Vec<(u16, Option<String>)> = std::thread::scope(|s| {
        let tries: Vec<_> = (0..16)
            .map(|_| {
                s.spawn(|| {
                    let res = rotate(&server, r0.expose());
                    (res.status, res.header("retry-after").map(str::to_owned))
                })
            })
            .collect();
        tries.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let made = statuses.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(made, 1, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|(s, retry)| *s == 200 || (*s == 429 && retry.is_some())),
        "{statuses:?}"
    );
    drop(server);

    // An interval no date can hold: the second rotation is refused, the service lives on.
    let (_, far) = rt.block_on(m.create(key("far", &[]))).unwrap();
    let server = Server::start(demo, dir, url, &[("APIKEY_SELF_ROTATION_EVERY", "10000y")]);
    let res = rotate(&server, far.expose());
    assert_eq!(res.status, 200, "{}", res.text());
    let far1 = res.json()["key"].as_str().unwrap().to_owned();
    let again = rotate(&server, &far1);
    assert_eq!(again.status, 429, "{}", again.text());
    assert!(again.header("retry-after").is_some());
    assert_eq!(server.get("/health", &[]).unwrap().status, 200);
    drop(server);

    // The refusals are in the audit trail, made by the key.
    let trail = rt
        .block_on(m.audit(&apikey_core::AuditFilter {
            name: Some("victim".into()),
            since: None,
        }))
        .unwrap();
    let refused: Vec<_> = trail
        .iter()
        .filter(|a| a.action == "rotate-refused")
        .collect();
    assert_eq!(refused.len(), 1, "{trail:?}");
    assert_eq!(refused[0].actor, "key:victim");
    let rotations = trail.iter().filter(|a| a.action == "rotate").count();
    assert_eq!(
        rotations, 2,
        "the holder's two rotations, none by the thief"
    );
}

/// The `RateLimit-Policy` and `RateLimit` fields (draft-ietf-httpapi-ratelimit-headers-09) on
/// responses to keys with limits, on SQLite and (when configured) PostgreSQL, where quotas are
/// counted; none for keys without limits, none at all with `ratelimit_headers = false`.
fn clients_see_their_limits(demo: Demo) {
    on_sqlite_and_postgres(demo, "ratelimit", limits_fields_on);
}

fn limits_fields_on(demo: Demo, dir: &Path, url: &str) {
    let rt = runtime();
    let m = rt.block_on(manager(url));
    let create = |spec| rt.block_on(m.create(spec)).unwrap().1;
    let limited = create(CreateKey {
        rate_limit: Some("2/1h".parse().unwrap()),
        ..key("limited", &[])
    });
    let metered = create(CreateKey {
        quota: Some("5/1d".parse().unwrap()),
        ..key("metered", &[])
    });
    let both = create(CreateKey {
        rate_limit: Some("100/1m".parse().unwrap()),
        quota: Some("1000/30d".parse().unwrap()),
        ..key("both", &[])
    });
    let plain = create(key("plain", &[]));
    let server = Server::start(demo, dir, url, &[]);
    let get = |key: &Secret| {
        server
            .get("/my_service", &[&api_key(key.expose())])
            .unwrap()
    };

    let first = get(&limited);
    assert_eq!(first.status, 200);
    assert_eq!(
        first.header("ratelimit-policy"),
        Some(r#""rate";q=2;w=3600"#)
    );
    assert_eq!(first.header("ratelimit"), Some(r#""rate";r=1;t=1800"#));
    let second = get(&limited);
    assert_eq!(second.header("ratelimit"), Some(r#""rate";r=0;t=3600"#));
    assert_eq!(get(&limited).status, 429, "the fields said none was left");

    let midnight = 86_400 - time::OffsetDateTime::now_utc().unix_timestamp() % 86_400;
    for left in (0..5).rev() {
        let res = get(&metered);
        assert_eq!(res.status, 200);
        assert_eq!(
            res.header("ratelimit-policy"),
            Some(r#""quota";q=5;w=86400"#)
        );
        let field = res.header("ratelimit").unwrap();
        let prefix = format!(r#""quota";r={left};t="#);
        assert!(
            field.starts_with(&prefix),
            "{field} after {} uses",
            5 - left
        );
        let t: i64 = field[prefix.len()..].parse().unwrap();
        assert!(
            (midnight - 5..=midnight).contains(&t),
            "{t} s to midnight UTC ({midnight})"
        );
    }

    let res = get(&both);
    assert_eq!(
        res.header("ratelimit-policy"),
        Some(r#""rate";q=100;w=60, "quota";q=1000;w=2592000"#)
    );
    let field = res.header("ratelimit").unwrap();
    assert!(
        field.starts_with(r#""rate";r=99;t=1, "quota";r=999;t="#),
        "{field}"
    );

    let res = get(&plain);
    assert_eq!(res.status, 200);
    assert_eq!(res.header("ratelimit-policy"), None, "no limits, no fields");
    assert_eq!(res.header("ratelimit"), None);
    drop(server);

    let server = Server::start(demo, dir, url, &[("APIKEY_RATELIMIT_HEADERS", "false")]);
    let res = server
        .get("/my_service", &[&api_key(both.expose())])
        .unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(res.header("ratelimit-policy"), None, "turned off");
    assert_eq!(res.header("ratelimit"), None);
}

/// A signing key of a scanner, made by the test (a fixed scalar: deterministic, never used
/// anywhere else), and its public key in PEM.
fn scanner(seed: u8) -> (p256::ecdsa::SigningKey, String) {
    use p256::pkcs8::{EncodePublicKey, LineEnding};
    let key = p256::ecdsa::SigningKey::from_bytes(&[seed; 32].into()).unwrap();
    let pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    (key, pem)
}

/// The scanner's signature header of `body`: base64 of the DER ECDSA signature.
fn signature(key: &p256::ecdsa::SigningKey, body: &[u8]) -> Vec<u8> {
    use base64::Engine;
    use p256::ecdsa::signature::Signer;
    let sig: p256::ecdsa::Signature = key.sign(body);
    let b64 = base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes());
    header("Github-Public-Key-Signature", &b64)
}

fn token_hash(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `POST /apikey/secret-scanning` on SQLite and (when configured) PostgreSQL: a forged or
/// missing signature is 401 and touches nothing; a signed report labels each token (a bad
/// checksum and an unknown key false, a working key true), revokes that key, and audits where it
/// was found; with `secret_scanning_action = flag` the key keeps working.
fn leaked_keys_reported_by_a_scanner(demo: Demo) {
    on_sqlite_and_postgres(demo, "leaks", leaks_on);
}

fn leaks_on(demo: Demo, dir: &Path, url: &str) {
    let rt = runtime();
    let m = rt.block_on(manager(url));
    let (_, leaked) = rt.block_on(m.create(key("leaked", &[]))).unwrap();
    let (_, flagged) = rt.block_on(m.create(key("flagged", &[]))).unwrap();
    let (github, pem) = scanner(7);
    let (forger, _) = scanner(9);
    let keys_file = dir.join("scanner.pem");
    std::fs::write(&keys_file, &pem).unwrap();
    let keys_path = keys_file.display().to_string();
    let env = [("APIKEY_SECRET_SCANNING_KEYS", keys_path.as_str())];
    let server = Server::start(demo, dir, url, &env);
    let post = |body: &str, signed: Option<&p256::ecdsa::SigningKey>| {
        let sig = signed.map(|k| signature(k, body.as_bytes()));
        let json = header("Content-Type", "application/json");
        let mut headers: Vec<&[u8]> = vec![&json];
        headers.extend(sig.as_deref());
        server.send("POST", "/apikey/secret-scanning", &headers, body.as_bytes())
    };

    // The key with its last checksum character changed (to one it is not).
    let (head, last) = leaked.expose().split_at(leaked.expose().len() - 1);
    let bad_sum = format!("{head}{}", if last == "0" { '1' } else { '0' });
    let unknown = rt.block_on(async {
        let other = apikey_core::KeyFormat::default().generate().unwrap();
        other.key.expose().to_owned()
    });
    let report = serde_json::json!([
        {"token": bad_sum, "type": "apikey", "url": "https://example.com/a", "source": "content"},
        {"token": unknown, "type": "apikey", "url": "https://example.com/b", "source": "content"},
        {"token": leaked.expose(), "type": "apikey", "url": "https://example.com/leak.txt", "source": "commit"},
    ])
    .to_string();

    // Unsigned, or signed by someone else: 401, the same answer, nothing touched.
    let unsigned = post(&report, None).unwrap();
    let forged = post(&report, Some(&forger)).unwrap();
    assert_eq!(unsigned.status, 401, "{}", unsigned.text());
    assert_eq!(
        (forged.status, forged.text()),
        (unsigned.status, unsigned.text())
    );
    assert!(!forged.text().contains(leaked.expose()));
    assert_eq!(
        server
            .get("/my_service", &[&api_key(leaked.expose())])
            .unwrap()
            .status,
        200,
        "a forged report revokes nothing"
    );

    let res = post(&report, Some(&github)).unwrap();
    assert_eq!(res.status, 200, "{}", res.text());
    let labels = res.json();
    let expected = serde_json::json!([
        {"token_hash": token_hash(&bad_sum), "token_type": "apikey", "label": "false_positive"},
        {"token_hash": token_hash(&unknown), "token_type": "apikey", "label": "false_positive"},
        {"token_hash": token_hash(leaked.expose()), "token_type": "apikey", "label": "true_positive"},
    ]);
    assert_eq!(labels, expected);
    assert!(
        !res.text().contains(leaked.expose()),
        "tokens are never echoed"
    );
    // Revoked: refused on the next requests (this process changed it: at once).
    assert_problem(
        &server.get("/my_service", &[&api_key(leaked.expose())]),
        401,
        INVALID,
    );
    // The same report again (a replay): answered alike, nothing done.
    let again = post(&report, Some(&github)).unwrap().json();
    assert_eq!(again, expected);
    // Another report of it: no longer a working key.
    let later = serde_json::json!([
        {"token": leaked.expose(), "type": "apikey", "url": "https://example.com/again", "source": "commit"},
    ])
    .to_string();
    let again = post(&later, Some(&github)).unwrap().json();
    assert_eq!(again[0]["label"], "false_positive");
    // Signed but not a report.
    assert_eq!(
        post("{\"not\": \"a list\"}", Some(&github)).unwrap().status,
        400
    );

    let trail = rt
        .block_on(m.audit(&apikey_core::AuditFilter {
            name: Some("leaked".into()),
            since: None,
        }))
        .unwrap();
    let leak = trail.iter().find(|a| a.action == "leak-reported").unwrap();
    assert_eq!(leak.actor, "secret-scanning");
    assert!(
        leak.summary.contains("https://example.com/leak.txt"),
        "{}",
        leak.summary
    );
    assert!(leak.summary.contains("revoked"), "{}", leak.summary);
    assert!(trail
        .iter()
        .any(|a| a.action == "revoke" && a.actor == "secret-scanning"));
    drop(server);

    // Flag only: audited, still working.
    let env = [
        ("APIKEY_SECRET_SCANNING_KEYS", keys_path.as_str()),
        ("APIKEY_SECRET_SCANNING_ACTION", "flag"),
    ];
    let server = Server::start(demo, dir, url, &env);
    let body = serde_json::json!([{"token": flagged.expose(), "type": "apikey", "url": "u", "source": "s"}])
        .to_string();
    let sig = signature(&github, body.as_bytes());
    let res = server
        .send("POST", "/apikey/secret-scanning", &[&sig], body.as_bytes())
        .unwrap();
    assert_eq!(res.json()[0]["label"], "true_positive");
    assert_eq!(
        server
            .get("/my_service", &[&api_key(flagged.expose())])
            .unwrap()
            .status,
        200,
        "flagged, not revoked"
    );
    drop(server);

    // Without verifying keys the endpoint takes no report at all.
    let server = Server::start(demo, dir, url, &[]);
    let sig = signature(&github, body.as_bytes());
    let res = server
        .send("POST", "/apikey/secret-scanning", &[&sig], body.as_bytes())
        .unwrap();
    assert_eq!(res.status, 503, "{}", res.text());
    drop(server);

    // A key file that is not one stops the demo with a message naming the setting.
    let bad = dir.join("bad.pem");
    std::fs::write(&bad, "not a key").unwrap();
    let bad = bad.display().to_string();
    let (status, out) = Server::spawn(
        demo,
        dir,
        url,
        &[("APIKEY_SECRET_SCANNING_KEYS", bad.as_str())],
    )
    .wait();
    assert!(!status.success());
    assert!(out.contains("secret_scanning_keys"), "{out}");
}

#[test]
fn both_demos_answer_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let keys = seeded(dir.path());
    let env = [("APIKEY_ACCEPT_BEARER", "true")];
    let (rd, ad) = (dir.path().join("rocket"), dir.path().join("axum"));
    std::fs::create_dir_all(&rd).unwrap();
    std::fs::create_dir_all(&ad).unwrap();
    let rocket = Server::start(ROCKET, &rd, &keys.url, &env);
    let axum = Server::start(AXUM, &ad, &keys.url, &env);
    let robot = api_key(keys.robot.expose());
    let plain = api_key(keys.plain.expose());
    let soon = api_key(keys.soon.expose());
    let wrong = api_key("wrong");
    let empty = api_key("");
    let bearer = header("Authorization", &format!("Bearer {}", keys.plain.expose()));
    let preflight: [&[u8]; 2] = [
        b"Access-Control-Request-Method: POST",
        b"Access-Control-Request-Headers: x-a, API-KEY",
    ];
    let limited = api_key(keys.limited.expose());
    let requests: Vec<(&str, &str, Vec<&[u8]>)> = vec![
        ("GET", "/my_service", vec![&limited]),
        ("GET", "/my_service", vec![]),
        ("GET", "/my_service", vec![&empty]),
        ("GET", "/my_service", vec![&wrong]),
        ("GET", "/my_service", vec![&robot, &plain]),
        ("GET", "/my_service", vec![&robot, &bearer]),
        ("GET", "/my_service", vec![&bearer]),
        ("GET", "/my_service", vec![&soon]),
        ("GET", "/whoami", vec![]),
        ("GET", "/whoami", vec![&wrong]),
        ("POST", "/billing", vec![&plain]),
        ("POST", "/billing", vec![&robot]),
        ("OPTIONS", "/billing", preflight.to_vec()),
        ("GET", "/health", vec![&wrong]),
    ];
    for (method, path, headers) in requests {
        let r = rocket.send(method, path, &headers, b"").unwrap();
        let a = axum.send(method, path, &headers, b"").unwrap();
        assert_eq!(
            r.apikey_part(),
            a.apikey_part(),
            "{method} {path}: Rocket {} / axum {}",
            r.text(),
            a.text()
        );
    }
    let last = |server: &Server| {
        let mut answer = None;
        for _ in 0..3 {
            answer = server.get("/my_service", &[&limited]);
        }
        answer.unwrap()
    };
    let (r, a) = (last(&rocket), last(&axum));
    assert_eq!((r.status, a.status), (429, 429));
    assert_eq!(r.body, a.body);
    assert_eq!(r.header("content-type"), a.header("content-type"));
}

/// Hardening round 3, item 4, on SQLite and (when configured) PostgreSQL: a report is refused
/// before its body is read (no verifying key; no or a malformed signature header), refused
/// reports are limited per address (429, `Retry-After`), the key the report names by
/// `Github-Public-Key-Identifier` is the one tried, and a replayed report — to another instance
/// sharing the store, after an admin activated the key again — changes nothing.
fn leak_reports_are_cheap_to_refuse_and_never_replayed(demo: Demo) {
    on_sqlite_and_postgres(demo, "replays", replays_on);
}

/// Sends the head of a POST announcing `length` body bytes and only the first 512 of them
/// (Rocket fills a peek buffer of 512 bytes before any route runs): the status, if the
/// server answers without waiting for the rest of the body.
fn status_before_the_body(server: &Server, headers: &[&str], length: usize) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    let mut head =
        format!("POST /apikey/secret-scanning HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(&vec![b' '; length.min(512)]).ok()?;
    let mut out = [0u8; 64];
    let n = s.read(&mut out).ok()?;
    let text = std::str::from_utf8(&out[..n]).ok()?;
    text.split(' ').nth(1)?.parse().ok()
}

fn replays_on(demo: Demo, dir: &Path, url: &str) {
    let rt = runtime();
    let m = rt.block_on(manager(url));
    let (_, leaked) = rt.block_on(m.create(key("replayed", &[]))).unwrap();
    let (github, pem) = scanner(7);
    let (other, other_pem) = scanner(11);
    let keys_file = dir.join("scanners.pem");
    // The second key is named by an identifier line, the first by its DER digest only.
    std::fs::write(
        &keys_file,
        format!("{pem}key_identifier: other-scanner-key\n{other_pem}"),
    )
    .unwrap();
    let keys_path = keys_file.display().to_string();

    // No verifying key: refused at once, the body never read.
    let server = Server::start(demo, dir, url, &[]);
    assert_eq!(
        status_before_the_body(&server, &["Github-Public-Key-Signature: AAAA"], 1 << 20),
        Some(503)
    );
    drop(server);

    let env = [("APIKEY_SECRET_SCANNING_KEYS", keys_path.as_str())];
    let a = Server::start(demo, dir, url, &env);
    let b = Server::start(demo, dir, url, &env);
    // No signature header, or one that is not base64 DER: 401 before the body.
    assert_eq!(status_before_the_body(&a, &[], 1 << 20), Some(401));
    assert_eq!(
        status_before_the_body(&a, &["Github-Public-Key-Signature: not base64!"], 1 << 20),
        Some(401)
    );
    // Refused reports are limited per address: the third to tenth, then 429.
    let mut statuses = Vec::new();
    for _ in 0..9 {
        statuses.push(status_before_the_body(&a, &[], 10));
    }
    assert_eq!(statuses[..8], [Some(401); 8], "{statuses:?}");
    assert_eq!(statuses[8], Some(429), "{statuses:?}");
    let limited = a
        .send("POST", "/apikey/secret-scanning", &[], b"[]")
        .unwrap();
    assert_eq!(limited.status, 429);
    assert!(limited.header("retry-after").is_some());
    // The other instance counts its own refusals: it takes reports.
    let report = serde_json::json!([
        {"token": leaked.expose(), "type": "apikey", "url": "https://example.com/r", "source": "commit"},
    ])
    .to_string();
    let post = |server: &Server, key: &p256::ecdsa::SigningKey, id: Option<&str>| {
        let sig = signature(key, report.as_bytes());
        let id = id.map(|id| header("Github-Public-Key-Identifier", id));
        let mut headers: Vec<&[u8]> = vec![&sig];
        headers.extend(id.as_deref());
        server
            .send(
                "POST",
                "/apikey/secret-scanning",
                &headers,
                report.as_bytes(),
            )
            .unwrap()
    };
    // Named by the identifier of another key than the one that signed: refused.
    assert_eq!(post(&b, &github, Some("other-scanner-key")).status, 401);
    let first = post(&b, &other, Some("OTHER-SCANNER-KEY"));
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.json()[0]["label"], "true_positive");
    assert_eq!(
        b.get("/my_service", &[&api_key(leaked.expose())])
            .unwrap()
            .status,
        401,
        "revoked"
    );
    // An admin checks and activates it again; the report is replayed to the other instance.
    rt.block_on(m.activate("replayed")).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while a
        .get("/my_service", &[&api_key(leaked.expose())])
        .unwrap()
        .status
        != 200
    {
        assert!(std::time::Instant::now() < deadline, "activation not seen");
        std::thread::sleep(Duration::from_millis(10));
    }
    let c = Server::start(demo, dir, url, &env);
    let replay = post(&c, &other, None);
    assert_eq!(replay.status, 200, "{}", replay.text());
    assert_eq!(replay.json(), first.json(), "answered alike");
    assert_eq!(
        c.get("/my_service", &[&api_key(leaked.expose())])
            .unwrap()
            .status,
        200,
        "not revoked again"
    );
    let trail = rt
        .block_on(m.audit(&apikey_core::AuditFilter {
            name: Some("replayed".into()),
            since: None,
        }))
        .unwrap();
    let reported = trail.iter().filter(|a| a.action == "leak-reported").count();
    let revoked = trail.iter().filter(|a| a.action == "revoke").count();
    assert_eq!((reported, revoked), (1, 1), "{trail:?}");
}
