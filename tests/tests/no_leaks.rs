//! No key and no digest of a key in any log line (at trace level, every crate), error message,
//! `Debug` output or response body, across a full scenario.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use apikey_core::KeyRequest;
use apikey_core::{
    ApiKeyConfig, AuthError, CreateKey, KeyHasher, MemoryStore, Secret, SharedStore, StoreError,
    Verifier,
};
use apikey_rocket::ApiKey;
use apikey_tests::{admin, api_key, captured_logs, spec, Probe};
use rocket::figment::providers::{Format, Toml};
use rocket::local::asynchronous::Client;
use rocket::routes;

fn forms(key: &str) -> Vec<String> {
    let digest = KeyHasher::new(None).digest(key);
    let hex: String = digest
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut out = vec![key.to_owned(), hex.clone(), hex.to_uppercase()];
    // Any long run of the secret part too (a truncated key is still a leak).
    if key.len() > 20 {
        out.push(key[3..19].to_owned());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_scenario_leaks_nothing() {
    let logs = captured_logs();
    let probe = Probe::new(Arc::new(MemoryStore::new()));
    let store: SharedStore = probe.clone();
    let config_key = "config-secret-value-1234567890";
    let figment = format!(
        "[default.apikey]\naccept_bearer = true\n\
         [default.api_key_robot]\nkey = \"{config_key}\"\nuser = \"robot\"\n"
    );
    let m = admin(&store);
    let (_, good) = m.create(spec("good", "alice", &["billing"])).await.unwrap();
    let (_, limited) = m
        .create(CreateKey {
            rate_limit: Some("1/1h".parse().unwrap()),
            ..spec("limited", "lee", &[])
        })
        .await
        .unwrap();
    let imported = Secret::new("imported-legacy-key-abcdef");
    m.import(spec("legacy", "old", &[]), &imported)
        .await
        .unwrap();
    let figment = rocket::Config::figment()
        .merge(Toml::string(&figment).nested())
        .merge(("log_level", "debug"));
    let rocket = rocket::custom(figment)
        .attach(ApiKey::with_store(store.clone()))
        .mount(
            "/",
            routes![
                my_service::my_service,
                my_service::billing,
                my_service::whoami
            ],
        );
    let client = Client::tracked(rocket).await.unwrap();
    log::set_max_level(log::LevelFilter::Trace);

    let mut bodies = Vec::new();
    let hit = |key: &str, path: &'static str| {
        let client = &client;
        let key = key.to_owned();
        async move {
            let res = if path == "/billing" {
                client.post(path)
            } else {
                client.get(path)
            }
            .header(api_key(&key))
            .dispatch()
            .await;
            let mut text = format!("{} {:?}", res.status(), res.headers());
            text.push_str(&res.into_string().await.unwrap_or_default());
            text
        }
    };
    for key in [good.expose(), "unknown-bearer-credential-xyz"] {
        let res = client
            .get("/my_service")
            .header(rocket::http::Header::new(
                "Authorization",
                format!("Bearer {key}"),
            ))
            .dispatch()
            .await;
        let mut text = format!("{} {:?}", res.status(), res.headers());
        text.push_str(&res.into_string().await.unwrap_or_default());
        bodies.push(text);
    }
    let rotated = good.clone();
    for (key, path) in [
        (good.expose(), "/my_service"),
        (good.expose(), "/billing"),
        (limited.expose(), "/my_service"),
        (limited.expose(), "/my_service"),
        (limited.expose(), "/billing"),
        (imported.expose(), "/whoami"),
        (config_key, "/my_service"),
        ("unknown-but-well-formed-key", "/my_service"),
    ] {
        bodies.push(hit(key, path).await);
    }
    let mut bad = good.expose().to_owned();
    bad.pop();
    bad.push('!');
    bodies.push(hit(&bad, "/my_service").await);
    admin(&store).revoke("good").await.unwrap();
    bodies.push(hit(rotated.expose(), "/my_service").await);
    let (_, new_secret) = m.rotate("legacy", Duration::ZERO).await.unwrap();
    bodies.push(hit(imported.expose(), "/my_service").await);
    bodies.push(hit(new_secret.expose(), "/my_service").await);
    probe.down.store(true, Ordering::SeqCst);
    bodies.push(hit("another-unknown-key-xyz", "/my_service").await);
    probe.down.store(false, Ordering::SeqCst);
    admin(&store).delete("legacy").await.unwrap();
    bodies.push(hit(new_secret.expose(), "/my_service").await);

    // Errors and Debug output of everything that holds or touched a key.
    let verifier = Verifier::new(ApiKeyConfig::default(), store.clone())
        .await
        .unwrap();
    let mut texts = vec![
        format!("{verifier:?}"),
        format!(
            "{:?}",
            apikey_core::config::layered(rocket::figment::Figment::new(), None)
                .and_then(|f| ApiKeyConfig::from_figment(&f))
        ),
        format!("{good:?} {good}"),
        format!("{:?}", KeyHasher::new(None).digest(good.expose())),
        format!("{:?}", m),
    ];
    for e in [
        AuthError::Missing,
        AuthError::INVALID,
        AuthError::Forbidden,
        AuthError::Unavailable,
        AuthError::RateLimited {
            retry_after_secs: 3,
        },
    ] {
        texts.push(format!("{e} {e:?}"));
    }
    let err = m
        .import(
            CreateKey {
                name: "good two".into(),
                user: "x".into(),
                ..Default::default()
            },
            &Secret::new("has space"),
        )
        .await
        .unwrap_err();
    texts.push(format!("{err} {err:?}"));
    let err: StoreError = m
        .create(CreateKey {
            name: "limited".into(),
            user: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    texts.push(format!("{err} {err:?}"));
    texts.push(format!(
        "{:?}",
        verifier
            .verify_request(&KeyRequest::new(bad.as_str()))
            .await
    ));

    let logs = logs.lines();
    assert!(
        logs.iter().any(|l| l.contains("refused")),
        "logging was captured: {logs:?}"
    );
    let everything = [logs.join("\n"), bodies.join("\n"), texts.join("\n")];
    for key in [
        good.expose(),
        limited.expose(),
        imported.expose(),
        new_secret.expose(),
        config_key,
        bad.as_str(),
        "unknown-but-well-formed-key",
        "another-unknown-key-xyz",
        "unknown-bearer-credential-xyz",
    ] {
        for form in forms(key) {
            for (what, text) in ["logs", "bodies", "errors"].iter().zip(&everything) {
                assert!(!text.contains(&form), "{what} contain {form:?}");
            }
        }
    }
}
