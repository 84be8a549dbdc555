//! The admin page on both demos, as real processes on real sockets: the same app, the same
//! rules and the same pages on Rocket (`/admin`, Rocket's private cookies) and axum (`/admin`,
//! cookies encrypted with `admin_cookie_key`). What a browser does, by hand: cookies kept,
//! forms posted, every attribute and status read off the wire.

use std::path::Path;

use apikey_tests::demo::{printed_key, CookieClient, Demo, Framework, Raw, Server};

use crate::{AXUM, ROCKET};

on_both_demos!(
    an_admin_manages_keys_and_nothing_else_gets_in,
    sessions_end_with_logout_and_their_secret,
    logins_are_limited_per_address_and_key,
    cookies_are_secure_when_asked,
    an_admin_edits_a_key_and_filters_the_list,
);

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", dir.join("keys.db").display())
}

/// A demo on a new store: it prints its demo key and its admin key.
fn first_start(demo: Demo, env: &[(&str, &str)]) -> (tempfile::TempDir, Server, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(demo, dir.path(), &sqlite_url(dir.path()), env);
    let out = server.output();
    let admin = printed_key(&out, "Created an admin key");
    let key = printed_key(&out, "Created the demo API key");
    (dir, server, admin, key)
}

/// The value of the form field `name` on `page`.
fn field(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name} in:\n{page}"))
        + marker.len();
    page[start..].split('"').next().unwrap().to_owned()
}

/// Form-encodes a value.
fn enc(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Logs in with `key` through a fresh login form: the answer.
fn login(browser: &mut CookieClient<'_>, key: &str) -> Raw {
    let page = browser.get("/admin");
    assert_eq!(page.status, 200, "{}", page.text());
    let token = field(&page.text(), "login_csrf");
    browser.post(
        "/admin/login",
        &format!("key={}&login_csrf={token}", enc(key)),
    )
}

fn api(server: &Server, key: &str) -> u16 {
    let header = format!("API-KEY: {key}").into_bytes();
    server.get("/my_service", &[&header]).unwrap().status
}

fn an_admin_manages_keys_and_nothing_else_gets_in(demo: Demo) {
    let (_dir, server, admin, demo_key) = first_start(demo, &[]);
    let out = server.output();
    let page_url = format!("http://127.0.0.1:{}/admin", server.port);
    assert!(
        out.contains(&format!("Manage keys in a browser at {page_url}")),
        "the first start names the admin page:\n{out}"
    );
    let mut browser = CookieClient::new(&server);

    // The login page, with the admin's security headers and a login-token cookie.
    let page = browser.get("/admin");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    let login_cookie = browser.set_cookies.last().cloned().unwrap_or_default();
    assert!(
        login_cookie.starts_with("apikey_admin_login="),
        "{login_cookie}"
    );
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(login_cookie.contains(attribute), "{login_cookie}");
    }
    assert!(
        !login_cookie.contains("Secure"),
        "plain HTTP: {login_cookie}"
    );
    let css = browser.get("/admin/static/admin.css");
    assert_eq!(css.status, 200);
    assert!(css.header("content-type").unwrap().starts_with("text/css"));

    // Without its form token, a login is refused whatever the key.
    let res = browser.post("/admin/login", &format!("key={}", enc(&admin)));
    assert_eq!(res.status, 403, "{}", res.text());
    assert!(browser.cookie("apikey_admin").is_none());
    // A wrong key, a valid key outside the admin group: refused, the key never echoed.
    let res = login(&mut browser, "ak_wrong");
    assert_eq!(res.status, 401);
    assert!(res.text().contains("That key is not valid."));
    let res = login(&mut browser, &demo_key);
    assert_eq!(res.status, 403);
    assert!(res.text().contains("not in the admin group"));
    assert!(!res.text().contains(&demo_key));
    assert!(browser.cookie("apikey_admin").is_none());

    // The admin key: a session cookie (encrypted: the key's name is not readable in it).
    let res = login(&mut browser, &admin);
    assert_eq!(res.status, 303, "{}", res.text());
    assert_eq!(res.header("location"), Some("/admin"));
    let session = browser
        .cookie("apikey_admin")
        .expect("a session")
        .to_owned();
    assert!(!session.contains("admin") && !session.contains(&admin));
    let list = browser.get("/admin").text();
    assert!(list.contains("demo") && list.contains("Log out"), "{list}");
    let csrf = field(&list, "csrf");

    // Changes need the session's token.
    let form = |token: &str| {
        format!(
            "csrf={token}&name=Made%20Here&user=web&groups=billing&expires_in=&rate_limit=&quota=&allow_ip="
        )
    };
    assert_eq!(browser.post("/admin/new", &form("wrong")).status, 403);
    assert_eq!(browser.post("/admin/new", "name=x&user=y").status, 403);
    let made = browser.post("/admin/new", &form(&csrf));
    assert_eq!(made.status, 201, "{}", made.text());
    let page = made.text();
    let marker = "id=\"secret\"";
    let at = page.find(marker).expect("the key, shown once");
    let rest = &page[at..];
    let start = rest.find("value=\"").unwrap() + "value=\"".len();
    let key = rest[start..].split('"').next().unwrap().to_owned();
    assert_eq!(api(&server, &key), 200, "the new key works at once");
    assert!(!browser.get("/admin").text().contains(&key), "shown once");
    // Its own page, with the chart of its requests.
    let own = browser.get("/admin/keys/Made%20Here");
    assert_eq!(own.status, 200);
    assert!(own.text().contains("<svg"), "{}", own.text());
    assert_eq!(browser.get("/admin/keys/nobody").status, 404);

    // Revoked behind a confirmation: refused at once.
    let confirm = browser.get("/admin/keys/Made%20Here/revoke");
    assert_eq!(confirm.status, 200);
    assert!(confirm.text().contains("Really revoke"));
    let done = browser.post("/admin/keys/Made%20Here/revoke", &format!("csrf={csrf}"));
    assert_eq!(done.status, 303);
    assert_eq!(api(&server, &key), 401);
    // Users: disabling one refuses its keys; enabling it lets them in again.
    assert_eq!(
        browser
            .post("/admin/users/demo/disable", &format!("csrf={csrf}"))
            .status,
        303
    );
    assert_eq!(api(&server, &demo_key), 401);
    assert_eq!(
        browser
            .post("/admin/users/demo/enable", &format!("csrf={csrf}"))
            .status,
        303
    );
    assert_eq!(api(&server, &demo_key), 200);
    // Every change in the audit trail, as made by the admin key.
    let trail = browser.get("/admin/audit").text();
    for line in ["admin:admin", "admin-login", "revoke", "create"] {
        assert!(
            trail.contains(line),
            "{line} not in the audit trail:\n{trail}"
        );
    }
    assert!(!trail.contains(&key) && !trail.contains(&admin));
    assert_eq!(browser.get("/admin/nothing/here").status, 404);
    // The admin key was printed at the first start, once; the key made here and the session
    // never are.
    let log = server.stop();
    assert_eq!(log.matches(admin.as_str()).count(), 1, "{log}");
    for secret in [&key, &session] {
        assert!(!log.contains(secret.as_str()), "a secret in the log");
    }
}

