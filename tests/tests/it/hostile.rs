//! Hostile input: every malformed, misplaced, stale or injected key gets the same 401, nothing
//! panics, nothing is written. Through Rocket's client, and through a real socket for what the
//! client cannot send.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use apikey_core::clock::ManualClock;
use apikey_core::store::SqliteStore;
use apikey_core::{CreateKey, KeyHasher, KeyRecord, Secret, SharedStore, Verifier};
use apikey_rocket::ApiKey;
use apikey_tests::{admin, client, rocket_with, spec};
use rocket::http::{Header, Status};
use rocket::local::asynchronous::Client;
use rocket::routes;

struct Keys {
    good: String,
    revoked: String,
    expired: String,
    deleted: String,
    disabled: String,
    rotated_out: String,
    replaced: String,
}

async fn setup(dir: &std::path::Path) -> (SharedStore, Keys) {
    let url = format!("sqlite://{}?mode=rwc", dir.join("k.db").display());
    let store: SharedStore = Arc::new(SqliteStore::connect(&url).await.unwrap());
    let m = admin(&store);
    let mk = |name: &str, user: &str| spec(name, user, &[]);
    let good = m.create(mk("good", "alice")).await.unwrap().1;
    let revoked = m.create(mk("revoked", "alice")).await.unwrap().1;
    m.revoke("revoked").await.unwrap();
    let expired = m
        .create(CreateKey {
            expires_in: Some(Duration::from_secs(1)),
            ..mk("expired", "alice")
        })
        .await
        .unwrap()
        .1;
    let deleted = m.create(mk("deleted", "alice")).await.unwrap().1;
    m.delete("deleted").await.unwrap();
    let disabled = m.create(mk("disabled", "dora")).await.unwrap().1;
    m.set_user_active("dora", false).await.unwrap();
    let rotated_out = m.create(mk("rotated", "alice")).await.unwrap().1;
    m.rotate("rotated", Duration::from_secs(1)).await.unwrap();
    let replaced = m.create(mk("From Env", "alice")).await.unwrap().1;
    let keys = Keys {
        good: good.expose().into(),
        revoked: revoked.expose().into(),
        expired: expired.expose().into(),
        deleted: deleted.expose().into(),
        disabled: disabled.expose().into(),
        rotated_out: rotated_out.expose().into(),
        replaced: replaced.expose().into(),
    };
    (store, keys)
}

const CONFIG: &str = "[default.api_key_from_env]\nkey = \"from_config\"\n";

/// The service, its verifier's clock three seconds ahead: the one-second expiry and grace
/// above are over without waiting for them.
async fn app(store: SharedStore) -> rocket::Rocket<rocket::Build> {
    let rocket = rocket_with(CONFIG);
    let config = apikey_rocket::load_config(rocket.figment()).unwrap();
    let clock = ManualClock::starting_now();
    clock.advance(Duration::from_secs(3));
    let verifier = Verifier::with_clock(config, store, clock.shared())
        .await
        .unwrap();
    rocket
        .attach(ApiKey::with_verifier(Arc::new(verifier)))
        .mount("/", routes![my_service::my_service])
}

