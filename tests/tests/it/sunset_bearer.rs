//! Telling clients before they break (`Sunset`, RFC 8594) and `Authorization: Bearer`, on
//! every store.

use std::time::Duration;

use apikey_core::{CreateKey, SharedStore};
use apikey_tests::{admin, api_key, demo_client, per_store, problem, spec};
use rocket::http::{Header, Status};
use rocket::local::asynchronous::Client;
use time::macros::format_description;
use time::OffsetDateTime;

per_store!(
    sunset_announces_expiry_within_the_window,
    sunset_announces_a_rotation_grace,
    bearer_is_off_by_default,
    bearer_when_accepted
);

const DAY: Duration = Duration::from_secs(86_400);

fn http_date(t: OffsetDateTime) -> String {
    let f = format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.format(&f).unwrap()
}

/// The `Sunset` of a GET of `/my_service` with `key`, and the status.
async fn sunset(client: &Client, key: &str) -> (Status, Option<String>) {
    let res = client
        .get("/my_service")
        .header(api_key(key))
        .dispatch()
        .await;
    let sunset = res.headers().get_one("Sunset").map(str::to_owned);
    (res.status(), sunset)
}

async fn key_expiring_in(store: &SharedStore, name: &str, days: u64) -> String {
    let spec = CreateKey {
        expires_in: Some(DAY * days as u32),
        ..spec(name, "u", &[])
    };
    let (_, key) = admin(store).create(spec).await.unwrap();
    key.expose().to_owned()
}

async fn sunset_announces_expiry_within_the_window(store: SharedStore) {
    let soon = key_expiring_in(&store, "soon", 3).await;
    let later = key_expiring_in(&store, "later", 30).await;
    let (_, never) = admin(&store).create(spec("never", "u", &[])).await.unwrap();
    let expires = admin(&store).get("soon").await.unwrap().expires_at.unwrap();
    let client = demo_client(&store, "").await;
    assert_eq!(
        sunset(&client, &soon).await,
        (Status::Ok, Some(http_date(expires))),
        "within the default 14 days"
    );
    assert_eq!(sunset(&client, &later).await, (Status::Ok, None));
    assert_eq!(sunset(&client, never.expose()).await, (Status::Ok, None));
    // Refusals carry none: the key is not valid.
    assert_eq!(
        sunset(&client, "not-a-key").await,
        (Status::Unauthorized, None)
    );

    let wide = demo_client(&store, "[default.apikey]\nexpiry_warning = \"60d\"\n").await;
    assert!(sunset(&wide, &later).await.1.is_some());
    let off = demo_client(&store, "[default.apikey]\nexpiry_warning = 0\n").await;
    assert_eq!(sunset(&off, &soon).await, (Status::Ok, None));
}

async fn sunset_announces_a_rotation_grace(store: SharedStore) {
    let m = admin(&store);
    let (_, old) = m.create(spec("k", "u", &[])).await.unwrap();
    let (_, new) = m.rotate("k", DAY).await.unwrap();
    // Announced whatever the window: a rotated-out secret has an end by nature.
    let client = demo_client(&store, "[default.apikey]\nexpiry_warning = 0\n").await;
    let (status, sunset_of_old) = sunset(&client, old.expose()).await;
    assert_eq!(status, Status::Ok);
    let end = OffsetDateTime::now_utc() + DAY;
    let announced = sunset_of_old.expect("a Sunset on the old secret");
    let tolerance: Vec<String> = (-3..=3)
        .map(|s| http_date(end + time::Duration::seconds(s)))
        .collect();
    assert!(tolerance.contains(&announced), "{announced}");
    assert_eq!(sunset(&client, new.expose()).await, (Status::Ok, None));
}

async fn bearer_is_off_by_default(store: SharedStore) {
    let (_, key) = admin(&store).create(spec("k", "u", &[])).await.unwrap();
    let client = demo_client(&store, "").await;
    let res = client
        .get("/my_service")
        .header(Header::new(
            "Authorization",
            format!("Bearer {}", key.expose()),
        ))
        .dispatch()
        .await;
    let p = problem(res).await;
    assert_eq!(p.status, Status::Unauthorized);
    assert_eq!(p.challenge.as_deref(), Some("ApiKey header=\"API-KEY\""));
    assert!(p.body["detail"]
        .as_str()
        .unwrap()
        .contains("needs an API key"));
}

async fn bearer_when_accepted(store: SharedStore) {
    let (_, key) = admin(&store).create(spec("k", "u", &[])).await.unwrap();
    let key = key.expose();
    let client = demo_client(&store, "[default.apikey]\naccept_bearer = true\n").await;
    let bearer = |k: &str| Header::new("Authorization", format!("Bearer {k}"));

    let res = client
        .get("/my_service")
        .header(bearer(key))
        .dispatch()
        .await;
    assert_eq!(res.status(), Status::Ok);
    let res = client
        .get("/my_service")
        .header(Header::new("Authorization", format!("bearer  {key} ")))
        .dispatch()
        .await;
    assert_eq!(res.status(), Status::Ok, "the scheme in any case");
    assert_eq!(
        client
            .get("/my_service")
            .header(api_key(key))
            .dispatch()
            .await
            .status(),
        Status::Ok,
        "the key header still works"
    );

    // Both at once is ambiguous, like two key headers: the one invalid-key answer.
    let both = client
        .get("/my_service")
        .header(api_key(key))
        .header(bearer(key))
        .dispatch()
        .await;
    let both = problem(both).await;
    let wrong = problem(
        client
            .get("/my_service")
            .header(bearer("wrong"))
            .dispatch()
            .await,
    )
    .await;
    assert_eq!(
        (both.status, &both.body),
        (Status::Unauthorized, &wrong.body)
    );
    assert_eq!(
        both.challenge.as_deref(),
        Some("ApiKey header=\"API-KEY\", Bearer"),
        "the challenge names both schemes"
    );
    let none = problem(client.get("/my_service").dispatch().await).await;
    assert_eq!(none.challenge, both.challenge);

    // Other schemes belong to other authentication.
    let basic = client
        .get("/my_service")
        .header(api_key(key))
        .header(Header::new("Authorization", "Basic dXNlcjpwdw=="))
        .dispatch()
        .await;
    assert_eq!(basic.status(), Status::Ok);

    // Preflights allow the Authorization header too.
    let res = client
        .options("/my_service")
        .header(Header::new("Access-Control-Request-Method", "GET"))
        .dispatch()
        .await;
    assert_eq!(res.status(), Status::NoContent);
    let allowed = res
        .headers()
        .get_one("Access-Control-Allow-Headers")
        .unwrap();
    assert_eq!(allowed, "API-KEY, Authorization");
    let res = client
        .options("/my_service")
        .header(Header::new("Access-Control-Request-Method", "GET"))
        .header(Header::new(
            "Access-Control-Request-Headers",
            "authorization",
        ))
        .dispatch()
        .await;
    let allowed = res
        .headers()
        .get_one("Access-Control-Allow-Headers")
        .unwrap();
    assert_eq!(allowed, "authorization, API-KEY");
}
