//! The `apikey` binary as an operator uses it, against a running service on the same store.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use apikey_tests::{get, PgDatabase};
use rocket::http::Status;
use rocket::local::asynchronous::Client;

struct Cli<'a> {
    url: &'a str,
    dir: &'a Path,
}

impl Cli<'_> {
    fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, None)
    }

    fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        self.run_with(args, stdin, &[])
    }

    fn run_with(&self, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_apikey-under-test"));
        cmd.envs(env.iter().copied());
        cmd.current_dir(self.dir)
            .env_remove("APIKEY_CONFIG")
            .env_remove("APIKEY_DATABASE_URL")
            .arg("--database-url")
            .arg(self.url)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run apikey");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        drop(child.stdin.take());
        child.wait_with_output().unwrap()
    }

    /// Runs a command that must succeed and prints JSON; returns it.
    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.run(&all);
        assert!(
            out.status.success(),
            "apikey {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON output")
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn service(url: &str) -> Client {
    let figment = rocket::Config::figment()
        .merge(("apikey.database_url", url))
        .merge(("log_level", "off"));
    let (rocket, _) = my_service::app(rocket::custom(figment))
        .await
        .expect("demo app");
    Client::tracked(rocket).await.expect("service starts")
}

async fn status(client: &Client, key: &str) -> Status {
    get(client, "/my_service", Some(key)).await.0
}

