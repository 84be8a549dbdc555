//! Limits that hold across instances: several verifiers (as several service instances would
//! be) on one key store and one Redis. Skipped when `APIKEY_TEST_REDIS_URL` is unset.

use std::sync::Arc;
use std::time::Duration;

use apikey_core::KeyRequest;
use apikey_core::{
    ApiKeyConfig, AuthError, CreateKey, KeyManager, MemoryStore, Quota, RateLimit, SharedStore,
    Verifier,
};
use apikey_tests::{redis_url, unique_prefix, RedisProxy};

/// A store holding one key with these limits; the key.
async fn store_with_key(
    rate_limit: Option<RateLimit>,
    quota: Option<Quota>,
) -> (SharedStore, String) {
    let store: SharedStore = Arc::new(MemoryStore::new());
    let (_, key) = KeyManager::new(store.clone(), &ApiKeyConfig::default())
        .create(CreateKey {
            name: "shared".into(),
            user: "alice".into(),
            rate_limit,
            quota,
            ..CreateKey::default()
        })
        .await
        .unwrap();
    (store, key.expose().to_owned())
}

/// `n` verifiers (instances) on `store`, sharing limits through `url` under `prefix`.
async fn instances(n: usize, store: &SharedStore, url: &str, prefix: &str) -> Vec<Arc<Verifier>> {
    let mut out = Vec::new();
    for _ in 0..n {
        let mut config = ApiKeyConfig::default();
        config.settings.limits_url = Some(url.to_owned());
        config.settings.limits_prefix = prefix.to_owned();
        out.push(Arc::new(
            Verifier::new(config, store.clone()).await.unwrap(),
        ));
    }
    out
}

