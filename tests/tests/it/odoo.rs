//! The tests of the Odoo module `auth_api_key` (and `auth_api_key_server_env`,
//! `auth_api_key_group`), ported by name, on every store. Where we are deliberately stricter
//! than Odoo, the test says why.

use std::sync::Arc;

use apikey_core::{Actor, KeyHasher, NewSecret, Secret, SharedStore};
use apikey_rocket::ApiKey;
use apikey_tests::{admin, api_key, demo_client, get, rocket_with, spec};
use rocket::http::Status;
use rocket::local::asynchronous::Client;
use rocket::routes;

/// Imports a key with a known value, as Odoo records hold plain keys.
async fn record(store: &SharedStore, name: &str, key: &str, user: &str, groups: &[&str]) {
    admin(store)
        .import(spec(name, user, groups), &Secret::new(key))
        .await
        .unwrap();
}

/// The user the service sees for `key`, or the refusal status.
async fn user_of(client: &Client, key: &str) -> Result<String, Status> {
    let (status, body) = get(client, "/my_service", Some(key)).await;
    if status != Status::Ok {
        return Err(status);
    }
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    Ok(body["user"].as_str().unwrap().to_owned())
}

apikey_tests::per_store!(
    test_lookup_key_from_db,
    test_wrong_key,
    test_cache_invalidation,
    test_lookup_key_from_env,
    test_config_only_key,
    test_user_archived_unarchived_with_option_on,
    test_user_archived_unarchived_with_option_off,
    test_relations,
    stricter_delete_and_revoke_take_effect_at_once,
    stricter_config_key_of_revoked_record_is_refused
);

async fn test_lookup_key_from_db(store: SharedStore) {
    record(&store, "good", "api_key", "demo", &[]).await;
    let client = demo_client(&store, "").await;
    assert_eq!(user_of(&client, "api_key").await, Ok("demo".into()));
}

async fn test_wrong_key(store: SharedStore) {
    record(&store, "good", "api_key", "demo", &[]).await;
    let client = demo_client(&store, "").await;
    assert_eq!(
        user_of(&client, "api_wrong_key").await,
        Err(Status::Unauthorized)
    );
}

async fn test_cache_invalidation(store: SharedStore) {
    record(&store, "good", "api_key", "demo", &[]).await;
    let client = demo_client(&store, "").await;
    assert_eq!(user_of(&client, "api_key").await, Ok("demo".into()));
    // Odoo writes the new value into the record; we give the record a new secret.
    let digest = KeyHasher::new(None).digest("updated_key");
    store
        .rotate(
            "good",
            NewSecret::new(digest, "(custom)", None),
            &Actor::from_env(),
        )
        .await
        .unwrap();
    assert_eq!(user_of(&client, "updated_key").await, Ok("demo".into()));
    assert_eq!(user_of(&client, "api_key").await, Err(Status::Unauthorized));
}

async fn test_lookup_key_from_env(store: SharedStore) {
    record(&store, "From Env", "dummy", "demo", &[]).await;
    let client = demo_client(
        &store,
        "[default.api_key_from_env]\nkey = \"api_key_from_env\"\n",
    )
    .await;
    assert_eq!(
        user_of(&client, "api_key_from_env").await,
        Ok("demo".into())
    );
    assert_eq!(
        user_of(&client, "dummy").await,
        Err(Status::Unauthorized),
        "the config value replaces the stored one"
    );
}

async fn test_config_only_key(store: SharedStore) {
    let client = demo_client(
        &store,
        "[default.api_key_robot]\nkey = \"robot_key\"\nuser = \"robot\"\ngroups = [\"billing\"]\n",
    )
    .await;
    assert_eq!(user_of(&client, "robot_key").await, Ok("robot".into()));
    let res = client
        .post("/billing")
        .header(api_key("robot_key"))
        .dispatch()
        .await;
    assert_eq!(res.status(), Status::Ok, "config groups apply");
}

