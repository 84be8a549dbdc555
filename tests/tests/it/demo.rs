//! The demo service behaves as the SPEC's demo section says.

use apikey_core::{MemoryStore, SharedStore};
use apikey_tests::{admin, api_key, client, get, rocket_with, spec};
use rocket::http::Status;

#[tokio::test]
async fn demo_routes() {
    let (rocket, key) = my_service::app(rocket_with(
        "[default.apikey]\ndatabase_url = \"memory:\"\n",
    ))
    .await
    .unwrap();
    let key = key.expect("an empty store gets a demo key").demo;
    let client = client(rocket).await;

    let (status, body) = get(&client, "/my_service", Some(key.expose())).await;
    assert_eq!(status, Status::Ok);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body, serde_json::json!({"user": "demo", "key": "demo"}));
    assert_eq!(
        client.get("/my_service").dispatch().await.status(),
        Status::Unauthorized
    );

    let body: serde_json::Value = client
        .get("/whoami")
        .dispatch()
        .await
        .into_json()
        .await
        .unwrap();
    assert_eq!(body, serde_json::json!({"user": null, "groups": []}));
    let body: serde_json::Value = client
        .get("/whoami")
        .header(api_key(key.expose()))
        .dispatch()
        .await
        .into_json()
        .await
        .unwrap();
    assert_eq!(
        body,
        serde_json::json!({"user": "demo", "groups": ["billing"]})
    );

    assert_eq!(
        get(&client, "/health", None).await,
        (Status::Ok, "ok".into())
    );

    let res = client
        .post("/billing")
        .header(api_key(key.expose()))
        .dispatch()
        .await;
    assert_eq!(res.status(), Status::Ok, "the demo key is in billing");
}

#[tokio::test]
async fn a_store_with_keys_gets_no_demo_key() {
    let store: SharedStore = std::sync::Arc::new(MemoryStore::new());
    let keys = admin(&store);
    keys.create(spec("reader", "rita", &[])).await.unwrap();
    assert!(my_service::seed(&keys, "apikey-admin")
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        keys.list(&apikey_core::KeyFilter::all())
            .await
            .unwrap()
            .len(),
        1,
        "nothing was added"
    );
}
