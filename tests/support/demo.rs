//! The demos (`my-service` on Rocket, `axum-service` on axum) as real processes on real
//! sockets, and raw HTTP/1.1 to them: what the end-to-end suite sends and reads.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Which framework a demo binary is built on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framework {
    /// `my-service`.
    Rocket,
    /// `axum-service`.
    Axum,
}

/// A demo binary.
#[derive(Debug, Clone, Copy)]
pub struct Demo {
    /// The path of its executable.
    pub bin: &'static str,
    /// Its framework.
    pub framework: Framework,
}

/// A demo as a process of its own, on a free port, stopped when dropped.
pub struct Server {
    child: Child,
    /// Its port.
    pub port: u16,
    out: PathBuf,
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    /// Starts `demo` in `dir` on the store at `url` with `env`, logging to a file, and waits
    /// until it answers.
    pub fn start(demo: Demo, dir: &Path, url: &str, env: &[(&str, &str)]) -> Server {
        let server = Self::spawn(demo, dir, url, env);
        let start = Instant::now();
        while server.get("/health", &[]).is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the demo never answered:\n{}",
                server.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// Starts `demo` without waiting for it (for demos that must fail to start).
    pub fn spawn(demo: Demo, dir: &Path, url: &str, env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let out = dir.join(format!("server-{port}.log"));
        let log = std::fs::File::create(&out).unwrap();
        let port_text = port.to_string();
        let child = Command::new(demo.bin)
            .current_dir(dir)
            .env_remove("APIKEY_CONFIG")
            .env("APIKEY_DATABASE_URL", url)
            .envs([
                ("ROCKET_PORT", port_text.as_str()),
                ("ROCKET_ADDRESS", "127.0.0.1"),
                ("ROCKET_CLI_COLORS", "false"),
                ("PORT", port_text.as_str()),
                ("HOST", "127.0.0.1"),
            ])
            .envs(env.iter().copied())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start the demo");
        Server { child, port, out }
    }

    /// Sends a raw HTTP/1.1 request (`method path`) with extra header lines and a body; the
    /// response, if any.
    pub fn send(&self, method: &str, path: &str, headers: &[&[u8]], body: &[u8]) -> Option<Raw> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        )
        .into_bytes();
        for h in headers {
            req.extend_from_slice(h);
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"\r\n");
        req.extend_from_slice(body);
        s.write_all(&req).ok()?;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        Raw::parse(&out)
    }

    /// `GET path` with extra header lines.
    pub fn get(&self, path: &str, headers: &[&[u8]]) -> Option<Raw> {
        self.send("GET", path, headers, b"")
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Waits until it exits (it must, within 30 s): its exit status and everything it printed.
    pub fn wait(mut self) -> (std::process::ExitStatus, String) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, self.output());
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the demo did not exit:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server; everything it printed.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.output()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response as it came over the wire.
#[derive(Debug, Clone)]
pub struct Raw {
    /// The status code.
    pub status: u16,
    /// The header lines, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl Raw {
    fn parse(bytes: &[u8]) -> Option<Raw> {
        let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&bytes[..end]);
        let mut lines = head.split("\r\n");
        let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let mut body = bytes[end + 4..].to_vec();
        let chunked = headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
        if chunked {
            body = dechunk(&body);
        }
        Some(Raw {
            status,
            headers,
            body,
        })
    }

    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// What apikey decides of an answer, to compare two of them byte for byte: the status,
    /// the headers apikey sets and the body of a refusal.
    pub fn apikey_part(&self) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let ours = [
            "content-type",
            "www-authenticate",
            "retry-after",
            "sunset",
            "access-control-allow-headers",
            "ratelimit-policy",
            "ratelimit",
        ];
        let mut headers: Vec<(String, String)> = self
            .headers
            .iter()
            .filter(|(n, _)| ours.contains(&n.as_str()))
            .cloned()
            .collect();
        headers.sort();
        let body = if self.status >= 400 {
            self.body.clone()
        } else {
            Vec::new()
        };
        (self.status, headers, body)
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&body[..line_end])
                .split(';')
                .next()
                .unwrap_or("0")
                .trim(),
            16,
        )
        .unwrap_or(0);
        body = &body[line_end + 2..];
        if size == 0 || body.len() < size {
            break;
        }
        out.extend_from_slice(&body[..size]);
        body = &body[(size + 2).min(body.len())..];
    }
    out
}

/// The key a demo printed after `label` in its first-start output (each key once, indented).
pub fn printed_key(output: &str, label: &str) -> String {
    let Some(at) = output.find(label) else {
        panic!("no {label:?} in:\n{output}");
    };
    output[at..]
        .lines()
        .skip(1)
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default()
        .to_owned()
}

/// A browser's side of a demo's admin page over real sockets: the cookies the demo set (as
/// sent back), and every `Set-Cookie` line it sent, for their attributes.
pub struct CookieClient<'s> {
    server: &'s Server,
    cookies: Vec<(String, String)>,
    /// Every `Set-Cookie` value received, in order.
    pub set_cookies: Vec<String>,
}

impl<'s> CookieClient<'s> {
    /// A client with no cookie yet.
    pub fn new(server: &'s Server) -> Self {
        CookieClient {
            server,
            cookies: Vec::new(),
            set_cookies: Vec::new(),
        }
    }

    /// Sends a request with the cookies kept and `headers`; keeps what the answer sets (a
    /// cookie set empty or with `Max-Age=0` is dropped).
    pub fn send(&mut self, method: &str, path: &str, headers: &[&[u8]], body: &[u8]) -> Raw {
        let mut all: Vec<Vec<u8>> = headers.iter().map(|h| h.to_vec()).collect();
        if !self.cookies.is_empty() {
            all.push(format!("Cookie: {}", self.cookie_header()).into_bytes());
        }
        if method == "POST" {
            all.push(b"Content-Type: application/x-www-form-urlencoded".to_vec());
        }
        let refs: Vec<&[u8]> = all.iter().map(Vec::as_slice).collect();
        let res = self
            .server
            .send(method, path, &refs, body)
            .unwrap_or_else(|| panic!("{method} {path}: no answer"));
        for (name, value) in &res.headers {
            if name != "set-cookie" {
                continue;
            }
            self.set_cookies.push(value.clone());
            let pair = value.split(';').next().unwrap_or_default();
            let Some((n, v)) = pair.split_once('=') else {
                continue;
            };
            self.cookies.retain(|(kept, _)| kept != n.trim());
            let removed = v.is_empty() || value.to_ascii_lowercase().contains("max-age=0");
            if !removed {
                self.cookies
                    .push((n.trim().to_owned(), v.trim().to_owned()));
            }
        }
        res
    }

    /// `GET path`.
    pub fn get(&mut self, path: &str) -> Raw {
        self.send("GET", path, &[], b"")
    }

    /// `POST path` with the form `form` (url-encoded by the caller).
    pub fn post(&mut self, path: &str, form: &str) -> Raw {
        self.send("POST", path, &[], form.as_bytes())
    }

    /// The `Cookie` header value sent now.
    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The value of the cookie `name` kept now.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Replaces the kept cookies (a copy of another browser's).
    pub fn set_cookie_header(&mut self, header: &str) {
        self.cookies = header
            .split("; ")
            .filter_map(|p| p.split_once('='))
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
    }
}
