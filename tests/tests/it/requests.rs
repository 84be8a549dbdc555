//! The request table of the SPEC, through Rocket's local client.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use apikey_core::clock::ManualClock;
use apikey_core::{CreateKey, MemoryStore, Secret, Settings, SharedStore};
use apikey_rocket::{route, ApiKey, Caller};
use apikey_tests::{admin, api_key, client, get, problem, rocket_with, spec, Probe};
use rocket::http::{ContentType, Header, Status};
use rocket::local::asynchronous::Client;
use rocket::request::{FromRequest, Outcome};
use rocket::{routes, uri, Request};

#[route("/my_service", auth = "api_key")]
fn my_service(caller: &Caller) -> String {
    format!("hello {}", caller.user())
}

#[route("/both", auth = "api_key")]
fn both(caller: &Caller, again: Option<&Caller>) -> String {
    format!("{} {}", caller.key_name(), again.map_or("-", |c| c.user()))
}

#[route("/guard_only")]
fn guard_only() -> &'static str {
    "in"
}

#[route("/whoami", auth = "public")]
fn whoami(caller: Option<&Caller>) -> String {
    caller.map_or_else(|| "anonymous".into(), |c| c.user().to_owned())
}

#[route("/health", auth = "none")]
fn health() -> &'static str {
    "ok"
}

#[route(POST, "/billing", auth = "api_key", groups = ["billing", "admin"])]
fn billing(caller: &Caller) -> String {
    format!("billed {}", caller.user())
}

#[route("/echo", method = "PUT", data = "<body>", format = "text/plain")]
fn echo(caller: &Caller, body: String) -> String {
    format!("{}: {body}", caller.user())
}

#[route("/items/<id>", auth = "api_key", rank = 2)]
fn item(id: u32, caller: &Caller) -> String {
    format!("{id} for {}", caller.user())
}

/// A custom auth method: any `FromRequest` type.
struct TeaTime;

#[rocket::async_trait]
impl<'r> FromRequest<'r> for TeaTime {
    type Error = ();
    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, ()> {
        match req.headers().get_one("X-Tea") {
            Some("earl grey") => Outcome::Success(TeaTime),
            _ => Outcome::Error((Status::Unauthorized, ())),
        }
    }
}

#[route("/tea", auth = TeaTime)]
fn tea() -> &'static str {
    "tea served"
}

struct Keys {
    good: Secret,
    billing: Secret,
    revoked: Secret,
    expired: Secret,
    disabled_user: Secret,
}

async fn keys(store: &SharedStore) -> Keys {
    let m = admin(store);
    let create = |spec: CreateKey| {
        let m = m.clone();
        async move { m.create(spec).await.expect("create a key").1 }
    };
    let good = create(spec("good", "alice", &[])).await;
    let billing = create(spec("billing", "bob", &["billing"])).await;
    let revoked = create(spec("revoked", "alice", &[])).await;
    m.revoke("revoked").await.unwrap();
    let expired = create(CreateKey {
        expires_in: Some(Duration::from_secs(1)),
        ..spec("expired", "alice", &[])
    })
    .await;
    let disabled_user = create(spec("carol's", "carol", &[])).await;
    m.set_user_active("carol", false).await.unwrap();
    Keys {
        good,
        billing,
        revoked,
        expired,
        disabled_user,
    }
}

fn app(store: SharedStore, toml: &str) -> rocket::Rocket<rocket::Build> {
    app_with(ApiKey::with_store(store), toml)
}

/// The test service, its keys checked by `apikey`.
fn app_with(apikey: ApiKey, toml: &str) -> rocket::Rocket<rocket::Build> {
    rocket_with(toml).attach(apikey).mount(
        "/",
        routes![my_service, both, guard_only, whoami, health, billing, echo, item, tea],
    )
}

async fn setup() -> (Client, Keys, Arc<Probe>) {
    let probe = Probe::new(Arc::new(MemoryStore::new()));
    let store: SharedStore = probe.clone();
    let keys = keys(&store).await;
    // The one-second key has expired by the verifier's clock, moved instead of waited for.
    let clock = ManualClock::starting_now();
    clock.advance(Duration::from_secs(3));
    let (verifier, _) = probe.verifier_on(Settings::default(), clock.shared()).await;
    let rocket = app_with(ApiKey::with_verifier(verifier), "");
    (client(rocket).await, keys, probe)
}

