//! Rocket clients of the demo and of test apps, and what tests send and read through them.

use apikey_core::config::DEFAULT_HEADER;
use apikey_core::{ApiKeyConfig, CreateKey, KeyManager, Secret, SharedStore};
use rocket::figment::providers::{Format, Toml};
use rocket::http::{Header, Status};
use rocket::local::asynchronous::{Client, LocalResponse};

/// A Rocket client of `rocket` with `toml` merged into its configuration (Rocket.toml syntax
/// with profiles, e.g. `[default.apikey]`).
pub fn rocket_with(toml: &str) -> rocket::Rocket<rocket::Build> {
    let figment = rocket::Config::figment()
        .merge(Toml::string(toml).nested())
        .merge(("log_level", "off"));
    rocket::custom(figment)
}

/// A tracked client, panicking with Rocket's message when launch fails.
pub async fn client(rocket: rocket::Rocket<rocket::Build>) -> Client {
    Client::tracked(rocket).await.expect("valid rocket")
}

/// The demo's `/my_service`, `/billing` and `/whoami` over `store`, with `toml` merged into the
/// configuration.
pub async fn demo_client(store: &SharedStore, toml: &str) -> Client {
    let rocket = rocket_with(toml)
        .attach(apikey_rocket::ApiKey::with_store(store.clone()))
        .mount(
            "/",
            rocket::routes![
                my_service::my_service,
                my_service::billing,
                my_service::whoami
            ],
        );
    client(rocket).await
}

/// The key header (`API-KEY`) carrying `key`.
pub fn api_key(key: &str) -> Header<'static> {
    Header::new(DEFAULT_HEADER, key.to_owned())
}

/// `GET uri`, with the key header when `key` is given: the status and the body.
pub async fn get(client: &Client, uri: &str, key: Option<&str>) -> (Status, String) {
    let mut req = client.get(uri.to_owned());
    if let Some(k) = key {
        req = req.header(api_key(k));
    }
    let res = req.dispatch().await;
    (res.status(), res.into_string().await.unwrap_or_default())
}

/// A problem+json answer, checked: its content type, `status` member (the response status)
/// and `type` member.
#[derive(Debug)]
pub struct Problem {
    /// The response status.
    pub status: Status,
    /// The `WWW-Authenticate` header, if any.
    pub challenge: Option<String>,
    /// The JSON document.
    pub body: serde_json::Value,
}

/// Reads and checks a problem+json answer.
pub async fn problem(res: LocalResponse<'_>) -> Problem {
    let status = res.status();
    assert_eq!(
        res.content_type().map(|c| c.to_string()).as_deref(),
        Some("application/problem+json")
    );
    let challenge = res.headers().get_one("WWW-Authenticate").map(str::to_owned);
    let body: serde_json::Value =
        serde_json::from_str(&res.into_string().await.expect("a body")).expect("JSON");
    assert_eq!(body["status"], status.code);
    assert_eq!(body["type"], "about:blank");
    Problem {
        status,
        challenge,
        body,
    }
}

/// What to create: a key named `name` of `user` in `groups`.
pub fn spec(name: &str, user: &str, groups: &[&str]) -> CreateKey {
    CreateKey {
        name: name.into(),
        user: user.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        ..CreateKey::default()
    }
}

/// An administrator of `store` with the default configuration.
pub fn admin(store: &SharedStore) -> KeyManager {
    KeyManager::new(store.clone(), &ApiKeyConfig::default())
}

/// Creates a key through an administrator of `store`; returns its secret.
pub async fn create_key(store: &SharedStore, spec: CreateKey) -> Secret {
    admin(store).create(spec).await.expect("create a key").1
}
