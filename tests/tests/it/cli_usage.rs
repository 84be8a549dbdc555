//! Quotas and usage from the command line, on SQLite and PostgreSQL (quotas counted in the
//! store) and with Redis (`APIKEY_LIMITS_URL`): `create --quota`, `quota NAME …`,
//! `usage NAME [--days] [--json]` after real requests.

use std::path::Path;
use std::process::Output;

use apikey_core::KeyRequest;
use apikey_core::{open, ApiKeyConfig, AuthError, Settings, Verifier};
use apikey_tests::{json_output, redis_url, run_apikey, unique_prefix, PgDatabase, SharedDb};

fn apikey(dir: &Path, url: &str, env: &[(&str, &str)], args: &[&str]) -> Output {
    run_apikey(env!("CARGO_BIN_EXE_apikey-under-test"), dir, url, env, args)
}

fn json(out: &Output) -> serde_json::Value {
    json_output(out)
}

/// Creates a key with a quota of 5 a day, sends 8 requests through a verifier configured as
/// `env` says, and reads the usage back.
async fn quota_and_usage(url: &str, env: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| apikey(dir.path(), url, env, args);

    let created = json(&run(&[
        "--json", "create", "Metered", "--user", "bob", "--quota", "5/1d",
    ]));
    assert_eq!(created["quota"], "5/1day", "{created}");
    let key = created["key"].as_str().unwrap().to_owned();

    // Bad values are refused with a message and exit 2; nothing changes.
    for bad in ["0/1d", "5/500ms", "lots"] {
        let out = run(&["quota", "Metered", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(!out.stderr.is_empty());
    }
    assert_eq!(run(&["quota", "Nobody", "5/1d"]).status.code(), Some(1));
    let shown = json(&run(&["--json", "show", "Metered"]));
    assert_eq!(shown["quota"], "5/1day");

    // Real requests, counted by a verifier as a service would.
    let mut settings = Settings {
        database_url: url.to_owned(),
        ..Settings::default()
    };
    for (name, value) in env {
        match *name {
            "APIKEY_LIMITS_URL" => settings.limits_url = Some((*value).to_owned()),
            "APIKEY_LIMITS_PREFIX" => settings.limits_prefix = (*value).to_owned(),
            _ => {}
        }
    }
    let store = open(&settings).await.unwrap();
    let config = ApiKeyConfig {
        settings,
        ..ApiKeyConfig::default()
    };
    let verifier = Verifier::new(config, store).await.unwrap();
    let mut outcomes = Vec::new();
    for _ in 0..8 {
        outcomes.push(
            verifier
                .verify_request(&KeyRequest::new(&key))
                .await
                .map(drop),
        );
    }
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 5);
    assert!(outcomes[5..]
        .iter()
        .all(|o| matches!(o, Err(AuthError::QuotaExhausted { .. }))));
    verifier.flush_usage().await.unwrap();

    let usage = json(&run(&["--json", "usage", "Metered", "--days", "7"]));
    assert_eq!(usage["tech_name"], "metered");
    assert_eq!(usage["total"]["accepted"], 5, "{usage}");
    assert_eq!(usage["total"]["limited"], 3, "{usage}");
    assert_eq!(usage["days"].as_array().unwrap().len(), 1);
    assert_eq!(usage["quota"]["used"], 5, "{usage}");
    assert_eq!(usage["quota"]["remaining"], 0, "{usage}");

    let text = run(&["usage", "Metered"]);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains("total"), "{text}");
    assert!(text.contains("5 used, 0 remaining"), "{text}");

    // A bigger quota leaves room again; `none` goes back to the default (none here).
    json(&run(&["--json", "quota", "Metered", "10/1d"]));
    let usage = json(&run(&["--json", "usage", "Metered"]));
    assert_eq!(usage["quota"]["remaining"], 5, "{usage}");
    let cleared = json(&run(&["--json", "quota", "Metered", "none"]));
    assert!(cleared["quota"].is_null(), "{cleared}");
    assert!(json(&run(&["--json", "usage", "Metered"]))["quota"].is_null());
    assert_eq!(run(&["usage", "Nobody"]).status.code(), Some(1));
    assert_eq!(
        run(&["usage", "Metered", "--days", "0"]).status.code(),
        Some(2)
    );

    let audit = json(&run(&["--json", "audit", "Metered"]));
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["create", "quota", "quota"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_quota_and_usage() {
    let db = SharedDb::sqlite();
    quota_and_usage(&db.url, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_quota_and_usage() {
    if let Some(pg) = PgDatabase::create("apikey_usage").await {
        quota_and_usage(&pg.url, &[]).await;
        pg.drop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_quota_and_usage() {
    let Some(redis) = redis_url() else { return };
    let db = SharedDb::sqlite();
    let prefix = unique_prefix();
    let env = [
        ("APIKEY_LIMITS_URL", redis.as_str()),
        ("APIKEY_LIMITS_PREFIX", prefix.as_str()),
    ];
    quota_and_usage(&db.url, &env).await;
}