fn sessions_end_with_logout_and_their_secret(demo: Demo) {
    let (dir, server, admin, _) = first_start(demo, &[]);
    let mut browser = CookieClient::new(&server);
    assert_eq!(login(&mut browser, &admin).status, 303);
    let copy = browser.cookie_header();
    let csrf = field(&browser.get("/admin").text(), "csrf");
    // Logging out ends this session, and a copy of its cookie with it.
    let out = browser.post("/admin/logout", &format!("csrf={csrf}"));
    assert_eq!(out.status, 303);
    assert!(browser.cookie("apikey_admin").is_none(), "removed");
    let mut thief = CookieClient::new(&server);
    thief.set_cookie_header(&copy);
    let res = thief.get("/admin/users");
    assert_eq!(res.status, 303, "a copied cookie dies with the logout");
    assert_eq!(res.header("location"), Some("/admin"));
    // A cookie made with another service's key is no session.
    let mut forger = CookieClient::new(&server);
    forger.set_cookie_header("apikey_admin=eyJuYW1lIjoiYWRtaW4ifQ");
    assert_eq!(forger.get("/admin/users").status, 303);

    // A session ends when its secret is rotated out (by another process: the CLI).
    let mut browser = CookieClient::new(&server);
    assert_eq!(login(&mut browser, &admin).status, 303);
    assert_eq!(browser.get("/admin/users").status, 200);
    let url = sqlite_url(dir.path());
    let bin = env!("CARGO_BIN_EXE_apikey-under-test");
    let rotated = apikey_tests::run_apikey(bin, dir.path(), &url, &[], &["rotate", "admin"]);
    assert!(rotated.status.success(), "{rotated:?}");
    let mut ended = false;
    for _ in 0..50 {
        if browser.get("/admin/users").status == 303 {
            ended = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(ended, "the session outlived its secret");
}

fn logins_are_limited_per_address_and_key(demo: Demo) {
    let (_dir, server, admin, _) = first_start(demo, &[]);
    let mut browser = CookieClient::new(&server);
    for i in 0..10 {
        let res = login(&mut browser, &format!("ak_wrong{i}"));
        assert_eq!(res.status, 401, "try {i}");
    }
    // Past 10 failures from this address: 429 with Retry-After, even for the right key, and a
    // forwarding header from an untrusted peer does not make it another client.
    let page = browser.get("/admin");
    let token = field(&page.text(), "login_csrf");
    let form = format!("key={}&login_csrf={token}", enc(&admin));
    let res = browser.send(
        "POST",
        "/admin/login",
        &[b"X-Forwarded-For: 203.0.113.7"],
        form.as_bytes(),
    );
    assert_eq!(res.status, 429, "{}", res.text());
    let wait: u64 = res.header("retry-after").unwrap().parse().unwrap();
    assert!(wait > 0 && wait <= 15 * 60, "{wait}");
    assert!(browser.cookie("apikey_admin").is_none());
}

fn cookies_are_secure_when_asked(demo: Demo) {
    let env = [("APIKEY_ADMIN_SECURE_COOKIE", "always")];
    let (_dir, server, admin, _) = first_start(demo, &env);
    let mut browser = CookieClient::new(&server);
    let res = login(&mut browser, &admin);
    assert_eq!(res.status, 303);
    let session = browser
        .set_cookies
        .iter()
        .find(|c| c.starts_with("apikey_admin="))
        .expect("a session cookie");
    for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(session.contains(attribute), "{session}");
    }
}

/// Two instances of one demo, on one store and one cookie key (Rocket's `secret_key`, axum's
/// `admin_cookie_key`): a session made on one is a session on the other; an instance with
/// another key knows no such session.
#[test]
fn sessions_hold_across_instances_with_one_key() {
    for demo in [ROCKET, AXUM] {
        let key = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";
        let other = "ab".repeat(32);
        let var = match demo.framework {
            Framework::Rocket => "ROCKET_SECRET_KEY",
            Framework::Axum => "APIKEY_ADMIN_COOKIE_KEY",
        };
        let (dir, one, admin, _) = first_start(demo, &[(var, key)]);
        let url = sqlite_url(dir.path());
        let two = Server::start(demo, dir.path(), &url, &[(var, key)]);
        let three = Server::start(demo, dir.path(), &url, &[(var, &other)]);
        let mut browser = CookieClient::new(&one);
        assert_eq!(login(&mut browser, &admin).status, 303);
        let cookies = browser.cookie_header();
        let mut on_two = CookieClient::new(&two);
        on_two.set_cookie_header(&cookies);
        assert_eq!(on_two.get("/admin/users").status, 200, "{demo:?}");
        let mut on_three = CookieClient::new(&three);
        on_three.set_cookie_header(&cookies);
        assert_eq!(on_three.get("/admin/users").status, 303, "{demo:?}");
    }
}

/// The edit form changes every field of a key in one change (audited once), metadata reaches
/// the handler at once; the list filters as the store does (user, group, expiry, state).
fn an_admin_edits_a_key_and_filters_the_list(demo: Demo) {
    let (_dir, server, admin, demo_key) = first_start(demo, &[]);
    let mut browser = CookieClient::new(&server);
    assert_eq!(login(&mut browser, &admin).status, 303);

    let page = browser.get("/admin/keys/demo/edit");
    assert_eq!(page.status, 200, "{}", page.text());
    let text = page.text();
    let csrf = field(&text, "csrf");
    assert_eq!(
        field(&text, "scopes"),
        "orders:*",
        "the form holds the key as it is"
    );
    let form = format!(
        "csrf={csrf}&groups=billing%2C%20ops&scopes=orders%3Awrite&expires_at=2099-01-01T00%3A00%3A00Z\
         &rate_limit=50%2F1m&quota=&allow_ip=&description=the%20demo&meta=plan%3Dgold%0D%0Aregion%3Deu"
    );
    let res = browser.post("/admin/keys/demo/edit", &form);
    assert_eq!(res.status, 303, "{}", res.text());
    assert_eq!(res.header("location"), Some("/admin/keys/demo"));
    let page = browser.get("/admin/keys/demo").text();
    assert!(page.contains("orders:write"), "{page}");
    assert!(page.contains("plan=gold"), "{page}");
    assert!(page.contains("the demo"), "{page}");
    let header = format!("API-KEY: {demo_key}").into_bytes();
    let res = server.send("POST", "/orders", &[&header], b"").unwrap();
    assert_eq!(res.json()["plan"], "gold", "{}", res.text());

    // A bad value: the form again, with the error, nothing changed.
    let bad = form.replace("scopes=orders%3Awrite", "scopes=orders%3A");
    let res = browser.post("/admin/keys/demo/edit", &bad);
    assert_eq!(res.status, 400);
    assert!(res.text().contains("not valid"), "{}", res.text());
    let past = form.replace("2099", "2001");
    assert_eq!(browser.post("/admin/keys/demo/edit", &past).status, 400);
    assert_eq!(
        server
            .send("POST", "/orders", &[&header], b"")
            .unwrap()
            .status,
        200
    );

    // The list, filtered as the store filters.
    let mut only = |query: &str| {
        let page = browser.get(&format!("/admin?{query}")).text();
        ["demo", "admin"]
            .into_iter()
            .filter(|name| page.contains(&format!("/admin/keys/{name}\"")))
            .collect::<Vec<_>>()
    };
    assert_eq!(only("user=demo"), ["demo"]);
    assert_eq!(only("group=ops"), ["demo"]);
    assert_eq!(only("expiring=36500d"), ["demo"]);
    assert_eq!(only("revoked=true"), Vec::<&str>::new());
    assert_eq!(only("revoked=false"), ["demo", "admin"]);
    assert_eq!(browser.get("/admin?expiring=soon").status, 400);
}
