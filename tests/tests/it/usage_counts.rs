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
