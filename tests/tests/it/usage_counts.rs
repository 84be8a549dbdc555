//! What a service counts per key and day, through Rocket: accepted requests, 403s (a key not
//! in the route's groups) and 429s (rate limit, quota), and the quota's own problem answer.

use apikey_core::MemoryStore;
use apikey_tests::{api_key, create_key, demo_client, problem, spec};
use rocket::http::Status;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_forbidden_and_limited_requests_are_counted_per_day() {
    let store: apikey_core::SharedStore = std::sync::Arc::new(MemoryStore::new());
    let mut metered = spec("metered", "bob", &[]);
    metered.quota = Some("3/1d".parse().unwrap());
    let key = create_key(&store, metered).await;
    let client = demo_client(&store, "").await;

    for _ in 0..2 {
        let res = client
            .get("/my_service")
            .header(api_key(key.expose()))
            .dispatch()
            .await;
        assert_eq!(res.status(), Status::Ok);
    }
    // Not in `billing`: a 403 that still uses the key.
    let res = client
        .post("/billing")
        .header(api_key(key.expose()))
        .dispatch()
        .await;
    assert_eq!(res.status(), Status::Forbidden);
    // The quota (3 a day) is used up: 429 with its own detail and a Retry-After to midnight.
    let res = client
        .get("/my_service")
        .header(api_key(key.expose()))
        .dispatch()
        .await;
    let retry: i64 = res
        .headers()
        .get_one("Retry-After")
        .expect("Retry-After")
        .parse()
        .unwrap();
    let midnight = 86_400 - time::OffsetDateTime::now_utc().unix_timestamp() % 86_400;
    assert!((retry - midnight).abs() <= 2, "{retry} vs {midnight}");
    let p = problem(res).await;
    assert_eq!(p.status, Status::TooManyRequests);
    let detail = p.body["detail"].as_str().unwrap();
    assert!(detail.starts_with("Quota exhausted"), "{detail}");
    assert!(!detail.contains(key.expose()));

    let state = client
        .rocket()
        .state::<apikey_rocket::ApiKeyState>()
        .unwrap();
    state.verifier().flush_usage().await.unwrap();
    let days = store.usage("metered", 0).await.unwrap();
    assert_eq!(days.len(), 1);
    let d = days[0];
    assert_eq!(
        (d.accepted, d.forbidden, d.limited),
        (2, 1, 1),
        "2 answered, 1 forbidden, 1 over its quota"
    );
    assert_eq!(
        d.day,
        time::OffsetDateTime::now_utc().unix_timestamp() / 86_400
    );
}

/// More keys used than one write sends at once (the writers take the cache a shard at a time
/// and send at most a few thousand rows a call): every count and every last-used time lands,
/// and a route's 403 is taken off its key's accepted count in whichever batch the key is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_of_a_large_write_is_counted_and_touched() {
    use apikey_core::{ApiKeyConfig, KeyRequest, Verifier};
    let store: apikey_core::SharedStore = std::sync::Arc::new(MemoryStore::new());
    const KEYS: usize = 9_000;
    let mut keys = Vec::with_capacity(KEYS);
    for i in 0..KEYS {
        keys.push(create_key(&store, spec(&format!("k{i}"), "bob", &[])).await);
    }
    let verifier = Verifier::new(ApiKeyConfig::default(), store.clone())
        .await
        .unwrap();
    for key in keys.iter().chain(&keys) {
        verifier
            .verify_request(&KeyRequest::new(key.expose()))
            .await
            .unwrap();
    }
    let refused = verifier
        .verify_request(&KeyRequest::new(keys[4_321].expose()))
        .await
        .unwrap();
    verifier.note_forbidden(&refused.identity);
    verifier.flush_usage().await.unwrap();
    let today = time::OffsetDateTime::now_utc().unix_timestamp() / 86_400;
    for i in 0..KEYS {
        let name = format!("k{i}");
        let days = store.usage(&name, 0).await.unwrap();
        let d = days[0];
        let want = if i == 4_321 { (2, 1) } else { (2, 0) };
        assert_eq!((days.len(), d.day), (1, today), "{name}");
        assert_eq!((d.accepted, d.forbidden), want, "{name}");
        let record = store.get(&name).await.unwrap().unwrap();
        assert!(
            record.last_used_at.is_some(),
            "{name} has no last-used time"
        );
    }
    // Written once: nothing is left for the next write.
    verifier.flush_usage().await.unwrap();
    assert_eq!(store.usage("k0", 0).await.unwrap()[0].accepted, 2);
}

/// A key bound to networks, used from inside and from outside them: the request from outside
/// is a 403 of the key, never counted accepted; the one from inside is; a key without limits
/// beside it is counted on its cache entry, and both land in one write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_from_outside_a_keys_networks_is_a_403_never_accepted() {
    use apikey_core::model::AllowIp;
    use apikey_core::{ApiKeyConfig, AuthError, KeyRequest, Verifier};
    let store: apikey_core::SharedStore = std::sync::Arc::new(MemoryStore::new());
    let mut bound = spec("bound", "bob", &[]);
    bound.allow_ip = AllowIp::parse(&["10.0.0.0/8"]).unwrap();
    let bound = create_key(&store, bound).await;
    let open = create_key(&store, spec("open", "bob", &[])).await;
    let verifier = Verifier::new(ApiKeyConfig::default(), store.clone())
        .await
        .unwrap();
    let inside = Some("10.1.2.3".parse().unwrap());
    let outside = Some("192.0.2.7".parse().unwrap());
    for client in [outside, inside, outside, inside, inside] {
        let answer = verifier
            .verify_request(&KeyRequest::new(bound.expose()).from(client))
            .await;
        match client {
            c if c == inside => assert!(answer.is_ok(), "{answer:?}"),
            _ => assert_eq!(answer.unwrap_err(), AuthError::AddressNotAllowed),
        }
        verifier
            .verify_request(&KeyRequest::new(open.expose()).from(outside))
            .await
            .unwrap();
    }
    verifier.flush_usage().await.unwrap();
    let day = |name: &'static str| {
        let store = store.clone();
        async move {
            let d = store.usage(name, 0).await.unwrap()[0];
            (d.accepted, d.forbidden, d.limited)
        }
    };
    assert_eq!(day("bound").await, (3, 2, 0));
    assert_eq!(day("open").await, (5, 0, 0));
}