async fn test_user_archived_unarchived_with_option_on(store: SharedStore) {
    record(&store, "good", "api_key", "demo", &[]).await;
    let client = demo_client(&store, "").await;
    assert_eq!(user_of(&client, "api_key").await, Ok("demo".into()));
    admin(&store).set_user_active("demo", false).await.unwrap();
    assert_eq!(user_of(&client, "api_key").await, Err(Status::Unauthorized));
    admin(&store).set_user_active("demo", true).await.unwrap();
    assert_eq!(user_of(&client, "api_key").await, Ok("demo".into()));
}

async fn test_user_archived_unarchived_with_option_off(store: SharedStore) {
    record(&store, "good", "api_key", "demo", &[]).await;
    let client = demo_client(
        &store,
        "[default.apikey]\ndisable_keys_of_inactive_users = false\n",
    )
    .await;
    admin(&store).set_user_active("demo", false).await.unwrap();
    assert_eq!(user_of(&client, "api_key").await, Ok("demo".into()));
}

async fn test_relations(store: SharedStore) {
    record(&store, "One", "k1", "u", &["g-one"]).await;
    record(&store, "Two", "k2", "u", &["g-one"]).await;
    record(&store, "Three", "k3", "u", &["g-two"]).await;
    let all = store.list(&apikey_core::KeyFilter::all()).await.unwrap();
    let members = |group: &str| -> Vec<String> {
        all.iter()
            .filter(|r| r.groups.iter().any(|g| g == group))
            .map(|r| r.name.clone())
            .collect()
    };
    assert_eq!(members("g-one"), ["One", "Two"]);
    assert_eq!(members("g-two"), ["Three"]);
    let groups_of = |name: &str| all.iter().find(|r| r.name == name).unwrap().groups.clone();
    assert_eq!(groups_of("One"), ["g-one"]);
    assert_eq!(groups_of("Three"), ["g-two"]);
}

/// Odoo clears its cache on create/write of `key` or `user_id` only, so a deleted or archived
/// key keeps working from the cache. Here every change takes effect on the next request.
async fn stricter_delete_and_revoke_take_effect_at_once(store: SharedStore) {
    record(&store, "a", "key_a", "demo", &[]).await;
    record(&store, "b", "key_b", "demo", &[]).await;
    let client = demo_client(&store, "").await;
    assert!(user_of(&client, "key_a").await.is_ok());
    assert!(user_of(&client, "key_b").await.is_ok());
    admin(&store).delete("a").await.unwrap();
    admin(&store).revoke("b").await.unwrap();
    assert_eq!(user_of(&client, "key_a").await, Err(Status::Unauthorized));
    assert_eq!(user_of(&client, "key_b").await, Err(Status::Unauthorized));
    admin(&store).activate("b").await.unwrap();
    assert!(user_of(&client, "key_b").await.is_ok());
}

/// A config section replaces a record's key, not its life: revoking the record ends it too.
async fn stricter_config_key_of_revoked_record_is_refused(store: SharedStore) {
    record(&store, "From Env", "dummy", "demo", &[]).await;
    let client = demo_client(
        &store,
        "[default.api_key_from_env]\nkey = \"from_config\"\n",
    )
    .await;
    assert!(user_of(&client, "from_config").await.is_ok());
    admin(&store).revoke("From Env").await.unwrap();
    assert_eq!(
        user_of(&client, "from_config").await,
        Err(Status::Unauthorized)
    );
}

#[tokio::test]
async fn config_only_key_needs_a_user() {
    let store: SharedStore = Arc::new(apikey_core::MemoryStore::new());
    let rocket = rocket_with("[default.api_key_lonely]\nkey = \"k\"\n")
        .attach(ApiKey::with_store(store))
        .mount("/", routes![my_service::my_service]);
    let err = Client::tracked(rocket).await.map(|_| ()).unwrap_err();
    assert!(matches!(
        err.kind(),
        rocket::error::ErrorKind::FailedFairings(_)
    ));
}
