//! The demo service behaves as the SPEC's demo section says.

use apikey_core::{ApiKeyConfig, CreateKey, KeyManager};
use apikey_tests::{client, rocket_with};
use rocket::http::{Header, Status};

#[tokio::test]
async fn demo_routes() {
    let (rocket, key) = my_service::app(rocket_with(
        "[default.apikey]\ndatabase_url = \"memory:\"\n",
    ))
    .await
    .unwrap();
    let key = key.expect("an empty store gets a demo key");
    let client = client(rocket).await;
    let with_key = |k: &str| Header::new("API-KEY", k.to_owned());

    let res = client
        .get("/my_service")
        .header(with_key(key.expose()))
        .dispatch()
        .await;
    assert_eq!(res.status(), Status::Ok);
    let body: serde_json::Value = res.into_json().await.unwrap();
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
        .header(with_key(key.expose()))
        .dispatch()
        .await
        .into_json()
        .await
        .unwrap();
    assert_eq!(
        body,
        serde_json::json!({"user": "demo", "groups": ["billing"]})
    );

    let res = client.get("/health").dispatch().await;
    assert_eq!(
        (res.status(), res.into_string().await.unwrap()),
        (Status::Ok, "ok".into())
    );

    let res = client
        .post("/billing")
        .header(with_key(key.expose()))
        .dispatch()
        .await;
    assert_eq!(res.status(), Status::Ok, "the demo key is in billing");
}

#[tokio::test]
async fn billing_refuses_keys_outside_the_group() {
    let figment = "[default.apikey]\ndatabase_url = \"memory:\"\n";
    let config = ApiKeyConfig::default();
    let store = apikey_core::store::open("memory:").await.unwrap();
    let (_, other) = KeyManager::new(store.clone(), &config)
        .create(CreateKey {
            name: "reader".into(),
            user: "rita".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        my_service::seed(&store, &config).await.unwrap().is_none(),
        "a store with keys gets no demo key"
    );
    let rocket = rocket_with(figment)
        .attach(apikey_rocket::ApiKey::with_store(store))
        .mount("/", rocket::routes![my_service::billing]);
    let client = client(rocket).await;
    let res = client
        .post("/billing")
        .header(Header::new("API-KEY", other.expose().to_owned()))
        .dispatch()
        .await;
    assert_eq!(res.status(), Status::Forbidden);
}
