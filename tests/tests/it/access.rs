//! Who may call what, on every store: groups (403), rate limits (429), disabled users,
//! last-used times and CORS preflights.

use std::time::Duration;

use apikey_core::model::KeyChange;
use apikey_core::KeyRequest;
use apikey_core::{ApiKeyConfig, CreateKey, Groups, Secret, SharedStore};
use apikey_rocket::ApiKey;
use apikey_tests::{
    admin, api_key, client, create_key, demo_client, get, problem, rocket_with, spec,
};
use rocket::http::{Header, Status};
use rocket::local::asynchronous::{Client, LocalResponse};
use rocket::routes;

async fn key(
    store: &SharedStore,
    name: &str,
    user: &str,
    groups: &[&str],
    limit: Option<&str>,
) -> Secret {
    let limit = limit.map(|l| l.parse().expect("a valid rate limit"));
    create_key(
        store,
        CreateKey {
            rate_limit: limit,
            ..spec(name, user, groups)
        },
    )
    .await
}

/// One request carrying `key`.
async fn send<'c>(
    client: &'c Client,
    method: &str,
    uri: &'static str,
    key: &str,
) -> LocalResponse<'c> {
    let req = if method == "POST" {
        client.post(uri)
    } else {
        client.get(uri)
    };
    req.header(api_key(key)).dispatch().await
}

apikey_tests::per_store!(
    groups_403,
    rate_limit_429,
    default_and_section_limits,
    disabled_user,
    last_used,
    cors_preflight
);

async fn groups_403(store: SharedStore) {
    let billing = key(&store, "biller", "bob", &["billing"], None).await;
    let reader = key(&store, "reader", "rita", &["read"], None).await;
    let client = demo_client(&store, "").await;
    let res = send(&client, "POST", "/billing", billing.expose()).await;
    assert_eq!(res.status(), Status::Ok);
    let res = send(&client, "POST", "/billing", reader.expose()).await;
    let refused = problem(res).await;
    assert_eq!(refused.status, Status::Forbidden);
    assert_eq!(refused.challenge, None, "a known key needs no challenge");
    assert_eq!(refused.body["title"], "Forbidden");
    let res = client.post("/billing").dispatch().await;
    assert_eq!(res.status(), Status::Unauthorized, "no key is 401, not 403");
    // Adding the key to the group takes effect at once.
    admin(&store)
        .change(
            "reader",
            KeyChange::Groups(Groups::new(["read", "billing"]).unwrap()),
        )
        .await
        .unwrap();
    let res = send(&client, "POST", "/billing", reader.expose()).await;
    assert_eq!(res.status(), Status::Ok);
}

async fn rate_limit_429(store: SharedStore) {
    let limited = key(&store, "limited", "lee", &[], Some("3/1h")).await;
    let free = key(&store, "free", "fay", &[], None).await;
    let client = demo_client(&store, "").await;
    for _ in 0..3 {
        assert_eq!(status_of(&client, &limited).await, Status::Ok);
    }
    let res = send(&client, "GET", "/my_service", limited.expose()).await;
    assert_eq!(res.status(), Status::TooManyRequests);
    let retry: u64 = res
        .headers()
        .get_one("Retry-After")
        .unwrap()
        .parse()
        .unwrap();
    assert!((1100..=1200).contains(&retry), "{retry}");
    assert_eq!(problem(res).await.body["title"], "Too Many Requests");
    for _ in 0..20 {
        assert_eq!(
            status_of(&client, &free).await,
            Status::Ok,
            "other keys are not limited"
        );
    }
    // Lifting the limit takes effect at once.
    admin(&store)
        .change("limited", KeyChange::RateLimit(None))
        .await
        .unwrap();
    assert_eq!(status_of(&client, &limited).await, Status::Ok);
}

async fn default_and_section_limits(store: SharedStore) {
    let plain = key(&store, "plain", "pat", &[], None).await;
    let own = key(&store, "own", "oz", &[], Some("5/1h")).await;
    let client = demo_client(
        &store,
        "[default.apikey]\nrate_limit = \"2/1h\"\n\
         [default.api_key_robot]\nkey = \"robot_key\"\nuser = \"robot\"\nrate_limit = \"1/1h\"\n",
    )
    .await;
    let count_ok = |k: String| {
        let client = &client;
        async move {
            let mut ok = 0;
            for _ in 0..10 {
                if get(client, "/my_service", Some(&k)).await.0 == Status::Ok {
                    ok += 1;
                }
            }
            ok
        }
    };
    assert_eq!(count_ok(plain.expose().into()).await, 2, "the default");
    assert_eq!(count_ok(own.expose().into()).await, 5, "the key's own");
    assert_eq!(count_ok("robot_key".into()).await, 1, "the section's");
}

async fn status_of(client: &Client, key: &Secret) -> Status {
    get(client, "/my_service", Some(key.expose())).await.0
}

