//! Running keys for real from the command line, on SQLite and PostgreSQL: the audit trail and
//! who is named in it, `list --expiring`, an Odoo config file, `neutralize`, and the help of
//! each new command.

use std::path::Path;
use std::process::{Command, Output};

use apikey_tests::{json_output, run_apikey, PgDatabase, SharedDb};

/// Runs `apikey` on `url` in `dir` with `env`; returns the output.
fn apikey(dir: &Path, url: &str, env: &[(&str, &str)], args: &[&str]) -> Output {
    run_apikey(env!("CARGO_BIN_EXE_apikey-under-test"), dir, url, env, args)
}

/// `apikey verify` of `key` (on stdin), with `args` before the command.
fn verify_with(dir: &Path, url: &str, args: &[&str], key: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_apikey-under-test"))
        .current_dir(dir)
        .env_remove("APIKEY_CONFIG")
        .args(["--database-url", url])
        .args(args)
        .arg("verify")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run apikey verify");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(key.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    json_output(out)
}

async fn operate(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let run = |env: &[(&str, &str)], args: &[&str]| apikey(dir.path(), url, env, args);

    // Who: --actor, else APIKEY_ACTOR, else the OS user.
    let created = json(&run(
        &[],
        &[
            "--json",
            "--actor",
            "alice",
            "create",
            "soon",
            "--user",
            "u",
            "--expires-in",
            "3d",
        ],
    ));
    let secret = created["key"].as_str().unwrap().to_owned();
    json(&run(
        &[("APIKEY_ACTOR", "ci-bot")],
        &[
            "--json",
            "create",
            "later",
            "--user",
            "u",
            "--expires-in",
            "60d",
        ],
    ));
    json(&run(
        &[
            ("APIKEY_ACTOR", ""),
            ("USER", "os-user"),
            ("LOGNAME", "os-user"),
        ],
        &["--json", "create", "never", "--user", "u"],
    ));
    json(&run(&[], &["--json", "--actor", "bob", "revoke", "later"]));
    json(&run(
        &[],
        &[
            "--json", "--actor", "bob", "group", "add", "soon", "billing",
        ],
    ));
    json(&run(
        &[],
        &["--json", "--actor", "bob", "user", "disable", "u"],
    ));

    let trail = json(&run(&[], &["--json", "audit"]));
    let rows: Vec<(String, String, String)> = trail
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let s = |k: &str| a[k].as_str().unwrap().to_owned();
            (s("actor"), s("action"), s("name"))
        })
        .collect();
    let want = [
        ("alice", "create", "soon"),
        ("ci-bot", "create", "later"),
        ("os-user", "create", "never"),
        ("bob", "revoke", "later"),
        ("bob", "groups", "soon"),
        ("bob", "user-disable", "u"),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(rows, want);
    assert!(
        !trail.to_string().contains(&secret),
        "no secret in the trail"
    );
    let of_soon = json(&run(&[], &["--json", "audit", "soon"]));
    assert_eq!(of_soon.as_array().unwrap().len(), 2);
    let recent = json(&run(&[], &["--json", "audit", "--since", "1h"]));
    assert_eq!(recent.as_array().unwrap().len(), 6);
    let text = run(&[], &["audit", "later"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.starts_with("AT"), "{text}");
    assert!(text.contains("ci-bot") && text.contains("revoke"), "{text}");

    // Only the keys that expire within the window.
    let expiring = json(&run(&[], &["--json", "list", "--expiring", "14d"]));
    let names: Vec<&str> = expiring
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["soon"]);
    let all = json(&run(&[], &["--json", "list"]));
    assert_eq!(all.as_array().unwrap().len(), 3);

    // An Odoo config file as it is: its section replaces the stored key's value.
    std::fs::write(
        dir.path().join("odoo.conf"),
        "[options]\ndb_host = localhost\n\n[api_key_never]\nkey = from_odoo_conf\n",
    )
    .unwrap();
    let with_conf = |key: &str| {
        verify_with(dir.path(), url, &["--config", "odoo.conf"], key)
            .status
            .code()
    };
    json(&run(&[], &["--json", "user", "enable", "u"]));
    assert_eq!(with_conf("from_odoo_conf"), Some(0), "the file's key works");
    let never = json(&run(&[], &["--json", "rotate", "never"]));
    let stored = never["key"].as_str().unwrap().to_owned();
    assert_eq!(with_conf(&stored), Some(1), "the stored key is replaced");
    assert_eq!(
        verify_with(dir.path(), url, &[], &stored).status.code(),
        Some(0),
        "without the file the stored key works"
    );

    // Neutralize: every key inactive, in the trail.
    let done = json(&run(&[], &["--json", "--actor", "restore", "neutralize"]));
    assert_eq!(done["deactivated"], 2, "two keys were active");
    let all = json(&run(&[], &["--json", "list"]));
    assert!(all.as_array().unwrap().iter().all(|r| r["active"] == false));
    let verify = Command::new(env!("CARGO_BIN_EXE_apikey-under-test"))
        .current_dir(dir.path())
        .args(["--database-url", url, "verify"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(secret.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert_eq!(
        verify.status.code(),
        Some(1),
        "a neutralized key is refused"
    );
    let last = json(&run(&[], &["--json", "audit", "*"]));
    assert_eq!(last[0]["action"], "neutralize");
    assert_eq!(last[0]["actor"], "restore");

    // A bad actor or window is a clear error, and nothing is written.
    let bad = run(&[], &["--actor", " ", "revoke", "soon"]);
    assert_eq!(bad.status.code(), Some(2));
    let bad = run(&[], &["list", "--expiring", "soon"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_audit_expiring_and_neutralize() {
    let db = SharedDb::sqlite();
    operate(&db.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_audit_expiring_and_neutralize() {
    // The CLI's own schema (`apikey`), in a database of the test's own.
    if let Some(pg) = PgDatabase::create("apikey_ops").await {
        operate(&pg.url).await;
        pg.drop().await;
    }
}

#[test]
fn every_new_command_has_help() {
    let help = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_apikey-under-test"))
            .args(args)
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let top = help(&[]);
    for word in ["audit", "import", "neutralize", "--actor"] {
        assert!(top.contains(word), "{word}: {top}");
    }
    assert!(help(&["audit"]).contains("--since"));
    assert!(help(&["list"]).contains("--expiring"));
    let odoo = help(&["import", "odoo"]);
    assert!(
        odoo.contains("--dry-run") && odoo.contains("ODOO_DATABASE_URL"),
        "{odoo}"
    );
    assert!(help(&["neutralize"]).contains("pepper"));
}

/// Migrations apart from serving, on SQLite and (when configured) PostgreSQL: `apikey migrate`
/// applies and says what; `--check` exits 1 listing what is pending; a store behind this build
/// is refused with `auto_migrate = false` naming `apikey migrate` (and migrated with the
/// default); a store ahead of this build is refused at once.
/// A direct connection to the store's database, to play an older or a newer build.
enum Raw {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Raw {
    async fn run(&self, statement: &str) {
        let q = || sqlx::AssertSqlSafe(statement.to_owned());
        match self {
            Raw::Sqlite(pool) => sqlx::query(q()).execute(pool).await.map(drop),
            Raw::Postgres(pool) => sqlx::query(q()).execute(pool).await.map(drop),
        }
        .unwrap();
    }
}

async fn migrations_on(url: &str, dir: &Path, raw: impl std::future::Future<Output = Raw>) {
    let out = apikey(dir, url, &[], &["migrate"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Applied: 1 keys"), "{text}");
    assert!(
        text.contains("The key store is at schema 9 (it was at 0)."),
        "{text}"
    );
    let again = apikey(dir, url, &[], &["migrate"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("up to date (schema 9)"));
    assert!(apikey(dir, url, &[], &["migrate", "--check"])
        .status
        .success());

    // Undo the last migration by hand: a store of the previous build.
    let db = raw.await;
    for column in ["scopes", "description", "meta"] {
        db.run(&format!("ALTER TABLE apikey_keys DROP COLUMN {column}"))
            .await;
    }
    db.run("DELETE FROM _sqlx_migrations WHERE version = 9")
        .await;
    let check = apikey(dir, url, &[], &["--json", "migrate", "--check"]);
    assert_eq!(check.status.code(), Some(1));
    let status: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(status["schema"], 8);
    assert_eq!(status["pending"][0]["version"], 9);
    assert!(String::from_utf8_lossy(&check.stderr).contains("run `apikey migrate`"));
    let settings = apikey_core::Settings {
        database_url: url.to_owned(),
        auto_migrate: false,
        ..apikey_core::Settings::default()
    };
    match apikey_core::open(&settings).await {
        Err(e) => assert_eq!(
            e.to_string(),
            "the key store's schema is at 8, this build needs 9: run `apikey migrate`"
        ),
        Ok(_) => panic!("a store behind the build was opened without migrating"),
    }
    let refused = apikey(dir, url, &[("APIKEY_AUTO_MIGRATE", "false")], &["list"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("run `apikey migrate`"));
    let applied = apikey(dir, url, &[], &["migrate"]);
    assert!(String::from_utf8_lossy(&applied.stdout).contains("Applied: 9 scopes meta"));
    assert!(
        apikey_core::open(&settings).await.is_ok(),
        "current: opened without DDL"
    );

    // A newer build migrated it: refused, never half-used.
    db.run(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99, 'future', TRUE, '\\x00', 0)",
    )
    .await;
    let ahead = apikey(dir, url, &[], &["list"]);
    assert_eq!(ahead.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&ahead.stderr).contains("newer than the 9 this binary knows"),
        "{}",
        String::from_utf8_lossy(&ahead.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_migrations_apart_from_serving() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.db");
    let url = format!("sqlite://{}?mode=rwc", file.display());
    let raw = format!("sqlite://{}", file.display());
    let raw = async move { Raw::Sqlite(sqlx::SqlitePool::connect(&raw).await.unwrap()) };
    migrations_on(&url, dir.path(), raw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_migrations_apart_from_serving() {
    let Some(db) = PgDatabase::create("migrate").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sep = if db.url.contains('?') { '&' } else { '?' };
    let raw = format!("{}{sep}options=-c%20search_path%3Dapikey", db.url);
    let raw = async move { Raw::Postgres(sqlx::PgPool::connect(&raw).await.unwrap()) };
    migrations_on(&db.url, dir.path(), raw).await;
    db.drop().await;
}
