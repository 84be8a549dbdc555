//! The demo as a real process, for the tests that need real sockets.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The demo as a process of its own, on a free port.
pub struct Server {
    child: Child,
    /// Its port.
    pub port: u16,
    out: std::path::PathBuf,
}

impl Server {
    /// Starts the demo on a free port with `env`, logging to a file, and waits until it
    /// answers.
    pub fn start(dir: &std::path::Path, url: &str, env: &[(&str, &str)]) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let out = dir.join("server.log");
        let log = std::fs::File::create(&out).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_my-service"))
            .current_dir(dir)
            .env_remove("APIKEY_CONFIG")
            .env("APIKEY_DATABASE_URL", url)
            .env("ROCKET_PORT", port.to_string())
            .env("ROCKET_ADDRESS", "127.0.0.1")
            .env("ROCKET_CLI_COLORS", "false")
            .envs(env.iter().copied())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start the demo");
        let server = Server { child, port, out };
        let start = Instant::now();
        while server.get("/health", &[]).is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the demo never answered"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// Sends a raw HTTP/1.1 request with extra header lines; the response, if any.
    pub fn raw(&self, path: &str, headers: &[&[u8]]) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut req =
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n").into_bytes();
        for h in headers {
            req.extend_from_slice(h);
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"\r\n");
        s.write_all(&req).ok()?;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        Some(String::from_utf8_lossy(&out).into_owned())
    }

    pub fn get(&self, path: &str, headers: &[&[u8]]) -> Option<String> {
        self.raw(path, headers)
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Stops the server; everything it printed.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }
}

/// The status code of a raw response.
pub fn status(response: &Option<String>) -> &str {
    response
        .as_deref()
        .and_then(|r| r.lines().next())
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("")
}
