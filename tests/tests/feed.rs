//! A change feed that proves it is alive. The LISTEN connection goes through a proxy that
//! turns into a black hole (nothing forwarded, nothing closed: a NAT that forgot an idle
//! connection), while the store's own pool stays reachable. Within two heartbeats the feed is
//! reported not live (`/stats`, the log, the `apikey_feed_live` metric); meanwhile every
//! request asks the store, so a key created elsewhere is accepted and a key revoked elsewhere
//! is refused at once; when the proxy heals, the feed and the digest filter are trusted again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use apikey_core::store::{PostgresStore, StoreOptions};
use apikey_core::KeyRequest;
use apikey_core::SharedStore;
use apikey_tests::{
    admin, captured_logs, filter_ready, get, spec, through, BlackHoleProxy, Probe, SharedDb,
};
use rocket::http::Status;
use rocket::routes;

const HEARTBEAT: Duration = Duration::from_millis(500);

/// `host:port` of a PostgreSQL URL.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
}

async fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_black_holed_feed_is_not_trusted_and_recovers() {
    let Some(db) = SharedDb::postgres() else {
        return;
    };
    let logs = captured_logs();
    let prometheus = my_service::prometheus();
    let upstream = apikey_tests::authority(&db.url);
    let proxy = BlackHoleProxy::start(&upstream).await;
    let feed_url = through(&db.url, proxy.port);
    let admin_store = db.store().await;
    let m = admin(&admin_store);
    let (_, before) = m.create(spec("before", "alice", &[])).await.unwrap();

    let feed = StoreOptions {
        heartbeat: HEARTBEAT,
        listen_url: Some(feed_url),
        ..StoreOptions::default()
    };
    let store: SharedStore = Arc::new(
        PostgresStore::connect_with(&db.url, db.schema.as_deref().unwrap(), &feed)
            .await
            .expect("connect"),
    );
    assert!(
        store.changes().is_live(),
        "live once its first heartbeat arrived"
    );
    let probe = Probe::new(store.clone());
    let (verifier, _) = probe.verifier(apikey_core::Settings::default()).await;
    filter_ready(&verifier).await;
    let client = apikey_tests::client(
        apikey_tests::rocket_with("")
            .attach(apikey_rocket::ApiKey::with_verifier(verifier.clone()))
            .mount("/", routes![my_service::my_service, my_service::stats]),
    )
    .await;
    assert_eq!(
        get(&client, "/my_service", Some(before.expose())).await.0,
        Status::Ok
    );
    // Cached now: a second request costs no store query.
    let queries = probe.lookups();
    assert_eq!(
        get(&client, "/my_service", Some(before.expose())).await.0,
        Status::Ok
    );
    assert_eq!(probe.lookups(), queries);

    // The black hole: within two heartbeats the feed is not live (250 ms more for the
    // scheduling of a busy test machine).
    proxy.black_hole();
    let took = wait_for(
        "feed not live",
        HEARTBEAT * 2 + Duration::from_millis(250),
        || !verifier.feed_live(),
    )
    .await;
    eprintln!("feed not live {took:?} after the black hole opened");
    let (_, stats) = get(&client, "/stats", None).await;
    assert!(stats.contains("\"feed_live\":false"), "{stats}");
    assert!(
        logs.lines()
            .iter()
            .any(|l| l.starts_with("WARN") && l.contains("change feed is not live")),
        "a log line says so"
    );
    wait_for("metric feed_live 0", Duration::from_secs(3), || {
        metric(&prometheus.render(), "apikey_feed_live") == Some(0.0)
    })
    .await;
    assert!(!verifier.filter_stats().trusted);

    // Meanwhile every request asks the store: a key created elsewhere works at once, a key
    // revoked elsewhere is refused at once, and a cached key costs a query again.
    let (_, during) = m.create(spec("during", "bob", &[])).await.unwrap();
    assert_eq!(
        get(&client, "/my_service", Some(during.expose())).await.0,
        Status::Ok,
        "created during the black hole"
    );
    m.revoke("before").await.unwrap();
    assert_eq!(
        get(&client, "/my_service", Some(before.expose())).await.0,
        Status::Unauthorized,
        "revoked during the black hole: no cached answer"
    );
    let queries = probe.lookups();
    assert_eq!(
        verifier
            .verify_request(&KeyRequest::new(during.expose()))
            .await
            .map(|_| ()),
        Ok(())
    );
    assert_eq!(probe.lookups(), queries + 1, "not served from the cache");

    // Healed: live again, the filter trusted again, and caches serve again.
    proxy.heal();
    let took = wait_for("feed live again", Duration::from_secs(10), || {
        verifier.feed_live()
    })
    .await;
    eprintln!("feed live {took:?} after the proxy healed");
    filter_ready(&verifier).await;
    let (_, stats) = get(&client, "/stats", None).await;
    assert!(stats.contains("\"feed_live\":true"), "{stats}");
    wait_for("metric feed_live 1", Duration::from_secs(3), || {
        metric(&prometheus.render(), "apikey_feed_live") == Some(1.0)
    })
    .await;
    // A revocation made elsewhere arrives through the feed again.
    assert!(verifier
        .verify_request(&KeyRequest::new(during.expose()))
        .await
        .is_ok());
    m.revoke("during").await.unwrap();
    let start = Instant::now();
    while verifier
        .verify_request(&KeyRequest::new(during.expose()))
        .await
        .is_ok()
    {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "the revocation did not come through the feed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!("revocation seen {:?} after it was made", start.elapsed());
    let text = prometheus.render();
    assert!(
        metric(&text, "apikey_requests_total{outcome=\"valid\"}").unwrap_or(0.0) >= 3.0,
        "{text}"
    );
    assert!(!text.contains(before.expose()));
    drop((client, verifier, probe, store, admin_store, m));
    db.finish().await;
}