#[tokio::test]
async fn valid_key_runs_the_handler_with_the_caller() {
    let (client, keys, _) = setup().await;
    assert_eq!(
        get(&client, "/my_service", Some(keys.good.expose())).await,
        (Status::Ok, "hello alice".into())
    );
    assert_eq!(
        get(&client, "/guard_only", Some(keys.good.expose())).await,
        (Status::Ok, "in".into()),
        "auth defaults to api_key"
    );
    assert_eq!(
        get(&client, "/guard_only", None).await.0,
        Status::Unauthorized
    );
    assert_eq!(
        get(&client, "/items/7", Some(keys.good.expose())).await,
        (Status::Ok, "7 for alice".into())
    );
    assert_eq!(uri!(item(7)).to_string(), "/items/7", "uri! keeps working");
}

#[tokio::test]
async fn header_name_is_case_insensitive() {
    let (client, keys, _) = setup().await;
    for name in ["api-key", "Api-Key", "API-KEY"] {
        let res = client
            .get("/my_service")
            .header(Header::new(name, keys.good.expose().to_owned()))
            .dispatch()
            .await;
        assert_eq!(res.status(), Status::Ok, "{name}");
    }
}

#[tokio::test]
async fn missing_or_empty_key_is_401_with_challenge() {
    let (client, _, probe) = setup().await;
    for value in [None, Some(""), Some("   ")] {
        let mut req = client.get("/my_service");
        if let Some(v) = value {
            req = req.header(api_key(v));
        }
        let p = problem(req.dispatch().await).await;
        assert_eq!(p.status, Status::Unauthorized);
        assert_eq!(p.challenge.as_deref(), Some("ApiKey header=\"API-KEY\""));
        assert_eq!(p.body["title"], "Unauthorized");
        assert!(p.body["detail"]
            .as_str()
            .unwrap()
            .contains("needs an API key"));
    }
    assert_eq!(probe.lookups(), 0, "no lookup without a key");
}

#[tokio::test]
async fn every_invalid_key_gets_the_same_401() {
    let (client, keys, probe) = setup().await;
    let good = keys.good.expose().to_owned();
    let mut bad_checksum = good.clone();
    bad_checksum.pop();
    bad_checksum.push(if good.ends_with('A') { 'B' } else { 'A' });
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("unknown", vec!["unknown-key".into()]),
        ("wrong generated", vec![format!("ak_{}", "x".repeat(50))]),
        ("bad checksum", vec![bad_checksum]),
        ("truncated", vec![good[..good.len() - 3].to_owned()]),
        ("revoked", vec![keys.revoked.expose().into()]),
        ("expired", vec![keys.expired.expose().into()]),
        ("disabled user", vec![keys.disabled_user.expose().into()]),
        ("too long", vec!["k".repeat(4096)]),
        ("two headers", vec![good.clone(), good.clone()]),
    ];
    let mut bodies = Vec::new();
    for (what, values) in cases {
        let mut req = client.get("/my_service");
        for v in values {
            req = req.header(api_key(&v));
        }
        let p = problem(req.dispatch().await).await;
        assert_eq!(p.status, Status::Unauthorized, "{what}");
        assert!(p.challenge.is_some(), "{what}");
        let text = p.body.to_string();
        assert!(
            !text.contains(&good[3..10]),
            "{what}: the key is not echoed"
        );
        bodies.push(text);
    }
    bodies.dedup();
    assert_eq!(bodies.len(), 1, "one identical body: {bodies:?}");
    // Malformed values (wrong or bad checksum, truncated, too long) and repeated headers
    // never reach the store: only the four well-formed keys were looked up.
    assert_eq!(
        probe.lookups(),
        4,
        "unknown, revoked, expired, disabled user"
    );
}

#[tokio::test]
async fn a_route_of_several_groups_takes_a_key_in_any() {
    let (client, keys, _) = setup().await;
    let res = client
        .post("/billing")
        .header(api_key(keys.billing.expose()))
        .dispatch()
        .await;
    assert_eq!(res.status(), Status::Ok);
    assert_eq!(res.into_string().await.unwrap(), "billed bob");
    let res = client
        .post("/billing")
        .header(api_key(keys.good.expose()))
        .dispatch()
        .await;
    assert_eq!(res.status(), Status::Forbidden);
}

#[tokio::test]
async fn public_routes_take_no_key_but_refuse_a_bad_one() {
    let (client, keys, _) = setup().await;
    assert_eq!(
        get(&client, "/whoami", None).await,
        (Status::Ok, "anonymous".into())
    );
    assert_eq!(
        get(&client, "/whoami", Some(keys.good.expose())).await,
        (Status::Ok, "alice".into())
    );
    for bad in ["wrong", keys.revoked.expose()] {
        let res = client.get("/whoami").header(api_key(bad)).dispatch().await;
        let p = problem(res).await;
        assert_eq!(p.status, Status::Unauthorized, "never silently anonymous");
        assert!(p.challenge.is_some());
    }
    assert_eq!(
        get(&client, "/health", Some("wrong")).await,
        (Status::Ok, "ok".into())
    );
}

