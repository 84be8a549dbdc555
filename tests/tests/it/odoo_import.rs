//! `apikey import odoo`: a real PostgreSQL database built with OCA `auth_api_key`'s tables and
//! constraints, imported into SQLite and PostgreSQL stores: values, users, groups, active
//! flags, archived users, empty and duplicate values, idempotence, dry runs.

use std::process::Command;
use std::sync::Arc;

use apikey_core::KeyRequest;
use apikey_core::{Actor, ApiKeyConfig, AuditFilter, AuthError, KeyManager, SharedStore, Verifier};
use apikey_tests::{postgres_url, PgDatabase, SharedDb};

const SCHEMA: &str = "
CREATE TABLE res_users (
    id     serial PRIMARY KEY,
    login  varchar NOT NULL UNIQUE,
    active boolean DEFAULT true
);
CREATE TABLE auth_api_key (
    id      serial PRIMARY KEY,
    name    varchar NOT NULL,
    key     varchar NOT NULL,
    user_id integer NOT NULL REFERENCES res_users (id) ON DELETE CASCADE,
    active  boolean DEFAULT true,
    CONSTRAINT auth_api_key_name_uniq UNIQUE (name)
);
";

const GROUPS: &str = "
CREATE TABLE auth_api_key_group (
    id   serial PRIMARY KEY,
    name varchar NOT NULL,
    code varchar
);
CREATE TABLE auth_api_key_group_rel (
    key_id   integer NOT NULL REFERENCES auth_api_key (id) ON DELETE CASCADE,
    group_id integer NOT NULL REFERENCES auth_api_key_group (id) ON DELETE CASCADE,
    PRIMARY KEY (key_id, group_id)
);
";

const DATA: &str = "
INSERT INTO res_users (id, login, active) VALUES
    (1, 'admin', true), (2, 'demo', true), (3, 'gone', false);
INSERT INTO auth_api_key (id, name, key, user_id, active) VALUES
    (1, 'Good', 'good_value', 2, true),
    (2, 'Inactive', 'inactive_value', 2, false),
    (3, 'Empty', '', 2, true),
    (4, 'Copy', 'good_value', 1, true),
    (5, 'Archived User', 'gone_value', 3, true),
    (6, 'Two Groups', 'two_value', 1, true);
";

const GROUP_DATA: &str = "
INSERT INTO auth_api_key_group (id, name, code) VALUES (1, 'G One', 'g-one'), (2, 'G Two', 'g-two');
INSERT INTO auth_api_key_group_rel (key_id, group_id) VALUES (1, 1), (6, 1), (6, 2);
";

/// A fresh database with the module's tables, with the group tables or without.
async fn odoo_db(with_groups: bool) -> Option<PgDatabase> {
    let db = PgDatabase::create("odoo").await?;
    db.run(SCHEMA).await;
    db.run(DATA).await;
    if with_groups {
        db.run(GROUPS).await;
        db.run(GROUP_DATA).await;
    }
    Some(db)
}

fn manager(store: &SharedStore) -> KeyManager {
    KeyManager::new(store.clone(), &ApiKeyConfig::default())
        .with_actor(Actor::new("migration").unwrap())
}

async fn verify(store: &SharedStore, key: &str) -> Result<(String, Vec<String>), AuthError> {
    let verifier = Verifier::new(ApiKeyConfig::default(), store.clone())
        .await
        .unwrap();
    let id = verifier
        .verify_request(&KeyRequest::new(key))
        .await?
        .identity;
    Ok((
        id.user().to_owned(),
        id.groups().map(str::to_owned).collect(),
    ))
}

