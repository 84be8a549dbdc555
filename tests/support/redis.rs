//! The test Redis, and a TCP proxy in front of it that a test can cut and heal.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The variable naming the test Redis (`redis://127.0.0.1:6379/0`); tests that need it are
/// skipped when it is unset.
pub const REDIS_ENV: &str = "APIKEY_TEST_REDIS_URL";

/// The test Redis URL, if configured (else the caller says it skipped).
pub fn redis_url() -> Option<String> {
    let url = std::env::var(REDIS_ENV).ok().filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!("skipped: {REDIS_ENV} is not set");
    }
    url
}

/// A Redis key prefix no other test uses, so tests sharing one Redis never meet.
pub fn unique_prefix() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "apikey-test:{}:{nanos}:{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// `host:port` of a `redis://host:port/db` URL, and the rest.
fn split(url: &str) -> (String, String) {
    let rest = url.trim_start_matches("redis://");
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = authority.rsplit('@').next().unwrap_or(authority).to_owned();
    (host, path.to_owned())
}

/// A TCP proxy to Redis. [`cut`](Self::cut) drops every connection and refuses new ones, as a
/// network partition would; [`heal`](Self::heal) lets connections through again.
pub struct RedisProxy {
    /// The URL that goes through the proxy.
    pub url: String,
    cut: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    _accept: JoinHandle<()>,
}

impl RedisProxy {
    /// Starts a proxy in front of the Redis at `url`.
    pub async fn start(url: &str) -> RedisProxy {
        let (upstream, path) = split(url);
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("the proxy's address").port();
        let cut = Arc::new(AtomicBool::new(false));
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = {
            let cut = Arc::clone(&cut);
            let links = Arc::clone(&links);
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if cut.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let upstream = upstream.clone();
                    let link = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(&upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    links.lock().unwrap().push(link);
                }
            })
        };
        RedisProxy {
            url: format!("redis://127.0.0.1:{port}/{path}"),
            cut,
            links,
            _accept: accept,
        }
    }

    /// Drops every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    /// Lets connections through again.
    pub fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for RedisProxy {
    fn drop(&mut self) {
        self.cut();
        self._accept.abort();
    }
}
