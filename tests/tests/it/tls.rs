//! TLS to the stores, against real servers made here: a PostgreSQL with `ssl=on` that refuses
//! plain connections, and a Redis that speaks TLS only, both with a certificate for
//! `localhost` signed by a CA the test makes. Skipped without the tools, unless
//! `APIKEY_TEST_REQUIRE_TLS` is set (CI).

use std::sync::Arc;
use std::time::{Duration, Instant};

use apikey_core::KeyRequest;
use apikey_core::{
    open, ApiKeyConfig, AuthError, CreateKey, KeyManager, MemoryStore, Settings, SharedStore,
    Verifier,
};
use apikey_tests::{demo_client, get, spec, unique_prefix, TestPki, TlsPostgres, TlsRedis};
use rocket::http::Status;

fn settings(url: &str) -> Settings {
    Settings {
        database_url: url.to_owned(),
        feed_heartbeat: Duration::from_millis(500),
        ..Settings::default()
    }
}

async fn store_at(url: &str) -> Result<SharedStore, String> {
    open(&settings(url)).await.map_err(|e| e.to_string())
}

fn verify_full(pg: &TlsPostgres, host: &str, ca: &std::path::Path) -> String {
    pg.url(
        host,
        &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_verify_full_works_end_to_end_and_refuses_what_it_must() {
    let Some(pki) = TestPki::new() else { return };
    let Some(pg) = TlsPostgres::start(&pki) else {
        return;
    };

    // The right CA and the certificate's own name: create, verify through a service, revoke
    // elsewhere and see it through LISTEN/NOTIFY over TLS.
    let url = verify_full(&pg, "localhost", &pki.ca);
    let service = store_at(&url).await.expect("verify-full with the right CA");
    let admin_store = store_at(&url).await.unwrap();
    let admin = KeyManager::new(admin_store.clone(), &ApiKeyConfig::default());
    let (_, key) = admin.create(spec("tls", "alice", &[])).await.unwrap();
    let client = demo_client(&service, "").await;
    let (status, body) = get(&client, "/my_service", Some(key.expose())).await;
    assert_eq!(status, Status::Ok, "{body}");
    assert!(body.contains("alice"), "{body}");
    admin.revoke("tls").await.unwrap();
    let start = Instant::now();
    while get(&client, "/my_service", Some(key.expose())).await.0 != Status::Unauthorized {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "the revocation did not arrive over TLS"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("revocation seen after {:?}", start.elapsed());
    // A key created elsewhere is accepted on its first request.
    let (_, fresh) = admin.create(spec("fresh", "bob", &[])).await.unwrap();
    assert_eq!(
        get(&client, "/my_service", Some(fresh.expose())).await.0,
        Status::Ok
    );

    // `require` encrypts without checking the certificate, so 127.0.0.1 passes it.
    // `verify-ca` checks the CA (with sqlx 0.8 and current rustls it checks the name too:
    // stricter than libpq, see SECURITY.md).
    store_at(&pg.url("127.0.0.1", "sslmode=require"))
        .await
        .expect("sslmode=require");
    store_at(&pg.url(
        "localhost",
        &format!("sslmode=verify-ca&sslrootcert={}", pki.ca.display()),
    ))
    .await
    .expect("verify-ca with the right CA");
    store_at(&pg.url(
        "localhost",
        &format!("sslmode=verify-ca&sslrootcert={}", pki.other_ca.display()),
    ))
    .await
    .expect_err("verify-ca with another CA");

    // The server refuses plain connections, so TLS above was real.
    let plain = store_at(&pg.url("localhost", "sslmode=disable"))
        .await
        .expect_err("a plain connection is refused");
    assert!(plain.contains("sslmode=disable"), "{plain}");

    // A wrong CA: a clear start-up error that names the server and the failure, never the
    // password.
    let wrong_ca = store_at(&verify_full(&pg, "localhost", &pki.other_ca))
        .await
        .expect_err("a certificate from an unknown CA is refused");
    eprintln!("wrong CA: {wrong_ca}");
    assert!(
        wrong_ca.contains(&format!("localhost:{}", pg.port)),
        "{wrong_ca}"
    );
    assert!(wrong_ca.contains("sslmode=verify-full"), "{wrong_ca}");
    assert!(wrong_ca.contains("TLS"), "{wrong_ca}");
    assert!(
        wrong_ca.to_lowercase().contains("certificate")
            || wrong_ca.to_lowercase().contains("issuer"),
        "{wrong_ca}"
    );
    assert!(!wrong_ca.contains("not-the-password"), "{wrong_ca}");

    // The wrong host name: the certificate is for localhost only.
    let wrong_host = store_at(&verify_full(&pg, "127.0.0.1", &pki.ca))
        .await
        .expect_err("a certificate for another name is refused");
    eprintln!("wrong host: {wrong_host}");
    assert!(
        wrong_host.contains(&format!("127.0.0.1:{}", pg.port)),
        "{wrong_host}"
    );
    assert!(wrong_host.contains("TLS"), "{wrong_host}");
    assert!(!wrong_host.contains("not-the-password"), "{wrong_host}");

    // The Odoo import reads over the same TLS settings, and says the same when they fail.
    let import = admin
        .import_odoo(&verify_full(&pg, "localhost", &pki.other_ca), true)
        .await
        .expect_err("the import refuses the unknown CA too");
    let import = import.to_string();
    assert!(import.contains("TLS"), "{import}");
    assert!(!import.contains("not-the-password"), "{import}");
    let import = admin
        .import_odoo(&verify_full(&pg, "localhost", &pki.ca), true)
        .await
        .expect_err("no auth_api_key table there");
    assert!(import.to_string().contains("auth_api_key"), "{import}");
}

/// A store with one key limited to `limit`; the key.
async fn limited_key(limit: &str) -> (SharedStore, String) {
    let store: SharedStore = Arc::new(MemoryStore::new());
    let (_, key) = KeyManager::new(store.clone(), &ApiKeyConfig::default())
        .create(CreateKey {
            name: "limited".into(),
            user: "alice".into(),
            rate_limit: Some(limit.parse().unwrap()),
            ..CreateKey::default()
        })
        .await
        .unwrap();
    (store, key.expose().to_owned())
}

async fn instance(store: &SharedStore, url: &str, ca: &std::path::Path, prefix: &str) -> Verifier {
    let mut config = ApiKeyConfig::default();
    config.settings.limits_url = Some(url.to_owned());
    config.settings.limits_ca = Some(ca.to_owned());
    config.settings.limits_prefix = prefix.to_owned();
    Verifier::new(config, store.clone()).await.unwrap()
}

/// Sends `n` requests, alternating between the instances; how many were accepted (the others
/// must be rate limited).
async fn accepted(instances: &[&Verifier], key: &str, n: usize) -> usize {
    let mut accepted = 0;
    for i in 0..n {
        match instances[i % instances.len()]
            .verify_request(&KeyRequest::new(key))
            .await
        {
            Ok(_) => accepted += 1,
            Err(AuthError::RateLimited { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    accepted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_limits_hold_across_instances_and_a_bad_certificate_falls_back() {
    let Some(pki) = TestPki::new() else { return };
    let Some(redis) = TlsRedis::start(&pki) else {
        return;
    };
    let url = redis.url("localhost");

    // The right CA: a limit of 6 per hour holds across two instances, through TLS.
    let (store, key) = limited_key("6/1h").await;
    let prefix = unique_prefix();
    let a = instance(&store, &url, &pki.ca, &prefix).await;
    let b = instance(&store, &url, &pki.ca, &prefix).await;
    for v in [&a, &b] {
        let stats = v.limits_stats();
        assert_eq!(stats.rate_limits, "redis", "{stats:?}");
        assert!(!stats.fallback, "{stats:?}");
    }
    assert_eq!(
        accepted(&[&a, &b], &key, 12).await,
        6,
        "the shared limit holds across instances"
    );

    // A CA that did not sign the server's certificate: as a Redis outage, limits fall back
    // to per instance and keys still verify.
    let (store, key) = limited_key("3/1h").await;
    let prefix = unique_prefix();
    let a = instance(&store, &url, &pki.other_ca, &prefix).await;
    let b = instance(&store, &url, &pki.other_ca, &prefix).await;
    assert_eq!(
        accepted(&[&a, &b], &key, 12).await,
        6,
        "3 per instance, as in any Redis outage"
    );
    for v in [&a, &b] {
        let stats = v.limits_stats();
        assert!(stats.fallback, "{stats:?}");
        assert_eq!(stats.rate_limits, "instance", "{stats:?}");
    }

    // The system roots do not know the test CA either.
    let mut config = ApiKeyConfig::default();
    config.settings.limits_url = Some(url.clone());
    let v = Verifier::new(config, store.clone()).await.unwrap();
    assert!(v.limits_stats().fallback);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_ca_is_checked_at_start() {
    let mut config = ApiKeyConfig::default();
    config.settings.limits_url = Some("rediss://localhost:1/0".into());
    config.settings.limits_ca = Some("/nonexistent/ca.pem".into());
    let store: SharedStore = Arc::new(MemoryStore::new());
    let err = Verifier::new(config, store)
        .await
        .expect_err("an unreadable CA file stops start-up")
        .to_string();
    assert!(err.contains("limits_ca"), "{err}");
}