/// Polls until `key` gets `want`; returns how long that took. A change made by another process
/// reaches a running service's cache through notifications (PostgreSQL) or polling (SQLite,
/// every 100 ms); the SPEC's bound is 1 s, and the generous 3 s here keeps a loaded CI machine
/// from failing (the benchmark holds the measured number).
async fn eventually(client: &Client, key: &str, want: Status) -> Duration {
    let start = Instant::now();
    loop {
        if status(client, key).await == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "still not {want} after 3 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Create, rotate with grace, revoke, activate, expire and delete from the CLI while a service
/// runs on the same store, then restart the service.
async fn lifecycle(url: &str, label: &str) {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli {
        url,
        dir: dir.path(),
    };
    let client = service(url).await;

    let created = cli.json(&["create", "Robot", "--user", "robot", "--group", "billing"]);
    let key = created["key"].as_str().unwrap().to_owned();
    assert_eq!(created["tech_name"], "robot");
    // A key created by another process is accepted once its creation reached the service
    // (the service's digest filter refuses digests it has not heard of): within the 1 s bound.
    let delay = eventually(&client, &key, Status::Ok).await;
    eprintln!("{label}: creation by the CLI seen by the service after {delay:?}");

    let rotated = cli.json(&["rotate", "Robot", "--grace", "2s"]);
    let new_key = rotated["key"].as_str().unwrap().to_owned();
    assert_ne!(new_key, key);
    eventually(&client, &new_key, Status::Ok).await;
    assert_eq!(status(&client, &key).await, Status::Ok, "old key in grace");

    let out = cli.run(&["revoke", "Robot"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let delay = eventually(&client, &new_key, Status::Unauthorized).await;
    eprintln!("{label}: revocation by the CLI seen by the service after {delay:?}");
    cli.json(&["activate", "Robot"]);
    eventually(&client, &new_key, Status::Ok).await;

    cli.json(&["user", "disable", "robot"]);
    let delay = eventually(&client, &new_key, Status::Unauthorized).await;
    eprintln!("{label}: user disabled by the CLI, seen by the service after {delay:?}");
    cli.json(&["user", "enable", "robot"]);
    eventually(&client, &new_key, Status::Ok).await;

    let limited = cli.json(&["rate-limit", "Robot", "1/1h"]);
    assert_eq!(limited["rate_limit"], "1/1h");
    eventually(&client, &new_key, Status::TooManyRequests).await;
    cli.json(&["rate-limit", "Robot", "none"]);
    eventually(&client, &new_key, Status::Ok).await;
    let out = cli.run(&["rate-limit", "Robot", "lots"]);
    assert_eq!(out.status.code(), Some(2), "a bad limit is a usage error");

    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(
        status(&client, &key).await,
        Status::Unauthorized,
        "grace over"
    );
    assert_eq!(status(&client, &new_key).await, Status::Ok);

    let short = cli.json(&["create", "Short", "--user", "robot", "--expires-in", "1s"]);
    let short_key = short["key"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        status(&client, &short_key).await,
        Status::Unauthorized,
        "expired"
    );
    let listed = cli.json(&["list"]);
    let short = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "Short")
        .unwrap();
    assert_eq!(short["status"], "expired");
    assert!(
        !listed.to_string().contains(&new_key),
        "list never shows secrets"
    );

    // Restart: keys survive, no new demo key is made.
    drop(client);
    let client = service(url).await;
    assert_eq!(
        status(&client, &new_key).await,
        Status::Ok,
        "restart keeps keys"
    );
    let names: Vec<_> = cli
        .json(&["list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].clone())
        .collect();
    // The demo seeded its own two keys (demo, and admin for its admin page) on the empty store.
    assert_eq!(names, ["Robot", "Short", "admin", "demo"]);

    let out = cli.run(&["delete", "Robot"]);
    assert!(out.status.success(), "{}", stderr(&out));
    eventually(&client, &new_key, Status::Unauthorized).await;
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", dir.join("keys.db").display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_lifecycle_against_a_running_service() {
    let dir = tempfile::tempdir().unwrap();
    lifecycle(&sqlite_url(dir.path()), "SQLite").await;
}

/// A fresh PostgreSQL database for one test, dropped afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_lifecycle_against_a_running_service() {
    let Some(db) = PgDatabase::create("apikey_cli").await else {
        eprintln!("skipped: APIKEY_TEST_POSTGRES_URL is not set");
        return;
    };
    lifecycle(&db.url, "PostgreSQL").await;
    db.drop().await;
}

#[test]
fn errors_are_clear_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    let cli = Cli {
        url: &url,
        dir: dir.path(),
    };
    cli.json(&["create", "one", "--user", "u"]);

    let out = cli.run(&["create", "One", "--user", "v"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "no key printed on failure");

    for args in [
        &["show", "nope"][..],
        &["revoke", "nope"],
        &["activate", "nope"],
        &["delete", "nope"],
        &["rotate", "nope"],
        &["group", "add", "nope", "g"],
    ] {
        let out = cli.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&out).contains("no key named \"nope\""),
            "{args:?}: {}",
            stderr(&out)
        );
    }

    let out = cli.run(&["create", "two", "--user", "u", "--expires-in", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not a duration"), "{}", stderr(&out));
    let out = cli.run(&["rotate", "one", "--grace", "-5"]);
    assert_eq!(out.status.code(), Some(2));
    let out = cli.run(&["create", "two"]);
    assert_eq!(out.status.code(), Some(2), "missing --user");
    let out = cli.run(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));

    // A key section set from the environment without its field: the error names the variable,
    // never the value (it is a key).
    const SECRET: &str = "a-secret-from-the-environment";
    let out = cli.run_with(&["list"], None, &[("APIKEY_API_KEY_MY_SERVICE", SECRET)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!stderr(&out).contains(SECRET), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("APIKEY_API_KEY_MY_SERVICE"),
        "{}",
        stderr(&out)
    );
    let out = cli.run_with(&["list"], None, &[("APIKEY_CACHE_TTL", SECRET)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!stderr(&out).contains(SECRET), "{}", stderr(&out));

    let names = cli.json(&["list"]);
    assert_eq!(names.as_array().unwrap().len(), 1, "nothing half-written");

    let dead = Cli {
        url: "postgres://nobody@127.0.0.1:9/none",
        dir: dir.path(),
    };
    let out = dead.run(&["list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot open the key store"),
        "{}",
        stderr(&out)
    );

    let out = Cli {
        url: "mysql://x",
        dir: dir.path(),
    }
    .run(&["list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unsupported database_url scheme"));
}

#[test]
fn verify_reads_the_key_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    let cli = Cli {
        url: &url,
        dir: dir.path(),
    };
    let key = cli.json(&["create", "v", "--user", "u"])["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = cli.run_with_stdin(&["verify"], Some(&format!("{key}\n")));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"u\""));
    let out = cli.run_with_stdin(&["verify"], Some("wrong\n"));
    assert_eq!(out.status.code(), Some(1));
    let out = cli.run_with_stdin(&["verify"], Some(""));
    assert_eq!(out.status.code(), Some(1), "empty input is no key");
    cli.run(&["user", "disable", "u"]);
    let out = cli.run_with_stdin(&["verify"], Some(&key));
    assert_eq!(out.status.code(), Some(1), "disabled user");
}

#[test]
fn config_file_and_human_output() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    let config = dir.path().join("ops.toml");
    std::fs::write(&config, format!("[apikey]\ndatabase_url = \"{url}\"\n")).unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_apikey-under-test"))
            .current_dir(dir.path())
            .env_remove("APIKEY_DATABASE_URL")
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&[
        "create", "Human", "--user", "h", "--group", "b", "--group", "a",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let key = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(
        key.trim().starts_with("ak_"),
        "only the key on stdout: {key}"
    );
    assert!(stderr(&out).contains("shown once"));
    let out = run(&["list"]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("Human") && table.contains("a,b") && table.contains("active"));
    assert!(!table.contains(key.trim()));
    let out = run(&["show", "Human"]);
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("tech_name:    human"));
    let out = run(&["--config", "/nonexistent.toml", "list"]);
    assert_eq!(out.status.code(), Some(2));
}

/// No silent second store: with the default `database_url` (`sqlite://apikeys.db?mode=rwc`,
/// relative to the working directory), a command run where no store is never makes an empty
/// one, except `create` and `import`, which say where they made it.
#[test]
fn no_silent_second_store() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_apikey-under-test"))
            .current_dir(dir.path())
            .env_remove("APIKEY_CONFIG")
            .env_remove("APIKEY_DATABASE_URL")
            .args(args)
            .output()
            .expect("run apikey")
    };
    let file = std::path::absolute(dir.path().join("apikeys.db")).unwrap();
    for args in [
        &["list"][..],
        &["show", "k"],
        &["audit"],
        &["usage", "k"],
        &["revoke", "k"],
        &["neutralize"],
    ] {
        let out = run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(&file.display().to_string()), "{args:?}: {err}");
        assert!(!file.exists(), "{args:?} made a store");
    }
    let out = run(&["create", "k", "--user", "u"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("created a new key store at {}", file.display())),
        "{err}"
    );
    assert!(file.exists());
    let out = run(&["create", "k2", "--user", "u"]);
    assert!(out.status.success());
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("created a new key store"),
        "only once"
    );
    assert!(run(&["list"]).status.success());
}