async fn import_into(db: SharedDb) {
    let Some(odoo) = odoo_db(true).await else {
        eprintln!("skipped: the Odoo database needs APIKEY_TEST_POSTGRES_URL");
        return;
    };
    let store = db.store().await;
    let m = manager(&store);

    // A dry run reads both sides and writes nothing.
    let dry = m.import_odoo(&odoo.url, true).await.unwrap();
    assert!(dry.dry_run);
    assert_eq!(
        (dry.created, dry.updated, dry.unchanged, dry.skipped),
        (4, 0, 0, 2)
    );
    assert_eq!(dry.users_disabled, 1);
    assert!(
        m.list(&apikey_core::KeyFilter::all())
            .await
            .unwrap()
            .is_empty(),
        "a dry run writes nothing"
    );
    assert!(m.audit(&AuditFilter::default()).await.unwrap().is_empty());

    let first = m.import_odoo(&odoo.url, false).await.unwrap();
    assert_eq!(
        (first.created, first.updated, first.unchanged, first.skipped),
        (4, 0, 0, 2)
    );
    assert_eq!(first.users_disabled, 1);
    let warnings = first.warnings.join("\n");
    assert!(warnings.contains("#3 \"Empty\": no value"), "{warnings}");
    assert!(
        warnings.contains("#4 \"Copy\": same value as Odoo key #1"),
        "{warnings}"
    );
    assert!(!warnings.contains("good_value"), "values are never printed");

    // Existing clients keep working with the values they hold.
    assert_eq!(
        verify(&store, "good_value").await,
        Ok(("demo".into(), vec!["g-one".into()]))
    );
    assert_eq!(
        verify(&store, "two_value").await,
        Ok(("admin".into(), vec!["g-one".into(), "g-two".into()]))
    );
    assert_eq!(
        verify(&store, "inactive_value").await,
        Err(AuthError::INVALID),
        "inactive in Odoo, inactive here"
    );
    assert_eq!(
        verify(&store, "gone_value").await,
        Err(AuthError::INVALID),
        "the archived user is disabled"
    );
    assert!(!m.user_active("gone").await.unwrap());
    let listed = m.list(&apikey_core::KeyFilter::all()).await.unwrap();
    let names: Vec<&str> = listed.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["Archived User", "Good", "Inactive", "Two Groups"]);
    let good = m.get("Good").await.unwrap();
    assert_eq!(good.tech_name, "good");
    let trail = m.audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(trail.iter().filter(|a| a.action == "import").count(), 4);
    assert!(trail.iter().all(|a| a.actor == "migration"));
    assert!(trail
        .iter()
        .any(|a| a.action == "user-disable" && a.name == "gone"));
    assert!(
        !format!("{trail:?}").contains("_value"),
        "no value in the trail"
    );

    // Idempotent: a second run changes nothing and records nothing.
    let again = m.import_odoo(&odoo.url, false).await.unwrap();
    assert_eq!(
        (again.created, again.updated, again.unchanged, again.skipped),
        (0, 0, 4, 2)
    );
    assert_eq!(again.users_disabled, 0);
    assert_eq!(m.audit(&AuditFilter::default()).await.unwrap(), trail);

    // A value changed and a key archived in Odoo: brought in line.
    odoo.run("UPDATE auth_api_key SET key = 'new_value' WHERE id = 1")
        .await;
    odoo.run("UPDATE auth_api_key SET active = false WHERE id = 6")
        .await;
    let dry = m.import_odoo(&odoo.url, true).await.unwrap();
    // "Copy" (#4) held the same value as #1; now that #1 moved on, it is the one Odoo matches.
    assert_eq!((dry.created, dry.updated, dry.unchanged), (1, 2, 2));
    assert_eq!(
        verify(&store, "good_value").await.map(|v| v.0),
        Ok("demo".into())
    );
    let changed = m.import_odoo(&odoo.url, false).await.unwrap();
    assert_eq!(
        (
            changed.created,
            changed.updated,
            changed.unchanged,
            changed.skipped
        ),
        (1, 2, 2, 1)
    );
    assert_eq!(
        verify(&store, "good_value").await,
        Ok(("admin".into(), vec![])),
        "as in Odoo: the value now belongs to \"Copy\""
    );
    assert_eq!(
        verify(&store, "new_value").await.map(|v| v.0),
        Ok("demo".into())
    );
    assert_eq!(verify(&store, "two_value").await, Err(AuthError::INVALID));

    drop((m, store));
    odoo.drop().await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_imports_an_odoo_database() {
    import_into(SharedDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_imports_an_odoo_database() {
    if let Some(db) = SharedDb::postgres() {
        import_into(db).await;
    }
}

/// Without `auth_api_key_group`, keys come over without groups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_without_group_tables_is_fine() {
    let Some(odoo) = odoo_db(false).await else {
        return;
    };
    let db = SharedDb::sqlite();
    let store = db.store().await;
    let report = manager(&store).import_odoo(&odoo.url, false).await.unwrap();
    assert_eq!(report.created, 4);
    assert_eq!(
        verify(&store, "two_value").await,
        Ok(("admin".into(), vec![]))
    );
    odoo.drop().await;
}

fn apikey(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let url = format!("sqlite://{}?mode=rwc", dir.join("keys.db").display());
    Command::new(env!("CARGO_BIN_EXE_apikey-under-test"))
        .current_dir(dir)
        .env_remove("APIKEY_CONFIG")
        .env_remove("APIKEY_DATABASE_URL")
        .args(["--database-url", &url])
        .args(args)
        .output()
        .unwrap()
}

/// The command: JSON counts, a clear error (exit 2) for a database that is not Odoo's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_reports_counts_and_refuses_other_databases() {
    let Some(odoo) = odoo_db(true).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = apikey(
        dir.path(),
        &[
            "--json",
            "--actor",
            "ops",
            "import",
            "odoo",
            &odoo.url,
            "--dry-run",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["created"], 4);
    assert_eq!(report["dry_run"], true);
    let out = apikey(dir.path(), &["--actor", "ops", "import", "odoo", &odoo.url]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("4 created") && text.contains("2 skipped"),
        "{text}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("warning: Odoo key #3"), "{stderr}");
    assert!(!stderr.contains("good_value") && !text.contains("good_value"));
    let out = apikey(dir.path(), &["--json", "audit", "Good"]);
    let trail: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(trail[0]["action"], "import");
    assert_eq!(trail[0]["actor"], "ops");

    // The test server's own database has no auth_api_key table.
    let plain = postgres_url().unwrap();
    let out = apikey(dir.path(), &["import", "odoo", &plain]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no auth_api_key table"), "{stderr}");
    let out = apikey(
        dir.path(),
        &["import", "odoo", "postgres://nobody@127.0.0.1:1/none"],
    );
    assert_eq!(out.status.code(), Some(2));
    odoo.drop().await;
}

/// Two Odoo keys with one value: Odoo matches active keys only, so the active one is the one
/// its clients use, whatever the ids say; an inactive twin is reported, not imported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_active_key_wins_a_shared_value() {
    let Some(odoo) = PgDatabase::create("odoo").await else {
        return;
    };
    odoo.run(SCHEMA).await;
    odoo.run(
        "INSERT INTO res_users (id, login, active) VALUES (1, 'old', true), (2, 'current', true);
         INSERT INTO auth_api_key (id, name, key, user_id, active) VALUES
             (1, 'Retired', 'shared_value', 1, false),
             (2, 'Current', 'shared_value', 2, true),
             (3, 'Both Inactive A', 'dormant_value', 1, false),
             (4, 'Both Inactive B', 'dormant_value', 2, false);",
    )
    .await;
    let db = SharedDb::sqlite();
    let store = db.store().await;
    let m = manager(&store);
    for dry_run in [true, false] {
        let report = m.import_odoo(&odoo.url, dry_run).await.unwrap();
        assert_eq!((report.created, report.skipped), (2, 2), "{report:?}");
        let warnings = report.warnings.join("\n");
        assert!(
            warnings.contains("#1 \"Retired\": same value as Odoo key #2"),
            "{warnings}"
        );
        assert!(
            warnings.contains("#4 \"Both Inactive B\": same value as Odoo key #3"),
            "{warnings}"
        );
    }
    assert_eq!(
        verify(&store, "shared_value").await.map(|v| v.0),
        Ok("current".into()),
        "the clients of the active key keep working"
    );
    let names: Vec<String> = m
        .list(&apikey_core::KeyFilter::all())
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["Both Inactive A", "Current"]);
    drop((m, store));
    odoo.drop().await;
    db.finish().await;
}

/// The import never takes over what it did not create: a key made here (the seeded admin, a
/// CLI key) with the name of an Odoo key keeps its secret, user, groups and state; an Odoo
/// group named like the admin group grants nothing unless asked for; an archived Odoo user
/// disables only a user whose keys all came from the import.
async fn never_takes_over(db: SharedDb) {
    let Some(odoo) = PgDatabase::create("odoo").await else {
        return;
    };
    odoo.run(SCHEMA).await;
    odoo.run(GROUPS).await;
    odoo.run(
        "INSERT INTO res_users (id, login, active) VALUES
             (1, 'admin', false), (2, 'robot', true), (3, 'gone', false);
         INSERT INTO auth_api_key (id, name, key, user_id, active) VALUES
             (1, 'admin', 'odoo_admin_value', 1, true),
             (2, 'Robot', 'robot_value', 2, true),
             (3, 'Gone', 'gone_value', 3, true);
         INSERT INTO auth_api_key_group (id, name, code) VALUES (1, 'Admins', 'apikey-admin');
         INSERT INTO auth_api_key_group_rel (key_id, group_id) VALUES (2, 1);",
    )
    .await;
    let store = db.store().await;
    let m = manager(&store);
    // Made here: the seeded admin key (user admin), and a CLI key of user gone.
    let (_, local_admin) = m
        .create(apikey_tests::spec("admin", "admin", &["apikey-admin"]))
        .await
        .unwrap();
    m.create(apikey_tests::spec("local", "gone", &[]))
        .await
        .unwrap();

    let report = m.import_odoo(&odoo.url, false).await.unwrap();
    let warnings = report.warnings.join("\n");
    assert_eq!((report.created, report.skipped), (2, 1), "{warnings}");
    assert!(warnings.contains("#1 \"admin\""), "{warnings}");
    assert!(warnings.contains("apikey-admin"), "{warnings}");
    // The local admin key is untouched: its own secret, user, group; still active.
    assert_eq!(
        verify(&store, local_admin.expose()).await,
        Ok(("admin".into(), vec!["apikey-admin".into()]))
    );
    assert_eq!(
        verify(&store, "odoo_admin_value").await,
        Err(AuthError::INVALID)
    );
    assert!(
        m.user_active("admin").await.unwrap(),
        "not a user the import created"
    );
    // Robot came over without the admin group.
    assert_eq!(
        verify(&store, "robot_value").await,
        Ok(("robot".into(), vec![]))
    );
    // gone has a key made here too: not disabled.
    assert!(m.user_active("gone").await.unwrap());
    assert_eq!(report.users_disabled, 0);

    // Asked for, the admin group comes over.
    let report = m.import_odoo_with(&odoo.url, false, true).await.unwrap();
    assert_eq!(report.updated, 1, "{:?}", report.warnings);
    assert_eq!(
        verify(&store, "robot_value").await,
        Ok(("robot".into(), vec!["apikey-admin".into()]))
    );
    drop((m, store));
    odoo.drop().await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_import_never_takes_over() {
    never_takes_over(SharedDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_import_never_takes_over() {
    if let Some(db) = SharedDb::postgres() {
        never_takes_over(db).await;
    }
}

/// An import interrupted by a store failure says how far it got and that running it again
/// finishes it; the second run imports the rest and finds the first ones in line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_import_is_resumed_by_running_it_again() {
    let Some(odoo) = odoo_db(true).await else {
        return;
    };
    let store: SharedStore = Arc::new(apikey_core::MemoryStore::new());
    let probe = apikey_tests::Probe::new(store.clone());
    probe
        .imports_left
        .store(2, std::sync::atomic::Ordering::SeqCst);
    let probed: SharedStore = probe.clone();
    let m = manager(&probed);
    let err = m
        .import_odoo(&odoo.url, false)
        .await
        .expect_err("the store failed midway")
        .to_string();
    assert!(err.contains("2 key(s) were imported"), "{err}");
    assert!(err.contains("run the import again"), "{err}");
    assert!(!err.contains("_value"), "no value in the message: {err}");
    assert_eq!(
        m.list(&apikey_core::KeyFilter::all()).await.unwrap().len(),
        2,
        "two keys, each whole"
    );
    probe
        .imports_left
        .store(-1, std::sync::atomic::Ordering::SeqCst);
    let again = m.import_odoo(&odoo.url, false).await.unwrap();
    assert_eq!(
        (again.created, again.unchanged, again.skipped),
        (2, 2, 2),
        "{:?}",
        again.warnings
    );
    assert_eq!(
        verify(&store, "good_value").await.map(|v| v.0),
        Ok("demo".into())
    );
    drop((m, probed, probe, store));
    odoo.drop().await;
}

/// Hardening round 3, item 3: a later import never undoes what was done here. A key revoked
/// here stays revoked, a key rotated here keeps its new secret (Odoo's old value stays dead),
/// both reported as conflicts; a key whose user was enabled here keeps its user enabled. Group
/// codes with whitespace around the admin group's name are still the admin group, and an
/// archived Odoo login that a config section acts for is never disabled.
async fn local_changes_survive(db: SharedDb) {
    let Some(odoo) = PgDatabase::create("odoo").await else {
        return;
    };
    odoo.run(SCHEMA).await;
    odoo.run(GROUPS).await;
    odoo.run(
        "INSERT INTO res_users (id, login, active) VALUES
             (1, 'alice', true), (2, 'bob', true), (3, 'carol', false), (4, 'dave', false),
             (5, 'erin', true);
         INSERT INTO auth_api_key (id, name, key, user_id, active) VALUES
             (1, 'Revoked Here', 'revoked_value', 1, true),
             (2, 'Rotated Here', 'rotated_value', 2, true),
             (3, 'Enabled Here', 'carol_value', 3, true),
             (4, 'Section User', 'dave_value', 4, true),
             (5, 'Spaced', 'erin_value', 5, true);
         INSERT INTO auth_api_key_group (id, name, code) VALUES
             (1, 'Space', 'apikey-admin '), (2, 'Tab', E'\tapikey-admin'),
             (3, 'NBSP', '\u{a0}apikey-admin\u{a0}');
         INSERT INTO auth_api_key_group_rel (key_id, group_id) VALUES (5, 1), (5, 2), (5, 3);",
    )
    .await;
    let store = db.store().await;
    // A config section acts for dave, whom Odoo archived.
    use rocket::figment::providers::{Format, Toml};
    use rocket::figment::Figment;
    let config = ApiKeyConfig::from_figment(&Figment::from(Toml::string(
        "[api_key_partner]\nkey = \"partner-secret-0123456789\"\nuser = \"dave\"",
    )))
    .unwrap();
    let m = KeyManager::new(store.clone(), &config).with_actor(Actor::new("migration").unwrap());

    let first = m.import_odoo(&odoo.url, false).await.unwrap();
    let warnings = first.warnings.join("\n");
    assert_eq!(first.created, 5, "{warnings}");
    // Whitespace around the admin group's name does not smuggle it in.
    assert_eq!(
        verify(&store, "erin_value").await,
        Ok(("erin".into(), vec![]))
    );
    assert!(warnings.contains("admin group"), "{warnings}");
    // carol is archived and only has the imported key: disabled. dave too, but a section
    // acts for him: left enabled.
    assert!(!m.user_active("carol").await.unwrap());
    assert!(m.user_active("dave").await.unwrap(), "{warnings}");
    assert!(
        warnings.contains("config section acts for \"dave\""),
        "{warnings}"
    );

    // Local actions.
    m.revoke("Revoked Here").await.unwrap();
    let (_, rotated) = m
        .rotate("Rotated Here", std::time::Duration::ZERO)
        .await
        .unwrap();
    m.set_user_active("carol", true).await.unwrap();

    let again = m.import_odoo(&odoo.url, false).await.unwrap();
    let warnings = again.warnings.join("\n");
    assert_eq!(again.conflicts, 3, "{warnings}");
    assert_eq!(again.updated, 0, "{warnings}");
    for name in ["Revoked Here", "Rotated Here", "Enabled Here"] {
        assert!(
            warnings.contains(&format!(
                "{name:?}: changed here since it was imported; left as is"
            )),
            "{warnings}"
        );
    }
    assert_eq!(
        verify(&store, "revoked_value").await,
        Err(AuthError::INVALID),
        "still revoked"
    );
    assert!(!m.get("Revoked Here").await.unwrap().active);
    assert_eq!(
        verify(&store, "rotated_value").await,
        Err(AuthError::INVALID),
        "Odoo's old value is not given back"
    );
    assert_eq!(
        verify(&store, rotated.expose()).await,
        Ok(("bob".into(), vec![]))
    );
    assert!(
        m.user_active("carol").await.unwrap(),
        "enabled here: stays so"
    );
    assert_eq!(again.users_disabled, 0);
    // A dry run says the same.
    let dry = m.import_odoo(&odoo.url, true).await.unwrap();
    assert_eq!(dry.conflicts, 3, "{:?}", dry.warnings);
    drop((m, store));
    odoo.drop().await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_import_leaves_local_changes() {
    local_changes_survive(SharedDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_import_leaves_local_changes() {
    if let Some(db) = SharedDb::postgres() {
        local_changes_survive(db).await;
    }
}