#[tokio::test]
async fn data_format_and_method_pass_through() {
    let (client, keys, _) = setup().await;
    let res = client
        .put("/echo")
        .header(ContentType::Plain)
        .header(api_key(keys.good.expose()))
        .body("payload")
        .dispatch()
        .await;
    assert_eq!(res.status(), Status::Ok);
    assert_eq!(res.into_string().await.unwrap(), "alice: payload");
    let res = client
        .put("/echo")
        .header(ContentType::Plain)
        .body("payload")
        .dispatch()
        .await;
    assert_eq!(res.status(), Status::Unauthorized);
}

#[tokio::test]
async fn custom_auth_method() {
    let (client, _, _) = setup().await;
    let res = client
        .get("/tea")
        .header(Header::new("X-Tea", "earl grey"))
        .dispatch()
        .await;
    assert_eq!(res.status(), Status::Ok);
    assert_eq!(res.into_string().await.unwrap(), "tea served");
    assert_eq!(
        client.get("/tea").dispatch().await.status(),
        Status::Unauthorized
    );
}

#[tokio::test]
async fn the_key_is_verified_once_per_request() {
    let (client, keys, probe) = setup().await;
    let before = probe.lookups();
    assert_eq!(
        get(&client, "/both", Some(keys.good.expose())).await,
        (Status::Ok, "good alice".into())
    );
    assert_eq!(probe.lookups() - before, 1);
}

#[tokio::test]
async fn unreachable_store_is_503_never_the_handler() {
    let (client, keys, probe) = setup().await;
    probe.down.store(true, Ordering::SeqCst);
    for uri in ["/my_service", "/whoami"] {
        let res = client
            .get(uri)
            .header(api_key(keys.good.expose()))
            .dispatch()
            .await;
        let p = problem(res).await;
        assert_eq!(p.status, Status::ServiceUnavailable, "{uri}");
        assert_eq!(p.challenge, None);
        assert!(
            !p.body.to_string().contains("connection refused"),
            "no internals"
        );
    }
    // Malformed keys are refused without the store, so they stay 401.
    assert_eq!(
        get(&client, "/my_service", Some("ak_bad")).await.0,
        Status::Unauthorized
    );
    probe.down.store(false, Ordering::SeqCst);
    assert_eq!(
        get(&client, "/my_service", Some(keys.good.expose()))
            .await
            .0,
        Status::Ok,
        "recovers by itself"
    );
}

#[tokio::test]
async fn header_name_is_configurable() {
    let store: SharedStore = Arc::new(MemoryStore::new());
    let keys = keys(&store).await;
    let client = client(app(store, "[default.apikey]\nheader = \"X-Token\"\n")).await;
    let res = client
        .get("/my_service")
        .header(Header::new("x-token", keys.good.expose().to_owned()))
        .dispatch()
        .await;
    assert_eq!(res.status(), Status::Ok);
    let res = client
        .get("/my_service")
        .header(api_key(keys.good.expose()))
        .dispatch()
        .await;
    let p = problem(res).await;
    assert_eq!(p.status, Status::Unauthorized);
    assert_eq!(p.challenge.as_deref(), Some("ApiKey header=\"X-Token\""));
}

#[tokio::test]
async fn a_route_without_the_fairing_aborts_launch() {
    let rocket = rocket_with("").mount("/", routes![my_service]);
    let err = Client::tracked(rocket).await.map(|_| ()).unwrap_err();
    assert!(
        matches!(err.kind(), rocket::error::ErrorKind::SentinelAborts(_)),
        "{err:?}"
    );
    // `auth = "none"` routes need nothing.
    let rocket = rocket_with("").mount("/", routes![health]);
    assert!(Client::tracked(rocket).await.is_ok());
}

#[tokio::test]
async fn bad_config_aborts_launch() {
    let store: SharedStore = Arc::new(MemoryStore::new());
    for toml in [
        "[default.apikey]\nunknown_setting = 1\n",
        "[default.api_key_lonely]\nkey = \"k1\"\n",
        "[default.api_key_x]\nuser = \"u\"\n",
    ] {
        let rocket = app(store.clone(), toml);
        let err = Client::tracked(rocket).await.map(|_| ()).unwrap_err();
        assert!(
            matches!(err.kind(), rocket::error::ErrorKind::FailedFairings(_)),
            "{toml}: {err:?}"
        );
    }
}
