//! The adapter on its own, through tower (no socket): extractors, route layers, the layer's
//! headers, and what happens without the layer. The demos' end-to-end suite (in the repository's
//! `tests/`) runs the same behaviour over real sockets against both adapters.

use std::sync::Arc;
use std::time::Duration;

use apikey_axum::core::{ApiKeyConfig, CreateKey, KeyManager, MemoryStore, SharedStore};
use apikey_axum::{ApiKeyLayer, ApiKeyState, Auth, Caller};
use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

async fn me(caller: Caller) -> String {
    caller.user().to_owned()
}

async fn maybe(caller: Option<Caller>) -> String {
    caller.map_or("nobody".into(), |c| c.user().to_owned())
}

/// A store with `robot` (group billing), `plain` (no group) and `soon` (ends in two days).
async fn keys() -> (ApiKeyState, [String; 3]) {
    let store: SharedStore = Arc::new(MemoryStore::new());
    let config = ApiKeyConfig::default();
    let m = KeyManager::new(store.clone(), &config);
    let mut secrets = Vec::new();
    for (name, groups, expires_in) in [
        ("robot", vec!["billing".to_owned()], None),
        ("plain", vec![], None),
        ("soon", vec![], Some(Duration::from_secs(2 * 86_400))),
    ] {
        let spec = CreateKey {
            name: name.into(),
            user: name.into(),
            groups,
            expires_in,
            ..CreateKey::default()
        };
        secrets.push(m.create(spec).await.unwrap().1.expose().to_owned());
    }
    let state = ApiKeyState::with_store(config, store).await.unwrap();
    (state, secrets.try_into().unwrap())
}

fn app(state: &ApiKeyState) -> Router {
    Router::new()
        .route("/me", get(me))
        .route("/maybe", get(maybe))
        .route("/public", get(maybe).route_layer(Auth::public()))
        .route(
            "/billing",
            get(me).route_layer(Auth::api_key().groups(["billing"])),
        )
        .layer(ApiKeyLayer::new(state.clone()))
}

