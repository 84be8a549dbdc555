//! A TCP proxy that a test can turn into a black hole: connections stay open, nothing is
//! forwarded, nothing is closed — what a NAT or load balancer that forgot an idle connection
//! does. New connections are accepted and swallowed too.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A TCP proxy to `upstream` (`host:port`).
pub struct BlackHoleProxy {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    hole: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

/// Copies one direction; while the hole is open, bytes are read and dropped.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, hole: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if hole.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

impl BlackHoleProxy {
    /// Starts forwarding to `upstream`.
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("the proxy's address").port();
        let hole = Arc::new(AtomicBool::new(false));
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let upstream = upstream.to_owned();
        let accept = {
            let (hole, links) = (Arc::clone(&hole), Arc::clone(&links));
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let (hole, upstream) = (Arc::clone(&hole), upstream.clone());
                    let link = tokio::spawn(async move {
                        // In the hole, a new connection is accepted and never answered.
                        while hole.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        let Ok(server) = TcpStream::connect(&upstream).await else {
                            return;
                        };
                        let (cr, cw) = client.into_split();
                        let (sr, sw) = server.into_split();
                        let up = tokio::spawn(pump(cr, sw, Arc::clone(&hole)));
                        pump(sr, cw, hole).await;
                        up.abort();
                    });
                    links.lock().unwrap().push(link);
                }
            })
        };
        BlackHoleProxy {
            port,
            hole,
            links,
            accept,
        }
    }

    /// Stops forwarding, closing nothing.
    pub fn black_hole(&self) {
        self.hole.store(true, Ordering::SeqCst);
    }

    /// Forwards again. Connections that lost bytes in the hole are closed (their stream is
    /// broken), as their peers would have given up on them.
    pub fn heal(&self) {
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
        self.hole.store(false, Ordering::SeqCst);
    }
}

impl Drop for BlackHoleProxy {
    fn drop(&mut self) {
        self.accept.abort();
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }
}

/// The `host[:port]` part of a URL (after any `user@`).
fn server_of(url: &str) -> &str {
    url.split("://")
        .nth(1)
        .and_then(|rest| rest.split(['/', '?']).next())
        .and_then(|a| a.rsplit('@').next())
        .unwrap_or_default()
}

/// The `host:port` a PostgreSQL URL points at (5432 when it names no port).
pub fn authority(url: &str) -> String {
    let a = server_of(url);
    if a.contains(':') {
        a.to_owned()
    } else {
        format!("{a}:5432")
    }
}

/// `url` with its server replaced by `127.0.0.1:port` (a proxy in front of it).
pub fn through(url: &str, port: u16) -> String {
    url.replacen(server_of(url), &format!("127.0.0.1:{port}"), 1)
}
