//! Admin sessions, hardened: a session is bound to the secret it logged in with and ends when
//! that secret stops verifying (grace over, revoked, admin group gone); logout ends it on the
//! server (a copied cookie is dead too); it has an absolute lifetime; failed logins are
//! limited per client; the login form carries a CSRF token; the `Secure` flag can be forced
//! behind a TLS proxy; and login uses the same effective groups as verification.

use std::sync::Arc;
use std::time::Duration;

use apikey_core::clock::ManualClock;
use apikey_core::model::{GroupEdit, KeyChange};
use apikey_core::{MemoryStore, SharedStore};
use apikey_tests::{
    admin, admin_page as service, admin_page_on, form_field as field, login_response,
    page_get as get, page_post as post, spec, store_with_admin_key,
};
use rocket::http::{ContentType, Cookie, Header, Status};
use rocket::local::asynchronous::Client;

/// Logs in with `key` through the login form: the status.
async fn login(client: &Client, key: &str) -> Status {
    apikey_tests::login(client, key).await.0
}

/// Whether the client's session opens the key list.
async fn logged_in(client: &Client) -> bool {
    let (status, page) = get(client, "/admin/").await;
    status == Status::Ok && page.contains("name=\"csrf\"")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_with_the_secret_it_logged_in_with() {
    let (store, m, _, old) = store_with_admin_key().await;
    let (_, new) = m.rotate("root", Duration::from_secs(2)).await.unwrap();
    // The service's clock is moved past the grace instead of waiting for it.
    let clock = ManualClock::starting_now();
    let client = admin_page_on(&store, "", clock.shared()).await;
    assert_eq!(login(&client, old.expose()).await, Status::SeeOther);
    assert!(
        logged_in(&client).await,
        "the old secret works during its grace"
    );
    clock.advance(Duration::from_secs(4));
    assert!(
        !logged_in(&client).await,
        "the grace is over: the session of the old secret ends with it"
    );
    // The new secret's session lives on; it ends when the admin group is taken away.
    assert_eq!(login(&client, new.expose()).await, Status::SeeOther);
    assert!(logged_in(&client).await);
    m.change(
        "root",
        KeyChange::EditGroups(GroupEdit::new([""; 0], ["apikey-admin"]).unwrap()),
    )
    .await
    .unwrap();
    assert!(!logged_in(&client).await, "out of the admin group");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_ends_a_copied_cookie_and_sessions_have_a_lifetime() {
    let (store, _, _, root) = store_with_admin_key().await;
    let clock = ManualClock::starting_now();
    let client = admin_page_on(
        &store,
        "[default.apikey]\nadmin_session_lifetime = \"4s\"\n",
        clock.shared(),
    )
    .await;
    assert_eq!(login(&client, root.expose()).await, Status::SeeOther);
    let copied: Vec<Cookie<'static>> = client
        .cookies()
        .iter()
        .map(|c| c.clone().into_owned())
        .collect();
    let (_, page) = get(&client, "/admin/").await;
    let token = field(&page, "csrf").unwrap();
    post(&client, "/admin/logout", &format!("csrf={token}")).await;
    assert!(!logged_in(&client).await);
    let mut replay = client.get("/admin/");
    for c in &copied {
        replay = replay.cookie(c.clone());
    }
    let res = replay.dispatch().await;
    let page = res.into_string().await.unwrap_or_default();
    assert!(
        !page.contains("name=\"csrf\""),
        "a copy of the cookie taken before logout is dead too"
    );

    // Used every second, a session still ends at its absolute lifetime.
    assert_eq!(login(&client, root.expose()).await, Status::SeeOther);
    for _ in 0..2 {
        clock.advance(Duration::from_secs(1));
        assert!(logged_in(&client).await);
    }
    clock.advance(Duration::from_secs(2));
    assert!(
        logged_in(&client).await,
        "4 s old: still inside its lifetime"
    );
    clock.advance(Duration::from_secs(1));
    assert!(!logged_in(&client).await, "past admin_session_lifetime");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_is_rate_limited_and_needs_its_token() {
    let (store, _, _, root) = store_with_admin_key().await;
    let client = service(&store, "").await;

    // Without the login form's token: refused, even with the right key.
    let (status, _) = post(&client, "/admin/login", &format!("key={}", root.expose())).await;
    assert_eq!(status, Status::Forbidden);
    assert!(!logged_in(&client).await);

    // Failed logins from one client are limited.
    let mut statuses = Vec::new();
    for i in 0..12 {
        statuses.push(login(&client, &format!("wrong-guess-{i}")).await);
    }
    assert!(
        statuses[..10].iter().all(|s| *s == Status::Unauthorized),
        "{statuses:?}"
    );
    assert_eq!(statuses[10], Status::TooManyRequests, "{statuses:?}");
    let res = login_response(&client, root.expose()).await;
    assert_eq!(
        res.status(),
        Status::TooManyRequests,
        "even the right key, for a while"
    );
    assert!(res.headers().get_one("Retry-After").is_some());
    let page = res.into_string().await.unwrap();
    assert!(page.contains("Too many failed logins"), "{page}");

    // Another client is not locked out by this one.
    let other = client
        .post("/admin/login")
        .header(ContentType::Form)
        .header(Header::new("X-Real-IP", "192.0.2.7"))
        .remote("192.0.2.7:5555".parse().unwrap())
        .body("key=x&login_csrf=y")
        .dispatch()
        .await;
    assert_ne!(other.status(), Status::TooManyRequests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secure_flag_can_be_forced_behind_a_tls_proxy() {
    let (store, _, _, root) = store_with_admin_key().await;
    for (setting, secure) in [("always", true), ("never", false), ("auto", false)] {
        let toml = format!("[default.apikey]\nadmin_secure_cookie = \"{setting}\"\n");
        let client = service(&store, &toml).await;
        let res = login_response(&client, root.expose()).await;
        let set_cookie: Vec<String> = res
            .headers()
            .get("Set-Cookie")
            .filter(|c| c.starts_with("apikey_admin="))
            .map(str::to_owned)
            .collect();
        assert_eq!(set_cookie.len(), 1, "{setting}: {set_cookie:?}");
        assert_eq!(
            set_cookie[0].contains("Secure"),
            secure,
            "{setting}: {set_cookie:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_uses_the_effective_groups_of_a_config_section() {
    let store: SharedStore = Arc::new(MemoryStore::new());
    let m = admin(&store);
    m.create(spec("promoted", "ops", &[])).await.unwrap();
    m.create(spec("demoted", "ops", &["apikey-admin"]))
        .await
        .unwrap();
    let toml =
        "[default.api_key_promoted]\nkey = \"promoted-by-config\"\ngroups = [\"apikey-admin\"]\n\
                [default.api_key_demoted]\nkey = \"demoted-by-config\"\ngroups = [\"staff\"]\n";
    let client = service(&store, toml).await;
    assert_eq!(login(&client, "promoted-by-config").await, Status::SeeOther);
    assert!(
        logged_in(&client).await,
        "the section puts it in the admin group"
    );
    let other = service(&store, toml).await;
    assert_eq!(
        login(&other, "demoted-by-config").await,
        Status::Forbidden,
        "the section takes it out of the admin group"
    );
}

/// A login attempt from `remote`, with `extra` headers: the status.
async fn login_from(
    client: &Client,
    key: &str,
    remote: &str,
    extra: Option<Header<'static>>,
) -> Status {
    let (_, page) = get(client, "/admin/").await;
    let token = field(&page, "login_csrf").expect("a login form");
    let mut req = client
        .post("/admin/login")
        .header(ContentType::Form)
        .remote(remote.parse().unwrap())
        .body(format!("key={key}&login_csrf={token}"));
    if let Some(h) = extra {
        req = req.header(h);
    }
    req.dispatch().await.status()
}

/// Failed logins count against the address apikey establishes (hardening round 3, item 2):
/// an `X-Real-IP` from an untrusted peer neither locks the named address out nor walks around
/// the limit; IPv6 clients are counted per /64; a key refused for its networks does not lock
/// its holder out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_limits_count_the_address_a_client_cannot_choose() {
    let (store, m, _, root) = store_with_admin_key().await;
    let client = service(&store, "").await;
    let admin_ip = "198.51.100.1";

    // Ten bad logins that name the admin's address: the admin still logs in from there.
    for i in 0..10 {
        let spoof = Header::new("X-Real-IP", admin_ip);
        let s = login_from(
            &client,
            &format!("bad-{i}"),
            "203.0.113.5:4000",
            Some(spoof),
        )
        .await;
        assert_eq!(s, Status::Unauthorized);
    }
    let s = login_from(&client, root.expose(), &format!("{admin_ip}:4000"), None).await;
    assert_eq!(s, Status::SeeOther, "the admin is not locked out");

    // A new header value each time does not walk around the limit.
    let client = service(&store, "").await;
    let mut statuses = Vec::new();
    for i in 0..11 {
        let walk = Header::new("X-Real-IP", format!("192.0.2.{i}"));
        statuses.push(
            login_from(
                &client,
                &format!("walk-{i}"),
                "203.0.113.6:4000",
                Some(walk),
            )
            .await,
        );
    }
    assert_eq!(statuses[10], Status::TooManyRequests, "{statuses:?}");

    // Every address of one IPv6 /64 is one client.
    let mut statuses = Vec::new();
    for i in 1..=11 {
        let remote = format!("[2001:db8:7:7::{i:x}]:4000");
        statuses.push(login_from(&client, &format!("v6-{i}"), &remote, None).await);
    }
    assert_eq!(statuses[10], Status::TooManyRequests, "{statuses:?}");
    let other_64 = login_from(&client, "v6-other", "[2001:db8:7:8::1]:4000", None).await;
    assert_eq!(
        other_64,
        Status::Unauthorized,
        "another /64 is another client"
    );

    // An admin key bound to a network, tried from outside it (by a stranger who found it, or
    // by its holder on the wrong network): no lock-out of the key itself.
    let client = service(&store, "").await;
    let (_, bound) = m
        .create(apikey_core::CreateKey {
            allow_ip: apikey_core::AllowIp::parse(&["192.0.2.0/24"]).unwrap(),
            ..spec("bound-admin", "ops", &["apikey-admin"])
        })
        .await
        .unwrap();
    for i in 0..6 {
        let remote = format!("203.0.113.{}:4000", 20 + i);
        let s = login_from(&client, bound.expose(), &remote, None).await;
        assert_eq!(s, Status::Forbidden);
    }
    let s = login_from(&client, bound.expose(), "192.0.2.44:4000", None).await;
    assert_eq!(
        s,
        Status::SeeOther,
        "the holder logs in from inside its network"
    );
}