/// `create` with scopes, a description and metadata; `set` changes expiry, description and
/// metadata in one audited change (an expiry in the past is exit 2, nothing written);
/// `scope add|remove`; `list` filters by user, group, expiry and revocation.
#[test]
fn keys_are_edited_scoped_and_found() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    let cli = Cli {
        url: &url,
        dir: dir.path(),
    };
    let shop = cli.json(&[
        "create",
        "Shop",
        "--user",
        "alice",
        "--group",
        "billing",
        "--scope",
        "orders:write",
        "--scope",
        "invoices:*",
        "--description",
        "the shop's backend",
        "--meta",
        "plan=pro",
        "--meta",
        "url=https://shop.example/?a=b",
    ]);
    assert_eq!(
        shop["scopes"],
        serde_json::json!(["invoices:*", "orders:write"])
    );
    assert_eq!(shop["description"], "the shop's backend");
    assert_eq!(
        shop["meta"],
        serde_json::json!({"plan": "pro", "url": "https://shop.example/?a=b"})
    );
    cli.json(&["create", "ops", "--user", "bob", "--expires-in", "3d"]);
    cli.json(&["create", "old", "--user", "bob", "--expires-in", "60d"]);
    cli.json(&["revoke", "old"]);

    // Bad values: exit 2, nothing written; a metadata value is never repeated.
    for (args, says) in [
        (
            &["create", "x", "--user", "u", "--scope", "orders:"][..],
            "scope",
        ),
        (&["create", "x", "--user", "u", "--scope", "a b"], "scope"),
        (
            &["create", "x", "--user", "u", "--meta", "novalue"],
            "NAME=VALUE",
        ),
        (
            &["set", "Shop", "--expires-at", "2001-01-01T00:00:00Z"],
            "past",
        ),
        (&["set", "Shop"], "nothing to change"),
        (
            &["set", "Shop", "--expires-in", "5000000d"],
            "past the calendar's end",
        ),
        (
            &["create", "x", "--user", "u", "--expires-in", "5000000d"],
            "past the calendar's end",
        ),
        (
            &["set", "Shop", "--no-expiry", "--expires-in", "3d"],
            "cannot be used",
        ),
        (&["scope", "add", "Shop", "*:read"], "scope"),
    ] {
        let out = cli.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    let out = cli.run(&[
        "create",
        "x",
        "--user",
        "u",
        "--meta",
        "plan=secret\u{1b}[2J",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!stderr(&out).contains("secret"), "{}", stderr(&out));
    assert_eq!(cli.json(&["list"]).as_array().unwrap().len(), 3);

    // One change of several fields, audited old → new, metadata by name only.
    let set = cli.json(&[
        "set",
        "Shop",
        "--expires-in",
        "30d",
        "--description",
        "",
        "--meta",
        "plan=enterprise",
        "--unset-meta",
        "url",
    ]);
    assert!(set["expires_at"].is_string());
    assert!(set["description"].is_null());
    assert_eq!(set["meta"], serde_json::json!({"plan": "enterprise"}));
    let trail = cli.json(&["audit", "Shop"]);
    let last = trail.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "set");
    let summary = last["summary"].as_str().unwrap();
    assert!(summary.contains("no expiry → expires"), "{summary}");
    assert!(summary.contains("description removed"), "{summary}");
    assert!(summary.contains("metadata plan set"), "{summary}");
    assert!(summary.contains("metadata url removed"), "{summary}");
    assert!(!summary.contains("enterprise"), "{summary}");
    let never = cli.json(&["set", "Shop", "--no-expiry"]);
    assert!(never["expires_at"].is_null());

    let scoped = cli.json(&["scope", "add", "Shop", "orders:read"]);
    assert_eq!(
        scoped["scopes"],
        serde_json::json!(["invoices:*", "orders:read", "orders:write"])
    );
    let scoped = cli.json(&["scope", "remove", "Shop", "invoices:*"]);
    assert_eq!(
        scoped["scopes"],
        serde_json::json!(["orders:read", "orders:write"])
    );

    let names = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["list"];
        all.extend_from_slice(args);
        cli.json(&all)
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&["--user", "bob"]), ["old", "ops"]);
    assert_eq!(names(&["--group", "billing"]), ["Shop"]);
    assert_eq!(names(&["--group", "bill"]), Vec::<String>::new());
    assert_eq!(names(&["--expiring", "14d"]), ["ops"]);
    assert_eq!(names(&["--revoked"]), ["old"]);
    assert_eq!(names(&["--user", "bob", "--revoked"]), ["old"]);
    // `show` for people names every field.
    let out = cli.run(&["show", "Shop"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("scopes:       orders:read, orders:write"),
        "{text}"
    );
    assert!(text.contains("meta:         plan=enterprise"), "{text}");
}
