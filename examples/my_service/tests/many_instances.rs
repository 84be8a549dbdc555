//! Two demo processes on one key store and one Redis (`limits_url`): a key's rate limit and
//! quota hold across both. Skipped when `APIKEY_TEST_REDIS_URL` is unset.

mod common;

use apikey_rocket::core::{open, ApiKeyConfig, CreateKey, KeyManager, Settings};
use common::{status, Server};

#[test]
fn limits_hold_across_two_service_processes() {
    let Ok(redis) = std::env::var("APIKEY_TEST_REDIS_URL") else {
        eprintln!("skipped: APIKEY_TEST_REDIS_URL is not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("keys.db").display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (limited, metered) = rt.block_on(async {
        let settings = Settings {
            database_url: url.clone(),
            ..Settings::default()
        };
        let m = KeyManager::new(open(&settings).await.unwrap(), &ApiKeyConfig::default());
        let create = |name: &str, rate_limit: Option<&str>, quota: Option<&str>| CreateKey {
            name: name.into(),
            user: "robot".into(),
            rate_limit: rate_limit.map(|l| l.parse().unwrap()),
            quota: quota.map(|q| q.parse().unwrap()),
            ..Default::default()
        };
        let (_, limited) = m
            .create(create("limited", Some("20/1h"), None))
            .await
            .unwrap();
        let (_, metered) = m
            .create(create("metered", None, Some("10/1d")))
            .await
            .unwrap();
        (limited, metered)
    });
    let prefix = format!("apikey-two-processes-{}", std::process::id());
    let env = [
        ("APIKEY_LIMITS_URL", redis.as_str()),
        ("APIKEY_LIMITS_PREFIX", prefix.as_str()),
        ("ROCKET_LOG_LEVEL", "critical"),
    ];
    let dirs = [dir.path().join("a"), dir.path().join("b")];
    let servers: Vec<Server> = dirs
        .iter()
        .map(|d| {
            std::fs::create_dir_all(d).unwrap();
            Server::start(d, &url, &env)
        })
        .collect();

    let header = |key: &str| format!("API-KEY: {key}").into_bytes();
    let send = |key: &str, n: usize| -> Vec<Option<String>> {
        let h = header(key);
        (0..n)
            .map(|i| servers[i % 2].get("/my_service", &[&h]))
            .collect()
    };

    let answers = send(limited.expose(), 40);
    let ok = answers.iter().filter(|a| status(a) == "200").count();
    assert_eq!(
        ok, 20,
        "a limit of 20 per hour admits 20 requests across both"
    );
    for a in answers.iter().filter(|a| status(a) != "200") {
        assert_eq!(status(a), "429");
        let text = a.as_deref().unwrap().to_ascii_lowercase();
        assert!(text.contains("retry-after: "), "{text}");
        assert!(text.contains("rate limit"), "{text}");
    }

    let answers = send(metered.expose(), 16);
    let ok = answers.iter().filter(|a| status(a) == "200").count();
    assert_eq!(ok, 10, "a quota of 10 a day runs out across both");
    let refused = answers.iter().find(|a| status(a) == "429").unwrap();
    let text = refused.as_deref().unwrap();
    assert!(text.contains("Quota exhausted"), "{text}");
    let retry: i64 = text
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("retry-after: ")
                .map(|v| v.trim().to_owned())
        })
        .unwrap()
        .parse()
        .unwrap();
    let midnight = 86_400 - (time_now() % 86_400);
    assert!(
        (retry - midnight).abs() <= 5,
        "Retry-After {retry} vs {midnight} to midnight UTC"
    );

    for server in &servers {
        let stats = server.get("/stats", &[]).unwrap();
        assert!(stats.contains(r#""rate_limits":"redis""#), "{stats}");
        assert!(stats.contains(r#""fallback":false"#), "{stats}");
    }
    for server in servers {
        server.stop();
    }
}

fn time_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
