//! The admin page through Rocket's client (cookies kept): login, a wrong key, CSRF, a key shown
//! once, revoke, and a session that ends with its admin key.

use apikey_core::SharedStore;
use apikey_tests::{
    admin_page, api_key, form_field, login, login_response, page_get as get, page_post as post,
    spec, store_with_admin_key,
};
use rocket::http::{ContentType, Status};
use rocket::local::asynchronous::{Client, LocalResponse};

/// The CSRF token of a page's forms.
fn csrf(page: &str) -> String {
    form_field(page, "csrf").expect("a form with a token")
}

async fn body(res: LocalResponse<'_>) -> String {
    res.into_string().await.unwrap_or_default()
}

async fn service(store: &SharedStore) -> Client {
    admin_page(store, "").await
}

#[tokio::test]
async fn an_admin_manages_keys_and_nothing_else_gets_in() {
    let (store, m, _, root) = store_with_admin_key().await;
    let (_, plain) = m.create(spec("plain", "u", &[])).await.unwrap();
    let client = service(&store).await;

    // The login page, with the headers every admin page has.
    let res = client.get("/admin/").dispatch().await;
    assert_eq!(res.status(), Status::Ok);
    let csp = res
        .headers()
        .get_one("Content-Security-Policy")
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(
        res.headers().get_one("Referrer-Policy"),
        Some("no-referrer")
    );
    assert_eq!(res.headers().get_one("Cache-Control"), Some("no-store"));
    assert!(body(res).await.contains("Admin API key"));

    // A wrong key, and a valid key outside the admin group: refused, never echoed.
    let (status, page) = login(&client, "wrong-key-value").await;
    assert_eq!(status, Status::Unauthorized, "{page}");
    assert!(page.contains("not valid") && !page.contains("wrong-key-value"));
    let (status, page) = login(&client, plain.expose()).await;
    assert_eq!(status, Status::Forbidden);
    assert!(!page.contains(plain.expose()));
    assert_eq!(
        get(&client, "/admin/new").await.0,
        Status::SeeOther,
        "still logged out: to the login page"
    );

    // The admin key: a session cookie that holds no key.
    let res = login_response(&client, root.expose()).await;
    assert_eq!(res.status(), Status::SeeOther);
    let cookie = res
        .headers()
        .get("Set-Cookie")
        .find(|c| c.starts_with("apikey_admin="))
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains(root.expose()) && !cookie.contains("root"),
        "encrypted"
    );
    let (status, page) = get(&client, "/admin/").await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("plain") && page.contains("root"));
    assert!(!page.contains(root.expose()) && !page.contains(plain.expose()));
    let token = csrf(&page);

    // A change without the session's token is refused and changes nothing.
    let form = "name=Forged&user=x&groups=&expires_in=&rate_limit=";
    assert_eq!(post(&client, "/admin/new", form).await.0, Status::Forbidden);
    let wrong = format!("csrf=0000&{form}");
    assert_eq!(
        post(&client, "/admin/new", &wrong).await.0,
        Status::Forbidden
    );
    assert!(m.get("Forged").await.is_err(), "nothing was created");

    // Create: the key is shown once.
    let form =
        format!("csrf={token}&name=Web+Made&user=web&groups=billing&expires_in=30d&rate_limit=&quota=500%2F1d");
    let res = client
        .post("/admin/new")
        .header(ContentType::Form)
        .body(form)
        .dispatch()
        .await;
    assert_eq!(res.status(), Status::Created);
    assert_eq!(res.headers().get_one("Cache-Control"), Some("no-store"));
    let page = body(res).await;
    let start = page.find("readonly value=\"").expect("the key") + 16;
    let key = page[start..].split('"').next().unwrap().to_owned();
    let api = client
        .get("/my_service")
        .header(api_key(&key))
        .dispatch()
        .await;
    assert_eq!(api.status(), Status::Ok, "the key works");
    assert!(
        !get(&client, "/admin/").await.1.contains(&key),
        "never shown again"
    );
    let created = m.get("Web Made").await.unwrap();
    assert_eq!(created.groups, ["billing"]);
    assert_eq!(created.quota, Some("500/1d".parse().unwrap()));
    assert!(created.expires_at.is_some());

    // Revoke, behind a confirmation.
    let (status, confirm) = get(&client, "/admin/keys/Web%20Made/revoke").await;
    assert_eq!(status, Status::Ok);
    assert!(confirm.contains("Really revoke"));
    let (status, _) = post(
        &client,
        "/admin/keys/Web%20Made/revoke",
        &format!("csrf={token}"),
    )
    .await;
    assert_eq!(status, Status::SeeOther);
    let api = client
        .get("/my_service")
        .header(api_key(&key))
        .dispatch()
        .await;
    assert_eq!(api.status(), Status::Unauthorized, "revoked at once");
    let trail = get(&client, "/admin/audit").await.1;
    assert!(
        trail.contains("admin:root") && trail.contains("revoke"),
        "audited as the admin"
    );

    // Users: disable and enable.
    let (status, _) = post(&client, "/admin/users/u/disable", &format!("csrf={token}")).await;
    assert_eq!(status, Status::SeeOther);
    assert!(!m.user_active("u").await.unwrap());
    assert_eq!(
        post(&client, "/admin/users/u/enable", "csrf=bad").await.0,
        Status::Forbidden
    );
    assert!(!m.user_active("u").await.unwrap());

    // Revoking the admin key ends its session.
    m.revoke("root").await.unwrap();
    let (status, page) = get(&client, "/admin/").await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("Admin API key"), "back to the login page");
    assert_eq!(
        post(
            &client,
            "/admin/keys/plain/delete",
            &format!("csrf={token}")
        )
        .await
        .0,
        Status::SeeOther
    );
    assert!(
        m.get("plain").await.is_ok(),
        "a revoked admin changes nothing"
    );
}

#[tokio::test]
async fn logout_ends_the_session() {
    let (store, _, _, root) = store_with_admin_key().await;
    let client = service(&store).await;
    login(&client, root.expose()).await;
    let token = csrf(&get(&client, "/admin/").await.1);
    let (status, _) = post(&client, "/admin/logout", &format!("csrf={token}")).await;
    assert_eq!(status, Status::SeeOther);
    assert!(
        get(&client, "/admin/users").await.1.is_empty(),
        "redirected to the login page"
    );
    assert!(get(&client, "/admin/").await.1.contains("Admin API key"));
}

/// A session unused for 30 minutes ends, though its admin key is still valid.
#[tokio::test]
async fn an_idle_session_ends() {
    let (store, _, record, secret) = store_with_admin_key().await;
    let client = service(&store).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let digest: String = apikey_core::KeyHasher::new(None)
        .digest(secret.expose())
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let session = |seen: i64| {
        let value = serde_json::json!({
            "name": record.name, "digest": digest, "id": "s1", "csrf": "t",
            "started": seen, "seen": seen
        });
        rocket::http::Cookie::build(("apikey_admin", value.to_string()))
            .path("/admin")
            .build()
    };
    let fresh = client
        .get("/admin/users")
        .private_cookie(session(now - 60))
        .dispatch()
        .await;
    assert_eq!(
        fresh.status(),
        Status::Ok,
        "a session used a minute ago is alive"
    );
    let idle = client
        .get("/admin/users")
        .private_cookie(session(now - 31 * 60))
        .dispatch()
        .await;
    assert_eq!(
        idle.status(),
        Status::SeeOther,
        "idle for 31 minutes: to the login page"
    );
}
