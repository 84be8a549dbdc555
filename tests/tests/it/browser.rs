//! The admin page in a real browser (Chromium, through ChromeDriver): log in, create a key and
//! read it from the page, call the API with it (200), revoke it in the page, call again (401),
//! log out. Screenshots of each page go to `target/admin-screenshots/`.
//!
//! Skipped (it says so) where `chromedriver` is not installed; `.ci/run` installs Debian's
//! `chromium` and `chromium-driver`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use apikey_core::model::UsageCount;
use apikey_core::UsageDay;
use apikey_tests::demo::{printed_key, Demo, Framework, Server};

use crate::{AXUM, ROCKET};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

/// ChromeDriver on a free port, stopped with the value.
struct Driver(Child, u16);

impl Driver {
    fn start() -> Option<Driver> {
        let binary = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if start.elapsed() > Duration::from_secs(20) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Driver(child, port))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/admin-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(browser: &Client, demo: Demo, name: &str) {
    let png = browser.screenshot().await.expect("a screenshot");
    let framework = match demo.framework {
        Framework::Rocket => "rocket",
        Framework::Axum => "axum",
    };
    let file = screenshots().join(format!("{framework}-{name}.png"));
    std::fs::write(file, png).unwrap();
}

async fn click(browser: &Client, what: Locator<'_>) {
    browser.find(what).await.unwrap().click().await.unwrap();
}

async fn type_into(browser: &Client, id: &str, text: &str) {
    let field = browser.find(Locator::Id(id)).await.unwrap();
    field.send_keys(text).await.unwrap();
}

/// The text of the element `css` selects once it holds `needle` (up to 5 s). After a click the
/// browser may still show the previous page, or replace the element between finding it and
/// reading it: both are waited out.
async fn text_of(browser: &Client, css: &str, needle: &str) -> String {
    let mut last = String::new();
    for _ in 0..50 {
        if let Ok(element) = browser.find(Locator::Css(css)).await {
            if let Ok(text) = element.text().await {
                if text.contains(needle) {
                    return text;
                }
                last = text;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{css} never held {needle:?}; last: {last:?}")
}

/// The same operator, the same clicks, on both demos: the admin page is one app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_manages_keys_in_a_browser_on_rocket() {
    an_operator_manages_keys_in_a_browser(ROCKET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_manages_keys_in_a_browser_on_axum() {
    an_operator_manages_keys_in_a_browser(AXUM).await;
}

async fn an_operator_manages_keys_in_a_browser(demo: Demo) {
    let Some(driver) = Driver::start() else {
        eprintln!(
            "skipped: chromedriver is not installed (apt-get install chromium chromium-driver)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("keys.db").display());
    let server = Server::start(demo, dir.path(), &url, &[]);
    let admin_key = printed_key(&server.output(), "Created an admin key");
    let origin = format!("http://127.0.0.1:{}", server.port);
    let api = |key: &str| {
        let header = format!("API-KEY: {key}").into_bytes();
        server
            .get("/my_service", &[&header])
            .map_or(String::new(), |r| r.status.to_string())
    };

    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1280,860"]
        }),
    );
    let browser = ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.1))
        .await
        .expect("a Chromium session");

    // A wrong key: an error, the key not echoed.
    browser.goto(&format!("{origin}/admin")).await.unwrap();
    shot(&browser, demo, "01-login").await;
    type_into(&browser, "key", "not-a-valid-key").await;
    click(&browser, Locator::Css("form button")).await;
    text_of(&browser, ".error", "not valid").await;
    assert!(!browser.source().await.unwrap().contains("not-a-valid-key"));
    shot(&browser, demo, "02-wrong-key").await;

    // Log in with the admin key the demo printed.
    type_into(&browser, "key", &admin_key).await;
    click(&browser, Locator::Css("form button")).await;
    assert_eq!(text_of(&browser, "h1", "Keys").await, "Keys");
    text_of(&browser, "table", "demo").await;
    shot(&browser, demo, "03-keys").await;

    // Create a key and read it from the page.
    click(&browser, Locator::LinkText("New key")).await;
    for (id, value) in [
        ("name", "Browser Made"),
        ("user", "web"),
        ("groups", "billing"),
    ] {
        type_into(&browser, id, value).await;
    }
    shot(&browser, demo, "04-new-key").await;
    click(&browser, Locator::Css("main form button")).await;
    let key = browser
        .wait()
        .at_most(std::time::Duration::from_secs(5))
        .for_element(Locator::Id("secret"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .expect("the key in the page");
    assert!(key.starts_with("ak_"), "a generated key");
    shot(&browser, demo, "05-created").await;
    assert_eq!(api(&key), "200", "the new key works");

    // The key is never shown again.
    click(&browser, Locator::LinkText("Done")).await;
    assert!(!browser.source().await.unwrap().contains(&key));

    // Bind it to a network it is not called from, then to the one it is.
    let networks = format!("{origin}/admin/keys/Browser%20Made/networks");
    browser.goto(&networks).await.unwrap();
    text_of(&browser, "main", "from any address").await;
    let field = browser.find(Locator::Id("allow_ip")).await.unwrap();
    field.clear().await.unwrap();
    field
        .send_keys("192.0.2.0/24, 2001:db8::/32")
        .await
        .unwrap();
    shot(&browser, demo, "06-networks").await;
    click(&browser, Locator::Css("main form button")).await;
    let table = text_of(&browser, "table", "192.0.2.0/24").await;
    assert!(table.contains("2001:db8::/32"), "{table}");
    assert_eq!(api(&key), "403", "not from 127.0.0.1");
    browser.goto(&networks).await.unwrap();
    let field = browser.find(Locator::Id("allow_ip")).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys("127.0.0.1").await.unwrap();
    click(&browser, Locator::Css("main form button")).await;
    text_of(&browser, "table", "127.0.0.1/32").await;
    assert_eq!(api(&key), "200", "from 127.0.0.1 again");
    browser.goto(&networks).await.unwrap();
    let field = browser.find(Locator::Id("allow_ip")).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys("10/8").await.unwrap();
    click(&browser, Locator::Css("main form button")).await;
    text_of(&browser, "main", "not a network").await;

    // Its page: the facts and a chart of its requests (3 accepted, 1 refused so far today, and
    // earlier days as a store would hold them).
    assert_eq!(api(&key), "200");
    let today = time::OffsetDateTime::now_utc()
        .unix_timestamp()
        .div_euclid(86_400);
    let history: Vec<UsageCount> = (1..24)
        .map(|ago: i64| UsageCount {
            tech_name: "browser_made".into(),
            counts: UsageDay {
                day: today - ago,
                accepted: 40 + (ago as u64 * 37) % 60,
                forbidden: (ago as u64 * 7) % 9,
                limited: if ago % 6 == 0 { 12 } else { 0 },
            },
        })
        .collect();
    let earlier: u64 = history
        .iter()
        .map(|c| c.counts.accepted + c.counts.forbidden + c.counts.limited)
        .sum();
    let settings = apikey_core::Settings {
        database_url: url.clone(),
        ..apikey_core::Settings::default()
    };
    let store = apikey_core::open(&settings).await.unwrap();
    store.add_usage(&history).await.unwrap();
    browser
        .goto(&format!("{origin}/admin/keys/Browser%20Made"))
        .await
        .unwrap();
    text_of(&browser, "dl.facts", "127.0.0.1/32").await;
    let today = browser
        .find(Locator::Css("svg.usage g.day:last-of-type"))
        .await
        .unwrap();
    let total = today.attr("data-total").await.unwrap().unwrap_or_default();
    assert_eq!(total, "4", "today's bar: the requests made so far");
    let tip = today
        .find(Locator::Css("title"))
        .await
        .unwrap()
        .html(true)
        .await
        .unwrap();
    assert!(tip.contains("3 accepted, 1 refused (403)"), "{tip}");
    assert_eq!(
        browser
            .find_all(Locator::Css("svg.usage g.day"))
            .await
            .unwrap()
            .len(),
        30,
        "a bar per day"
    );
    let totals = text_of(&browser, "p.totals", "accepted").await;
    let shown: u64 = totals
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse::<u64>().ok())
        .filter(|n| ![403, 429].contains(n))
        .sum();
    assert_eq!(shown, earlier + 4, "{totals}");
    browser
        .execute("window.scrollTo(0, document.body.scrollHeight)", vec![])
        .await
        .unwrap();
    // The picture README shows (`docs/admin-key-usage.png`) is copied from here by hand when
    // the page changes: a test never writes a tracked file.
    shot(&browser, demo, "06b-usage").await;

    // The list sorts by use: the key with requests first.
    browser
        .goto(&format!("{origin}/admin?sort=usage"))
        .await
        .unwrap();
    let first = text_of(&browser, "table.keys tbody tr:first-child", "Browser Made").await;
    assert!(first.contains(&(earlier + 4).to_string()), "{first}");
    browser
        .goto(&format!("{origin}/admin?sort=last_used"))
        .await
        .unwrap();
    text_of(&browser, "table.keys tbody tr:first-child", "Browser Made").await;

    // Revoke it, behind a confirmation.
    let revoke = format!("{origin}/admin/keys/Browser%20Made/revoke");
    browser.goto(&revoke).await.unwrap();
    text_of(&browser, "main", "Really revoke").await;
    shot(&browser, demo, "07-confirm-revoke").await;
    click(&browser, Locator::Css("main form button")).await;
    let table = text_of(&browser, "table", "revoked").await;
    assert!(
        table.contains("Browser Made") && table.contains("revoked"),
        "{table}"
    );
    shot(&browser, demo, "08-revoked").await;
    assert_eq!(api(&key), "401", "refused at once");

    click(&browser, Locator::LinkText("Audit trail")).await;
    text_of(&browser, "table", "admin:admin").await;
    shot(&browser, demo, "09-audit").await;

    // Log out: back to the login page, and the pages are closed.
    click(&browser, Locator::Css("form.logout button")).await;
    assert_eq!(text_of(&browser, "h1", "Log in").await, "Log in");
    browser
        .goto(&format!("{origin}/admin/users"))
        .await
        .unwrap();
    assert_eq!(text_of(&browser, "h1", "Log in").await, "Log in");
    shot(&browser, demo, "10-logged-out").await;

    browser.close().await.unwrap();
    let log = server.stop();
    assert!(
        !log.contains(&key),
        "the new key is not in the server's output"
    );
}