async fn disabled_user(store: SharedStore) {
    let k = key(&store, "k", "dana", &[], None).await;
    let client = demo_client(&store, "").await;
    assert_eq!(status_of(&client, &k).await, Status::Ok);
    assert_eq!(
        admin(&store).set_user_active("dana", false).await.unwrap(),
        1
    );
    assert_eq!(status_of(&client, &k).await, Status::Unauthorized);
    admin(&store).set_user_active("dana", true).await.unwrap();
    assert_eq!(status_of(&client, &k).await, Status::Ok);
    let lenient = demo_client(
        &store,
        "[default.apikey]\ndisable_keys_of_inactive_users = false\n",
    )
    .await;
    admin(&store).set_user_active("dana", false).await.unwrap();
    assert_eq!(status_of(&lenient, &k).await, Status::Ok, "option off");
    assert_eq!(
        status_of(&client, &k).await,
        Status::Unauthorized,
        "option on"
    );
}

async fn last_used(store: SharedStore) {
    let k = key(&store, "used", "uma", &[], None).await;
    key(&store, "unused", "uma", &[], None).await;
    let store_for_app = store.clone();
    let config = ApiKeyConfig::default();
    let verifier = std::sync::Arc::new(
        apikey_core::Verifier::new(config, store_for_app)
            .await
            .unwrap(),
    );
    let rocket = rocket_with("")
        .attach(ApiKey::with_verifier(verifier.clone()))
        .mount("/", routes![my_service::my_service]);
    let client = client(rocket).await;
    let before = time::OffsetDateTime::now_utc() - Duration::from_secs(1);
    for _ in 0..5 {
        assert_eq!(status_of(&client, &k).await, Status::Ok);
    }
    assert_eq!(
        store.get("used").await.unwrap().unwrap().last_used_at,
        None,
        "never written on the request path"
    );
    verifier.flush_usage().await.unwrap();
    let used = store
        .get("used")
        .await
        .unwrap()
        .unwrap()
        .last_used_at
        .unwrap();
    assert!(used >= before);
    assert_eq!(
        store.get("unused").await.unwrap().unwrap().last_used_at,
        None
    );
}

async fn cors_preflight(store: SharedStore) {
    let client = demo_client(&store, "").await;
    let res = client
        .options("/my_service")
        .header(Header::new("Origin", "https://app.example"))
        .header(Header::new("Access-Control-Request-Method", "GET"))
        .header(Header::new(
            "Access-Control-Request-Headers",
            "api-key, content-type",
        ))
        .dispatch()
        .await;
    assert_eq!(res.status(), Status::NoContent, "answered without a key");
    let allowed = res
        .headers()
        .get_one("Access-Control-Allow-Headers")
        .unwrap();
    assert!(
        allowed
            .split(',')
            .any(|h| h.trim().eq_ignore_ascii_case("API-KEY")),
        "{allowed}"
    );
    let res = client
        .options("/my_service")
        .header(Header::new("Access-Control-Request-Method", "GET"))
        .dispatch()
        .await;
    assert_eq!(
        res.headers().get_one("Access-Control-Allow-Headers"),
        Some("API-KEY")
    );
    // A plain OPTIONS (not a preflight) is left alone.
    let res = client.options("/my_service").dispatch().await;
    assert_eq!(res.status(), Status::NotFound);
}

/// Hardening round 3, item 6: every public way to verify a key looks at its networks. A custom
/// guard built on `Verifier::verify` without an address refuses a bound key (it used to
/// accept it from anywhere); with an address inside the networks it passes; a key bound to
/// nothing passes without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_public_verification_looks_at_the_networks() {
    use apikey_core::{AllowIp, AuthError, MemoryStore, Verifier};
    let store: SharedStore = std::sync::Arc::new(MemoryStore::new());
    let bound = create_key(
        &store,
        CreateKey {
            allow_ip: AllowIp::parse(&["10.0.0.0/8"]).unwrap(),
            ..spec("bound", "u", &[])
        },
    )
    .await;
    let open = create_key(&store, spec("open", "u", &[])).await;
    let v = Verifier::new(ApiKeyConfig::default(), store.clone())
        .await
        .unwrap();
    let inside = Some("10.1.2.3".parse().unwrap());
    let outside = Some("192.0.2.1".parse().unwrap());
    assert_eq!(
        v.verify_request(&KeyRequest::new(bound.expose()))
            .await
            .unwrap_err(),
        AuthError::AddressNotAllowed
    );
    assert_eq!(
        v.verify_request(&KeyRequest::new(bound.expose()).from(outside))
            .await
            .unwrap_err(),
        AuthError::AddressNotAllowed
    );
    assert_eq!(
        v.verify_request(&KeyRequest::new(bound.expose()).from(inside))
            .await
            .unwrap()
            .identity
            .key_name(),
        "bound"
    );
    assert!(v
        .verify_request(&KeyRequest::new(open.expose()))
        .await
        .is_ok());
    // There is no other way in: `verify_request` with a request's facts, `identify` for
    // administration; both look at the networks.
    let admin = apikey_core::Credential::Key(bound.expose());
    assert_eq!(
        v.identify(admin, None).await.unwrap_err(),
        AuthError::AddressNotAllowed
    );
    assert!(v.identify(admin, inside).await.is_ok());
}
