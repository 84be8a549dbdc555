//! Names that cannot forge output: key names, users, groups and audit actors with control
//! characters (C0, C1, DEL) or bidirectional overrides are refused by every store, by the
//! import and by the CLI (exit 2); names an older store already holds are printed escaped.

use std::path::Path;
use std::process::Output;

use apikey_core::{Actor, CreateKey, Groups, KeyHasher, NewKey, SharedStore, StoreError};
use apikey_tests::{admin, per_store, run_apikey, spec};

/// The names of the reproduction, and their kin.
const HOSTILE: &[&str] = &[
    "evil\x1b[2J\x1b[31mX\nFAKE audit line",
    "tab\there",
    "del\x7f",
    "c1\u{9b}31m",
    "bidi\u{202e}txt.exe",
    "isolate\u{2066}x\u{2069}",
    "mark\u{200f}",
];

async fn every_store_refuses_hostile_names(store: SharedStore) {
    let m = admin(&store);
    for bad in HOSTILE {
        let as_name = m.create(spec(bad, "alice", &[])).await;
        assert!(
            matches!(as_name, Err(StoreError::Invalid(_))),
            "name {bad:?}: {as_name:?}"
        );
        let as_user = m.create(spec("fine", bad, &[])).await;
        assert!(
            matches!(as_user, Err(StoreError::Invalid(_))),
            "user {bad:?}: {as_user:?}"
        );
        assert!(Groups::new([*bad]).is_err(), "group {bad:?}");
        assert!(Actor::new(bad).is_err(), "actor {bad:?}");
        let disabled = m.set_user_active(bad, false).await;
        assert!(
            matches!(disabled, Err(StoreError::Invalid(_))),
            "user disable {bad:?}: {disabled:?}"
        );
        let key = apikey_core::Secret::new(format!("imported-value-{}", bad.len()));
        let imported = m
            .import(
                CreateKey {
                    name: (*bad).to_owned(),
                    user: "alice".into(),
                    ..CreateKey::default()
                },
                &key,
            )
            .await;
        assert!(imported.is_err(), "import {bad:?}: {imported:?}");
        // The store itself refuses what the manager would have caught.
        let direct = store
            .create(
                NewKey {
                    name: "direct".into(),
                    user: (*bad).to_owned(),
                    groups: Groups::default(),
                    expires_at: None,
                    digest: KeyHasher::new(None).digest("direct-value"),
                    stub: "(custom)".into(),
                    rate_limit: None,
                    quota: None,
                    allow_ip: Default::default(),
                    scopes: Default::default(),
                    description: None,
                    meta: Default::default(),
                },
                &Actor::new("test").unwrap(),
            )
            .await;
        assert!(
            matches!(direct, Err(StoreError::Invalid(_))),
            "store create, user {bad:?}: {direct:?}"
        );
    }
    assert!(
        m.list(&apikey_core::KeyFilter::all())
            .await
            .unwrap()
            .is_empty(),
        "nothing was written"
    );
    // Ordinary text, accents and scripts included, is fine.
    m.create(spec("Café Résumé — 東京", "zoë", &["équipe"]))
        .await
        .unwrap();
}

per_store!(every_store_refuses_hostile_names);

fn cli(dir: &Path, url: &str, env: &[(&str, &str)], args: &[&str]) -> Output {
    run_apikey(env!("CARGO_BIN_EXE_apikey-under-test"), dir, url, env, args)
}

fn has_raw_controls(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    text.lines()
        .flat_map(|l| l.chars())
        .find(|c| {
            c.is_control() || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        })
        .map(|c| format!("{c:?} in {text:?}"))
}

#[test]
fn the_cli_refuses_hostile_names_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("k.db").display());
    for bad in HOSTILE {
        for args in [
            &["create", bad, "--user", "u"][..],
            &["create", "ok", "--user", bad],
            &["create", "ok", "--user", "u", "--group", bad],
            &["user", "disable", bad],
            &["--actor", bad, "create", "ok", "--user", "u"],
        ] {
            let out = cli(dir.path(), &url, &[], args);
            assert_eq!(out.status.code(), Some(2), "{args:?}");
            assert!(out.stdout.is_empty(), "{args:?}");
            assert_eq!(has_raw_controls(&out.stderr), None, "{args:?}");
        }
    }
    // Refused before anything was written: no key, not even a new store.
    let out = cli(dir.path(), &url, &[], &["list", "--json"]);
    assert_eq!(out.status.code(), Some(2), "no store was made");
    assert!(!dir.path().join("k.db").exists());
}

/// A store written before names were checked may hold anything: the CLI prints it escaped,
/// in text and in JSON, so no name can move the cursor, clear the screen or forge a line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_from_an_older_store_are_printed_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("k.db").display());
    let out = cli(
        dir.path(),
        &url,
        &[],
        &["create", "plain", "--user", "u", "--group", "g"],
    );
    assert!(out.status.success());
    {
        use sqlx::Connection;
        let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let evil = HOSTILE[0];
        sqlx::query("UPDATE apikey_keys SET user_name = $1, group_names = $2 WHERE name = 'plain'")
            .bind(evil)
            .bind(serde_json::json!([evil]).to_string())
            .execute(&mut db)
            .await
            .unwrap();
        sqlx::query("UPDATE apikey_audit SET actor = $1, summary = $2")
            .bind(HOSTILE[4])
            .bind(evil)
            .execute(&mut db)
            .await
            .unwrap();
    }
    for args in [
        &["list"][..],
        &["list", "--json"],
        &["show", "plain"],
        &["show", "plain", "--json"],
        &["audit"],
        &["audit", "--json"],
    ] {
        let out = cli(dir.path(), &url, &[], args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(has_raw_controls(&out.stdout), None, "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            !text.lines().any(|l| l.starts_with("FAKE")),
            "{args:?}: a forged line\n{text}"
        );
        assert!(
            text.contains("evil"),
            "{args:?}: the name is still shown\n{text}"
        );
        if args.contains(&"--json") {
            let v: serde_json::Value = serde_json::from_str(&text).expect("still JSON");
            assert!(v.to_string().contains("evil"));
        }
    }
}

/// Without `USER`, `LOGNAME` and `USERNAME` (cron, systemd, containers), the audit trail names
/// the OS account, not `unknown`.
#[test]
fn the_actor_is_the_os_account_without_user_variables() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("k.db").display());
    let account = std::process::Command::new("id")
        .arg("-un")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_apikey-under-test"));
    cmd.current_dir(dir.path())
        .env_remove("USER")
        .env_remove("LOGNAME")
        .env_remove("USERNAME")
        .env_remove("APIKEY_ACTOR")
        .env_remove("APIKEY_CONFIG")
        .env_remove("APIKEY_DATABASE_URL")
        .args(["--database-url", &url, "create", "cron", "--user", "u"]);
    assert!(cmd.output().unwrap().status.success());
    let out = cli(dir.path(), &url, &[], &["audit", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["actor"], serde_json::json!(account), "{v}");
}