/// How a case presents its key.
enum Sent {
    Headers(Vec<(&'static str, String)>),
    Uri(String),
}

fn header(value: impl Into<String>) -> Sent {
    Sent::Headers(vec![("API-KEY", value.into())])
}

fn cases(k: &Keys) -> Vec<(&'static str, Sent, Status)> {
    let g = k.good.clone();
    let flip_last = {
        let mut s = g.clone();
        let last = s.pop().unwrap();
        s.push(if last == 'A' { 'B' } else { 'A' });
        s
    };
    let flip_secret = {
        let mut b = g.clone().into_bytes();
        b[10] = if b[10] == b'x' { b'y' } else { b'x' };
        String::from_utf8(b).unwrap()
    };
    use Status as S;
    vec![
        ("missing", Sent::Headers(vec![]), S::Unauthorized),
        ("empty", header(""), S::Unauthorized),
        ("spaces", header("   "), S::Unauthorized),
        ("tab", header("\t"), S::Unauthorized),
        ("very long", header("a".repeat(100_000)), S::Unauthorized),
        (
            "one over the limit",
            header("a".repeat(513)),
            S::Unauthorized,
        ),
        ("non-ASCII", header("clé-ünïcödé"), S::Unauthorized),
        ("emoji", header("🔑🔑🔑"), S::Unauthorized),
        (
            "control character",
            header(format!("{g}\u{1}")),
            S::Unauthorized,
        ),
        ("NUL", header(format!("ak_\0{}", &g[3..])), S::Unauthorized),
        (
            "CR LF",
            header(format!("{g}\r\nX-Admin: 1")),
            S::Unauthorized,
        ),
        ("DEL", header(format!("{g}\u{7f}")), S::Unauthorized),
        (
            "two headers, both good",
            Sent::Headers(vec![("API-KEY", g.clone()), ("API-KEY", g.clone())]),
            S::Unauthorized,
        ),
        (
            "two headers, good then bad",
            Sent::Headers(vec![("API-KEY", g.clone()), ("API-KEY", "bad".into())]),
            S::Unauthorized,
        ),
        (
            "two headers, bad then good",
            Sent::Headers(vec![("API-KEY", "bad".into()), ("api-key", g.clone())]),
            S::Unauthorized,
        ),
        (
            "API_KEY with underscore",
            Sent::Headers(vec![("API_KEY", g.clone())]),
            S::Unauthorized,
        ),
        (
            "lowercase name",
            Sent::Headers(vec![("api-key", g.clone())]),
            S::Ok,
        ),
        (
            "surrounding spaces are HTTP whitespace",
            header(format!("  {g}  ")),
            S::Ok,
        ),
        (
            "no-break spaces are not",
            header(format!("\u{a0}{g}\u{a0}")),
            S::Unauthorized,
        ),
        (
            "in the query",
            Sent::Uri(format!("/my_service?api_key={g}")),
            S::Unauthorized,
        ),
        (
            "in the query, header name",
            Sent::Uri(format!("/my_service?API-KEY={g}")),
            S::Unauthorized,
        ),
        (
            "as a bearer token",
            Sent::Headers(vec![("Authorization", format!("Bearer {g}"))]),
            S::Unauthorized,
        ),
        (
            "in a cookie",
            Sent::Headers(vec![("Cookie", format!("API-KEY={g}"))]),
            S::Unauthorized,
        ),
        ("bad checksum", header(flip_last), S::Unauthorized),
        (
            "one secret character changed",
            header(flip_secret),
            S::Unauthorized,
        ),
        (
            "truncated by one",
            header(&g[..g.len() - 1]),
            S::Unauthorized,
        ),
        (
            "truncated to half",
            header(&g[..g.len() / 2]),
            S::Unauthorized,
        ),
        ("extended by one", header(format!("{g}a")), S::Unauthorized),
        (
            "good key and junk",
            header(format!("{g} junk")),
            S::Unauthorized,
        ),
        (
            "uppercase prefix",
            header(format!("AK{}", &g[2..])),
            S::Unauthorized,
        ),
        ("prefix only", header("ak_"), S::Unauthorized),
        (
            "another vendor's prefix",
            header(format!("sk_live_{}", &g[3..])),
            S::Unauthorized,
        ),
        ("changed case", header(g.to_lowercase()), S::Unauthorized),
        ("SQL tautology", header("' OR '1'='1"), S::Unauthorized),
        (
            "SQL drop",
            header("x');DROP/**/TABLE/**/apikey_keys;--"),
            S::Unauthorized,
        ),
        ("SQL comment", header("good'--"), S::Unauthorized),
        ("format string", header("%s%s%s%n%x"), S::Unauthorized),
        ("Rust format", header("{}{:?}{0}"), S::Unauthorized),
        (
            "path traversal",
            header("../../../../etc/passwd"),
            S::Unauthorized,
        ),
        (
            "JSON",
            header("{\"key\":\"ak_\",\"admin\":true}"),
            S::Unauthorized,
        ),
        (
            "the digest instead of the key",
            header(digest_hex(&g)),
            S::Unauthorized,
        ),
        ("the display stub", header(&g[..7]), S::Unauthorized),
        ("revoked", header(&k.revoked), S::Unauthorized),
        ("expired", header(&k.expired), S::Unauthorized),
        ("deleted", header(&k.deleted), S::Unauthorized),
        ("disabled user", header(&k.disabled), S::Unauthorized),
        (
            "rotated out after its grace",
            header(&k.rotated_out),
            S::Unauthorized,
        ),
        (
            "stored key replaced by config",
            header(&k.replaced),
            S::Unauthorized,
        ),
        ("the config key", header("from_config"), S::Ok),
        ("the good key", header(&g), S::Ok),
    ]
}

fn digest_hex(key: &str) -> String {
    KeyHasher::new(None)
        .digest(key)
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn send(client: &Client, sent: &Sent) -> (Status, String, Option<String>) {
    let req = match sent {
        Sent::Uri(uri) => client.get(uri.clone()),
        Sent::Headers(headers) => {
            let mut req = client.get("/my_service");
            for (name, value) in headers {
                req = req.header(Header::new(*name, value.clone()));
            }
            req
        }
    };
    let res = req.dispatch().await;
    let challenge = res.headers().get_one("WWW-Authenticate").map(str::to_owned);
    (
        res.status(),
        res.into_string().await.unwrap_or_default(),
        challenge,
    )
}

async fn snapshot(store: &SharedStore) -> Vec<KeyRecord> {
    store.list(&apikey_core::KeyFilter::all()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_value_gets_the_same_401_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, keys) = setup(dir.path()).await;
    let client = client(app(store.clone()).await).await;
    let before = snapshot(&store).await;
    let (_, invalid_body, _) = send(&client, &header("surely-unknown")).await;
    let (_, missing_body, _) = send(&client, &Sent::Headers(vec![])).await;
    let all = cases(&keys);
    assert!(all.len() >= 40, "{} cases", all.len());
    for (what, sent, want) in &all {
        let (status, body, challenge) = send(&client, sent).await;
        assert_eq!(status, *want, "{what}");
        if status == Status::Unauthorized {
            assert_eq!(
                challenge.as_deref(),
                Some("ApiKey header=\"API-KEY\""),
                "{what}"
            );
            assert!(
                body == invalid_body || body == missing_body,
                "{what}: a different body is an oracle: {body}"
            );
            assert!(!body.contains(&keys.good[3..12]), "{what}: key echoed");
        }
    }
    assert_eq!(snapshot(&store).await, before, "nothing was written");
    assert_eq!(
        store
            .list(&apikey_core::KeyFilter::all())
            .await
            .unwrap()
            .len(),
        before.len(),
        "no table was dropped"
    );
    // The server is still fine.
    assert_eq!(send(&client, &header(&keys.good)).await.0, Status::Ok);
}

fn raw(port: u16, request: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn status_line(response: &str) -> &str {
    response.lines().next().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_socket_cases() {
    let dir = tempfile::tempdir().unwrap();
    let (store, keys) = setup(dir.path()).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let rocket = app(store)
        .await
        .configure(rocket::Config {
            port,
            ..rocket::Config::debug_default()
        })
        .ignite()
        .await
        .unwrap();
    let shutdown = rocket.shutdown();
    let server = tokio::spawn(rocket.launch());
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let g = keys.good.as_bytes();
    let request = |extra: &[u8]| {
        let mut r = b"GET /my_service HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".to_vec();
        r.extend_from_slice(extra);
        r.extend_from_slice(b"\r\n");
        r
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "good key",
            [b"API-KEY: ".as_slice(), g, b"\r\n"].concat(),
            "200",
        ),
        (
            "non-UTF-8 bytes",
            b"API-KEY: \xff\xfe\xfd\r\n".to_vec(),
            "401",
        ),
        (
            "obsolete line folding",
            [
                b"API-KEY: ".as_slice(),
                &g[..10],
                b"\r\n ",
                &g[10..],
                b"\r\n",
            ]
            .concat(),
            "400",
        ),
        (
            "space in the name",
            [b"API KEY: ".as_slice(), g, b"\r\n"].concat(),
            "400",
        ),
        ("no colon", b"API-KEY\r\n".to_vec(), "400"),
        (
            "1 MiB value",
            [b"API-KEY: ".as_slice(), &vec![b'a'; 1 << 20], b"\r\n"].concat(),
            "431",
        ),
        (
            "two headers",
            [b"API-KEY: ".as_slice(), g, b"\r\nAPI-KEY: ", g, b"\r\n"].concat(),
            "401",
        ),
        ("empty value", b"API-KEY:\r\n".to_vec(), "401"),
    ];
    for (what, extra, want) in &cases {
        let response = raw(port, &request(extra));
        let line = status_line(&response);
        eprintln!("raw {what}: {line}");
        assert_eq!(line.split(' ').nth(1), Some(*want), "{what}: {line:?}");
        assert!(!response.contains(&keys.good[3..12]), "{what}: key echoed");
    }
    let response = raw(
        port,
        &request(&[b"API-KEY: ".as_slice(), g, b"\r\n"].concat()),
    );
    assert!(status_line(&response).contains("200"), "still serving");
    shutdown.notify();
    let _ = server.await;
}

#[test]
fn the_secret_type_never_prints() {
    let s = Secret::new("ak_topsecret");
    assert!(!format!("{s} {s:?}").contains("topsecret"));
}