async fn send(
    app: &Router,
    path: &str,
    key: Option<&[u8]>,
) -> (StatusCode, http::HeaderMap, String) {
    let mut req = Request::get(path);
    if let Some(key) = key {
        req = req.header("API-KEY", key);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test]
async fn extractors_and_route_layers() {
    let (state, [robot, plain, _]) = keys().await;
    let app = app(&state);
    let (status, _, body) = send(&app, "/me", Some(robot.as_bytes())).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "robot"));

    let (status, headers, body) = send(&app, "/me", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(headers["www-authenticate"], r#"ApiKey header="API-KEY""#);
    assert!(body.contains("needs an API key"), "{body}");

    // Option<Caller>: no key is None; a bad key is refused, never silently anonymous.
    assert_eq!(send(&app, "/maybe", None).await.2, "nobody");
    let (status, _, body) = send(&app, "/maybe", Some(b"wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("is not valid"), "{body}");
    assert_eq!(send(&app, "/public", None).await.2, "nobody");
    assert_eq!(
        send(&app, "/public", Some(b"wrong")).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Groups: the route layer refuses before the handler runs.
    let (status, _, body) = send(&app, "/billing", Some(plain.as_bytes())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("not allowed"), "{body}");
    let (status, _, body) = send(&app, "/billing", Some(robot.as_bytes())).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "robot"));
}

#[tokio::test]
async fn a_request_is_verified_once_whatever_asks() {
    let (state, [robot, ..]) = keys().await;
    // The route layer and the extractor both ask; a key never seen before costs one lookup.
    let app = Router::new()
        .route(
            "/both",
            get(|a: Caller, b: Option<Caller>| async move {
                assert_eq!(Some(a), b);
                "ok"
            })
            .route_layer(Auth::api_key()),
        )
        .layer(ApiKeyLayer::new(state.clone()));
    let before = state.store_queries();
    assert_eq!(
        send(&app, "/both", Some(robot.as_bytes())).await.0,
        StatusCode::OK
    );
    assert_eq!(state.store_queries() - before, 1);
}

#[tokio::test]
async fn sunset_and_preflights() {
    let (state, [robot, _, soon]) = keys().await;
    let app = app(&state);
    let (_, headers, _) = send(&app, "/me", Some(soon.as_bytes())).await;
    let sunset = headers["sunset"].to_str().unwrap();
    assert!(sunset.ends_with(" GMT"), "{sunset}");
    let (_, headers, _) = send(&app, "/me", Some(robot.as_bytes())).await;
    assert!(headers.get("sunset").is_none());

    let preflight = Request::builder()
        .method("OPTIONS")
        .uri("/me")
        .header("Access-Control-Request-Method", "GET")
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(preflight).await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(res.headers()["access-control-allow-headers"], "API-KEY");
    assert_eq!(res.headers()["access-control-allow-methods"], "GET");
}

#[tokio::test]
async fn a_key_value_that_is_not_utf8_is_an_invalid_key() {
    let (state, [robot, ..]) = keys().await;
    let app = app(&state);
    let (status, _, body) = send(&app, "/maybe", Some(b"\xff\xfe")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("is not valid"), "{body}");
    let req = Request::get("/me")
        .header("API-KEY", robot.as_bytes())
        .header("API-KEY", &b"\xff"[..])
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn without_the_layer_keys_cannot_be_checked() {
    let app = Router::new().route("/me", get(me));
    let (status, headers, body) = send(&app, "/me", Some(b"anything")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert!(body.contains("cannot be checked"), "{body}");
}

/// `ApiRouter`: each route's `Auth` guards it and lists it; the `ApiKeyLayer` is on the built
/// router; a path axum routes twice keeps both methods.
#[tokio::test]
async fn routes_declared_on_the_router_are_guarded_and_listed() {
    use apikey_axum::core::http::RouteAuth;
    use apikey_axum::ApiRouter;
    use http::Method;

    let (state, [robot, plain, _]) = keys().await;
    let built = ApiRouter::new(&state)
        .get("/me", Auth::api_key(), me)
        .get("/maybe", Auth::public(), maybe)
        .get("/open", Auth::none(), || async { "open" })
        .post("/me", Auth::api_key().groups(["billing"]), me)
        .merge_unguarded(
            &[(Method::GET, "/legacy/{id}")],
            Router::new().route("/legacy/{id}", get(|| async { "legacy" })),
        )
        .build()
        .unwrap();
    type Row = (String, String, Option<String>, RouteAuth, Vec<String>);
    let listed: Vec<Row> = built
        .inventory()
        .routes
        .iter()
        .map(|r| {
            (
                r.method.clone(),
                r.path.clone(),
                r.name.clone(),
                r.auth,
                r.groups.clone(),
            )
        })
        .collect();
    let row = |m: &str, p: &str, n: Option<&str>, a, g: &[&str]| {
        (
            m.to_owned(),
            p.to_owned(),
            n.map(str::to_owned),
            a,
            g.iter().map(|g| (*g).to_owned()).collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        listed,
        vec![
            row("GET", "/legacy/<id>", None, RouteAuth::Unguarded, &[]),
            row("GET", "/maybe", Some("maybe"), RouteAuth::Public, &[]),
            row("GET", "/me", Some("me"), RouteAuth::ApiKey, &[]),
            row("POST", "/me", Some("me"), RouteAuth::ApiKey, &["billing"]),
            row("GET", "/open", None, RouteAuth::None, &[]),
        ]
    );
    assert_eq!(
        built.inventory().summary(),
        "2 api_key, 1 public, 1 none, 0 custom, 1 unguarded"
    );
    let app = built.into_router();
    assert_eq!(send(&app, "/me", None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        send(&app, "/me", Some(plain.as_bytes())).await.0,
        StatusCode::OK
    );
    assert_eq!(send(&app, "/maybe", None).await.2, "nobody");
    assert_eq!(
        send(&app, "/maybe", Some(b"ak_bad")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(send(&app, "/open", Some(b"ak_bad")).await.0, StatusCode::OK);
    let post = |key: &str| {
        Request::post("/me")
            .header("API-KEY", key)
            .body(Body::empty())
            .unwrap()
    };
    let forbidden = app.clone().oneshot(post(&plain)).await.unwrap();
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    let allowed = app.clone().oneshot(post(&robot)).await.unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
}

/// A key verified on another task (a handler that hands the request to a spawned task) still
/// gets its `Sunset` on the response: what the response announces travels with the request,
/// not through a task-local.
#[tokio::test]
async fn sunset_survives_verification_on_another_task() {
    use axum::extract::FromRequestParts;

    async fn elsewhere(req: axum::extract::Request) -> String {
        let (mut parts, _) = req.into_parts();
        let task = tokio::spawn(async move { Caller::from_request_parts(&mut parts, &()).await });
        match task.await.unwrap() {
            Ok(caller) => caller.user().to_owned(),
            Err(_) => "refused".into(),
        }
    }

    let (state, [_, plain, soon]) = keys().await;
    let app = Router::new()
        .route("/elsewhere", get(elsewhere))
        .layer(ApiKeyLayer::new(state));
    let (status, headers, body) = send(&app, "/elsewhere", Some(soon.as_bytes())).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "soon"));
    assert!(headers.contains_key("sunset"), "{headers:?}");
    let (_, headers, _) = send(&app, "/elsewhere", Some(plain.as_bytes())).await;
    assert!(!headers.contains_key("sunset"));
}

/// Scopes are all-of, with the key's wildcards; the same on a route layer under the
/// `ApiKeyLayer` and on a route of an `ApiRouter` (carrying its state); groups and scopes
/// together need both. A key without a scope gets 403 "missing scope"; metadata reaches the
/// handler with the identity.
#[tokio::test]
async fn scopes_are_all_of_with_wildcards() {
    let store: SharedStore = Arc::new(MemoryStore::new());
    let config = ApiKeyConfig::default();
    let m = KeyManager::new(store.clone(), &config);
    let mut secrets = std::collections::HashMap::new();
    for (name, scopes, groups) in [
        (
            "both",
            vec!["orders:write", "invoices:read"],
            vec!["billing"],
        ),
        ("one", vec!["orders:write"], vec!["billing"]),
        ("wild", vec!["orders:*", "invoices:*"], vec!["billing"]),
        ("star", vec!["*"], vec![]),
        ("none", vec![], vec!["billing"]),
    ] {
        let spec = CreateKey {
            name: name.into(),
            user: name.into(),
            scopes: scopes.into_iter().map(str::to_owned).collect(),
            groups: groups.into_iter().map(str::to_owned).collect(),
            meta: apikey_axum::core::Meta::new([("plan", format!("{name}-plan"))]).unwrap(),
            ..CreateKey::default()
        };
        let key = m.create(spec).await.unwrap().1.expose().to_owned();
        secrets.insert(name, key);
    }
    let state = ApiKeyState::with_store(config, store).await.unwrap();
    async fn plan(caller: Caller) -> String {
        caller.meta("plan").unwrap_or("-").to_owned()
    }
    let needs = || Auth::api_key().scopes(["orders:write", "invoices:read"]);
    let layered = Router::new()
        .route("/orders", get(plan).route_layer(needs()))
        .route(
            "/billing-orders",
            get(plan).route_layer(needs().groups(["billing"])),
        )
        .layer(ApiKeyLayer::new(state.clone()));
    let built = apikey_axum::ApiRouter::new(&state)
        .get("/orders", needs(), plan)
        .get("/billing-orders", needs().groups(["billing"]), plan)
        .build()
        .unwrap();
    let listed = built.inventory();
    let orders = listed.routes.iter().find(|r| r.path == "/orders").unwrap();
    assert_eq!(orders.scopes, ["orders:write", "invoices:read"]);
    let routed = built.into_router();
    for app in [&layered, &routed] {
        for (name, orders, billing) in [
            ("both", 200, 200),
            ("one", 403, 403),
            ("wild", 200, 200),
            ("star", 200, 403),
            ("none", 403, 403),
        ] {
            let key = secrets[name].as_bytes();
            let (status, _, body) = send(app, "/orders", Some(key)).await;
            assert_eq!(status.as_u16(), orders, "{name} /orders: {body}");
            if orders == 200 {
                assert_eq!(body, format!("{name}-plan"));
            } else {
                assert!(body.contains("Missing scope"), "{name}: {body}");
            }
            let (status, _, body) = send(app, "/billing-orders", Some(key)).await;
            assert_eq!(status.as_u16(), billing, "{name} /billing-orders: {body}");
        }
        // Outside the group comes first: the group's 403, not the scope's.
        let (_, _, body) = send(app, "/billing-orders", Some(secrets["star"].as_bytes())).await;
        assert!(body.contains("not allowed"), "{body}");
    }
}

#[test]
#[should_panic(expected = "Auth::scopes")]
fn a_route_cannot_need_a_wildcard() {
    let _ = Auth::api_key().scopes(["orders:*"]);
}