/// Sends `total` requests spread over the instances, `concurrency` at a time per instance;
/// the outcomes.
async fn spray(instances: &[Arc<Verifier>], key: &str, total: usize) -> Vec<Result<(), AuthError>> {
    let per = total / instances.len();
    let tasks: Vec<_> = instances
        .iter()
        .map(|v| {
            let v = Arc::clone(v);
            let key = key.to_owned();
            tokio::spawn(async move {
                let mut out = Vec::with_capacity(per);
                for _ in 0..per {
                    out.push(v.verify_request(&KeyRequest::new(&key)).await.map(drop));
                }
                out
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

fn accepted(outcomes: &[Result<(), AuthError>]) -> usize {
    outcomes.iter().filter(|o| o.is_ok()).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_of_20_per_hour_admits_20_requests_across_three_instances() {
    let Some(url) = redis_url() else { return };
    let (store, key) = store_with_key(Some("20/1h".parse().unwrap()), None).await;
    let all = instances(3, &store, &url, &unique_prefix()).await;
    let outcomes = spray(&all, &key, 90).await;
    // Under 100 per period the limit runs exact (a round trip per request): the bound is the
    // limit itself, plus what refills during the test (one token per 3 minutes).
    assert_eq!(accepted(&outcomes), 20, "{outcomes:?}");
    for o in outcomes.iter().filter(|o| o.is_err()) {
        match o {
            Err(AuthError::RateLimited { retry_after_secs }) => {
                assert!((1..=180).contains(retry_after_secs), "{retry_after_secs}")
            }
            other => panic!("{other:?}"),
        }
    }
    for v in &all {
        let stats = v.limits_stats();
        assert_eq!(stats.rate_limits, "redis");
        assert!(!stats.fallback);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leased_limits_hold_across_four_instances_without_a_round_trip_per_request() {
    let Some(url) = redis_url() else { return };
    let (store, key) = store_with_key(Some("2000/1h".parse().unwrap()), None).await;
    let all = instances(4, &store, &url, &unique_prefix()).await;
    let outcomes = spray(&all, &key, 6000).await;
    let n = accepted(&outcomes);
    // Never more than the limit (plus one token refilled every 1.8 s); fewer only by what
    // instances still hold in leases (2 % of the limit each at most).
    assert!(n <= 2000 + 2, "overshoot: {n} accepted for a limit of 2000");
    assert!(
        n >= 2000 - 4 * 40,
        "undershoot: {n} accepted for a limit of 2000"
    );
    let round_trips: u64 = all.iter().map(|v| v.limits_stats().round_trips).sum();
    assert!(
        round_trips < 6000 / 5,
        "{round_trips} round trips for 6000 requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_runs_out_across_instances() {
    let Some(url) = redis_url() else { return };
    let (store, key) = store_with_key(None, Some("30/1d".parse().unwrap())).await;
    let all = instances(3, &store, &url, &unique_prefix()).await;
    let outcomes = spray(&all, &key, 60).await;
    assert_eq!(accepted(&outcomes), 30);
    let midnight = 86_400 - (time::OffsetDateTime::now_utc().unix_timestamp() % 86_400);
    for o in outcomes.iter().filter(|o| o.is_err()) {
        match o {
            Err(AuthError::QuotaExhausted { retry_after_secs }) => {
                let secs = i64::from(*retry_after_secs);
                assert!((secs - midnight).abs() <= 2, "{secs} vs {midnight}")
            }
            other => panic!("{other:?}"),
        }
    }
    // A larger quota is leased; it still runs out at its count.
    let (store, key) = store_with_key(None, Some("1000/1d".parse().unwrap())).await;
    let all = instances(4, &store, &url, &unique_prefix()).await;
    let n = accepted(&spray(&all, &key, 2000).await);
    assert!(
        (1000 - 4 * 20..=1000).contains(&n),
        "{n} accepted of a quota of 1000"
    );
    let more = accepted(&spray(&all, &key, 400).await);
    assert_eq!(
        n + more,
        1000,
        "the leases still held are spent, and no more"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_quotas_are_counted_in_the_store_across_instances() {
    let (store, key) = store_with_key(None, Some("40/1d".parse().unwrap())).await;
    let mut all = Vec::new();
    for _ in 0..2 {
        all.push(Arc::new(
            Verifier::new(ApiKeyConfig::default(), store.clone())
                .await
                .unwrap(),
        ));
    }
    let outcomes = spray(&all, &key, 80).await;
    assert_eq!(accepted(&outcomes), 40);
    assert_eq!(all[0].limits_stats().quotas, "store");
    assert_eq!(all[0].limits_stats().rate_limits, "instance");
    // The counts per day reach the store.
    for v in &all {
        v.flush_usage().await.unwrap();
    }
    let days = store.usage("shared", 0).await.unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!((days[0].accepted, days[0].limited), (40, 40));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutting_redis_falls_back_to_local_limits_and_healing_recovers() {
    let Some(url) = redis_url() else { return };
    let proxy = RedisProxy::start(&url).await;
    let (store, key) = store_with_key(Some("10/1h".parse().unwrap()), None).await;
    let all = instances(2, &store, &proxy.url, &unique_prefix()).await;
    assert_eq!(accepted(&spray(&all, &key, 4).await), 4);
    assert!(!all[0].limits_stats().fallback);

    proxy.cut();
    // Keys still verify; limits fall back to each instance's own (10 each).
    let outcomes = spray(&all, &key, 40).await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Ok(()) | Err(AuthError::RateLimited { .. }))),
        "{outcomes:?}"
    );
    // 10 per instance while Redis is away (plus, at most, one token per instance that a lease
    // got through just before the link went down).
    let n = accepted(&outcomes);
    assert!(
        (20..=22).contains(&n),
        "{n}: 10 per instance while Redis is away"
    );
    for v in &all {
        let stats = v.limits_stats();
        assert!(stats.fallback, "{stats:?}");
        assert_eq!(stats.rate_limits, "instance");
        assert_eq!(stats.outages, 1, "one outage, however many failed calls");
    }

    proxy.heal();
    let mut recovered = false;
    for _ in 0..100 {
        if all.iter().all(|v| !v.limits_stats().fallback) {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(recovered, "the instances went back to Redis by themselves");
    // Shared again: the bucket had 6 tokens left when Redis went away, less any token a lease
    // took just as the link broke (its answer was lost: at most one per instance). Never more.
    let outcomes = spray(&all, &key, 20).await;
    let n = accepted(&outcomes);
    assert!((4..=6).contains(&n), "{n}: {outcomes:?}");
    assert_eq!(all[0].limits_stats().rate_limits, "redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_at_start_never_stops_verification() {
    let (store, key) = store_with_key(Some("3/1h".parse().unwrap()), None).await;
    // Nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let all = instances(1, &store, &format!("redis://127.0.0.1:{port}/0"), "x").await;
    let outcomes = spray(&all, &key, 5).await;
    assert_eq!(accepted(&outcomes), 3, "limited per instance");
    let stats = all[0].limits_stats();
    assert!(stats.fallback);
    assert_eq!(stats.rate_limits, "instance");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leased_uses_not_spent_go_back_at_shutdown() {
    let (store, key) = store_with_key(None, Some("5000/1d".parse().unwrap())).await;
    let v = Arc::new(
        Verifier::new(ApiKeyConfig::default(), store.clone())
            .await
            .unwrap(),
    );
    let window = "5000/1d"
        .parse::<Quota>()
        .unwrap()
        .window(time::OffsetDateTime::now_utc().unix_timestamp())
        .index;
    assert_eq!(accepted(&spray(&[Arc::clone(&v)], &key, 300).await), 300);
    let taken = store.quota_used("shared", window).await.unwrap();
    assert!(taken >= 300, "{taken}: the pool leases ahead");
    v.shutdown().await.unwrap();
    assert_eq!(store.quota_used("shared", window).await.unwrap(), 300);
    let days = store.usage("shared", 0).await.unwrap();
    assert_eq!(days[0].accepted, 300);
}

/// During a Redis outage an instance's quota falls back to its own count, starting from the
/// shared count it last saw: it never grants the whole quota again on top of what was used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_fallback_starts_from_the_last_known_count() {
    let Some(url) = redis_url() else { return };
    let proxy = RedisProxy::start(&url).await;
    let (store, key) = store_with_key(None, Some("10/1d".parse().unwrap())).await;
    let all = instances(1, &store, &proxy.url, &unique_prefix()).await;
    assert_eq!(accepted(&spray(&all, &key, 8).await), 8);
    assert!(!all[0].limits_stats().fallback);

    proxy.cut();
    let outcomes = spray(&all, &key, 12).await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Ok(()) | Err(AuthError::QuotaExhausted { .. }))),
        "{outcomes:?}"
    );
    assert!(all[0].limits_stats().fallback);
    assert_eq!(
        accepted(&outcomes),
        2,
        "8 of 10 were used before Redis went away: 2 are left, not 10"
    );
}
