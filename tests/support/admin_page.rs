//! The admin page through Rocket's client (cookies kept): the service, its forms, logging in.

use std::sync::Arc;

use apikey_core::clock::{SharedClock, SystemClock};
use apikey_core::{KeyManager, KeyRecord, MemoryStore, Secret, SharedStore, Verifier};
use rocket::http::{ContentType, Status};
use rocket::local::asynchronous::{Client, LocalResponse};

use crate::{admin, client, rocket_with, spec};

/// A memory store holding one admin key, `root` (user `ops`, group `apikey-admin`): the store,
/// its manager, the key's record and its secret.
pub async fn store_with_admin_key() -> (SharedStore, KeyManager, KeyRecord, Secret) {
    let store: SharedStore = Arc::new(MemoryStore::new());
    let m = admin(&store);
    let (record, secret) = m
        .create(spec("root", "ops", &["apikey-admin"]))
        .await
        .expect("create the admin key");
    (store, m, record, secret)
}

/// The admin page at `/admin` (and `/my_service`) over `store`, with `toml` merged into
/// Rocket's configuration.
pub async fn admin_page(store: &SharedStore, toml: &str) -> Client {
    admin_page_on(store, toml, Arc::new(SystemClock)).await
}

/// [`admin_page`], its verifier (and so its sessions) reading the time from `clock`.
pub async fn admin_page_on(store: &SharedStore, toml: &str, clock: SharedClock) -> Client {
    let rocket = rocket_with(toml);
    let config = apikey_rocket::load_config(rocket.figment()).expect("a valid configuration");
    let verifier = Verifier::with_clock(config.clone(), store.clone(), clock)
        .await
        .expect("a verifier");
    let rocket = rocket
        .attach(apikey_rocket::ApiKey::with_verifier(Arc::new(verifier)))
        .manage(apikey_rocket::admin::Admin::new(admin(store), &config))
        .mount("/", rocket::routes![my_service::my_service])
        .mount("/admin", apikey_rocket::admin::routes());
    client(rocket).await
}

/// The value of the form field `name` on `page`.
pub fn form_field(page: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker)? + marker.len();
    Some(page[start..].split('"').next()?.to_owned())
}

/// GETs `uri`: status and body.
pub async fn page_get(client: &Client, uri: &str) -> (Status, String) {
    let res = client.get(uri.to_owned()).dispatch().await;
    (res.status(), res.into_string().await.unwrap_or_default())
}

/// POSTs the form `form` to `uri`: status and body.
pub async fn page_post(client: &Client, uri: &str, form: &str) -> (Status, String) {
    let res = client
        .post(uri.to_owned())
        .header(ContentType::Form)
        .body(form)
        .dispatch()
        .await;
    (res.status(), res.into_string().await.unwrap_or_default())
}

/// Submits the login form with `key` (a fresh form, its token included): the response.
pub async fn login_response<'c>(client: &'c Client, key: &str) -> LocalResponse<'c> {
    let (_, page) = page_get(client, "/admin/").await;
    let token = form_field(&page, "login_csrf").expect("a login form");
    client
        .post("/admin/login")
        .header(ContentType::Form)
        .body(format!("key={key}&login_csrf={token}"))
        .dispatch()
        .await
}

/// Logs in with `key` through the login form: status and body.
pub async fn login(client: &Client, key: &str) -> (Status, String) {
    let res = login_response(client, key).await;
    (res.status(), res.into_string().await.unwrap_or_default())
}
