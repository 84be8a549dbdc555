//! Fail closed: with the key store unreachable, cached keys keep working, everything else gets
//! 503 (never the handler, never internals), and service recovers by itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apikey_rocket::ApiKey;
use apikey_tests::{admin, client, get, rocket_with, spec, SharedDb};
use rocket::http::Status;
use rocket::routes;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A TCP proxy to the database that the test can cut and heal.
struct Proxy {
    port: u16,
    down: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = {
            let (down, conns) = (down.clone(), conns.clone());
            tokio::spawn(async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if down.load(Ordering::SeqCst) {
                        continue; // dropped: the connection is closed at once
                    }
                    let upstream = upstream.clone();
                    conns.lock().unwrap().push(tokio::spawn(async move {
                        if let Ok(mut out) = TcpStream::connect(upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                        }
                    }));
                }
            })
        };
        Proxy {
            port,
            down,
            conns,
            accept,
        }
    }

    fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn heal(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_fails_closed_and_recovers() {
    let Some(db) = SharedDb::postgres() else {
        return;
    };
    let url = db.url.clone();
    let authority = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|a| a.rsplit('@').next())
        .unwrap()
        .to_owned();
    let upstream = if authority.contains(':') {
        authority.clone()
    } else {
        format!("{authority}:5432")
    };
    let proxy = Proxy::start(upstream.clone()).await;
    let proxied = url.replacen(&upstream, &format!("127.0.0.1:{}", proxy.port), 1);
    let proxied = if proxied == url {
        url.replacen(&authority, &format!("127.0.0.1:{}", proxy.port), 1)
    } else {
        proxied
    };
    let m = admin(&db.store().await);
    let service = db.postgres_store_at(&proxied).await;
    let (_, cached) = m.create(spec("cached", "u", &[])).await.unwrap();
    let (_, uncached) = m.create(spec("uncached", "u", &[])).await.unwrap();
    let client = client(
        rocket_with("")
            .attach(ApiKey::with_store(service))
            .mount("/", routes![my_service::my_service]),
    )
    .await;
    // Let the notifications of the two creations arrive first (each drops what it touches).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        get(&client, "/my_service", Some(cached.expose())).await.0,
        Status::Ok
    );

    proxy.cut();
    // The feed goes down with the store: nothing cached is trusted while it may be missing
    // changes, so even the cached key asks the store, which cannot answer: 503.
    let start = Instant::now();
    loop {
        let (status, _) = get(&client, "/my_service", Some(cached.expose())).await;
        if status == Status::ServiceUnavailable {
            break;
        }
        assert_eq!(status, Status::Ok, "never a refusal");
        assert!(
            start.elapsed() < Duration::from_secs(12),
            "cached answers outlived the feed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A key the digest filter has never heard of is refused without the store (401) while
    // the filter is trusted, and 503 once the lost notifications make it untrusted: never the
    // handler either way.
    let (status, _) = get(&client, "/my_service", Some("unknown-key")).await;
    assert!(
        status == Status::Unauthorized || status == Status::ServiceUnavailable,
        "{status}"
    );
    {
        let (status, body) = get(&client, "/my_service", Some(uncached.expose())).await;
        assert_eq!(status, Status::ServiceUnavailable, "fail closed");
        assert!(
            !body.contains("127.0.0.1") && !body.contains("pool"),
            "no internals: {body}"
        );
        assert!(!body.contains("\"user\""), "never the handler");
    }

    proxy.heal();
    let start = Instant::now();
    while get(&client, "/my_service", Some(uncached.expose())).await.0 != Status::Ok {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "did not recover by itself"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Notifications come back too: a revocation made elsewhere reaches the service again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    m.revoke("cached").await.unwrap();
    let start = Instant::now();
    while get(&client, "/my_service", Some(cached.expose())).await.0 != Status::Unauthorized {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "revocation not seen after recovery"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(client);
    drop(proxy);
    db.finish().await;
}
