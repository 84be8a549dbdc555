//! TLS servers made by a test: a CA and a server certificate for `localhost` (made with the
//! `openssl` command), a PostgreSQL with `ssl=on` that refuses plain connections (its own
//! data directory and port, from the server binaries), and a Redis that speaks TLS only.
//!
//! Without the tools they are skipped (`None`), unless `APIKEY_TEST_REQUIRE_TLS` is set (CI),
//! which turns a missing tool into a failure.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Set in CI: the TLS servers must start.
pub const REQUIRE_TLS_ENV: &str = "APIKEY_TEST_REQUIRE_TLS";

fn unavailable(what: &str) -> Option<()> {
    if std::env::var_os(REQUIRE_TLS_ENV).is_some() {
        panic!("{what}, and {REQUIRE_TLS_ENV} is set");
    }
    eprintln!("skipped: {what}");
    None
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A free TCP port on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Certificates for one test: `ca` signs `cert` (for `localhost` only); `other_ca` signs
/// nothing these servers present.
pub struct TestPki {
    dir: TempDir,
    /// The CA that signed the servers' certificate.
    pub ca: PathBuf,
    /// A CA that did not.
    pub other_ca: PathBuf,
    /// The server certificate (`DNS:localhost` only).
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

impl TestPki {
    /// Makes the certificates; `None` (skipped) without the `openssl` command.
    pub fn new() -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = |name: &str| dir.path().join(name);
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let made = (|| {
            for (name, cn) in [("ca", "apikey test CA"), ("other-ca", "another CA")] {
                run(Command::new("openssl")
                    .args(["req", "-x509"])
                    .args(ec)
                    .args(["-days", "2", "-subj", &format!("/CN={cn}")])
                    .arg("-keyout")
                    .arg(p(&format!("{name}.key")))
                    .arg("-out")
                    .arg(p(&format!("{name}.pem"))))?;
            }
            run(Command::new("openssl")
                .arg("req")
                .args(ec)
                .args(["-subj", "/CN=localhost"])
                .arg("-keyout")
                .arg(p("server.key"))
                .arg("-out")
                .arg(p("server.csr")))?;
            std::fs::write(
                p("server.ext"),
                "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n\
                 keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
            )
            .map_err(|e| e.to_string())?;
            run(Command::new("openssl")
                .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
                .arg("-in")
                .arg(p("server.csr"))
                .arg("-CA")
                .arg(p("ca.pem"))
                .arg("-CAkey")
                .arg(p("ca.key"))
                .arg("-extfile")
                .arg(p("server.ext"))
                .arg("-out")
                .arg(p("server.pem")))
        })();
        if let Err(e) = made {
            unavailable(&format!("cannot make test certificates with openssl ({e})"))?;
        }
        Some(TestPki {
            ca: p("ca.pem"),
            other_ca: p("other-ca.pem"),
            cert: p("server.pem"),
            key: p("server.key"),
            dir,
        })
    }

    /// The folder holding the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Whether this process runs as root (PostgreSQL's tools refuse to).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The newest PostgreSQL server binaries: `pg_config --bindir`, else `/usr/lib/postgresql/*/bin`.
fn pg_bindir() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists())
        .collect();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop().or_else(|| {
        let out = Command::new("pg_config").arg("--bindir").output().ok()?;
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        dir.join("initdb").exists().then_some(dir)
    })
}

/// A PostgreSQL server with `ssl=on` on a port of its own, trusting every TLS connection from
/// 127.0.0.1 and refusing every plain one. Stopped when dropped.
pub struct TlsPostgres {
    data: TempDir,
    bin: PathBuf,
    as_postgres: bool,
    /// Its port.
    pub port: u16,
}

impl TlsPostgres {
    /// Starts one with the server certificate of `pki`; `None` (skipped) without the server
    /// binaries.
    pub fn start(pki: &TestPki) -> Option<Self> {
        let Some(bin) = pg_bindir() else {
            unavailable("no PostgreSQL server binaries (initdb)")?;
            return None;
        };
        let as_postgres = is_root();
        let data = tempfile::Builder::new()
            .prefix("apikey-tls-pg")
            .tempdir()
            .expect("temp dir");
        let port = free_port();
        let server = Self {
            data,
            bin,
            as_postgres,
            port,
        };
        if let Err(e) = server.init(pki) {
            unavailable(&format!("cannot start a TLS PostgreSQL ({e})"))?;
        }
        Some(server)
    }

    fn tool(&self, name: &str) -> Command {
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bin.join(name));
            c
        } else {
            Command::new(self.bin.join(name))
        }
    }

    fn pgdata(&self) -> PathBuf {
        self.data.path().join("pgdata")
    }

    fn init(&self, pki: &TestPki) -> Result<(), String> {
        let pgdata = self.pgdata();
        std::fs::create_dir(&pgdata).map_err(|e| e.to_string())?;
        std::fs::copy(&pki.cert, pgdata.join("server.crt")).map_err(|e| e.to_string())?;
        std::fs::copy(&pki.key, pgdata.join("server.key")).map_err(|e| e.to_string())?;
        if self.as_postgres {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(self.data.path()))?;
        }
        run(Command::new("chmod")
            .arg("600")
            .arg(pgdata.join("server.key")))?;
        // initdb wants an empty folder: keep the certificate files aside meanwhile.
        let keep = self.data.path().join("certs");
        std::fs::create_dir(&keep).map_err(|e| e.to_string())?;
        for f in ["server.crt", "server.key"] {
            std::fs::rename(pgdata.join(f), keep.join(f)).map_err(|e| e.to_string())?;
        }
        run(self
            .tool("initdb")
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&pgdata))?;
        for f in ["server.crt", "server.key"] {
            std::fs::rename(keep.join(f), pgdata.join(f)).map_err(|e| e.to_string())?;
        }
        std::fs::write(
            pgdata.join("pg_hba.conf"),
            "local all all trust\n\
             hostssl all all 127.0.0.1/32 trust\n\
             hostnossl all all 127.0.0.1/32 reject\n",
        )
        .map_err(|e| e.to_string())?;
        if self.as_postgres {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(self.data.path()))?;
        }
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c ssl=on \
             -c ssl_cert_file=server.crt -c ssl_key_file=server.key -c fsync=off",
            self.port,
            self.data.path().display()
        );
        run(self
            .tool("pg_ctl")
            .args(["-w", "-t", "60", "-D"])
            .arg(&pgdata)
            .arg("-l")
            .arg(self.data.path().join("server.log"))
            .args(["-o", &options, "start"]))
    }

    /// A URL of this server as `host` (`localhost` matches the certificate, `127.0.0.1` does
    /// not), with `params` (`sslmode=verify-full&sslrootcert=…`).
    pub fn url(&self, host: &str, params: &str) -> String {
        format!(
            "postgres://postgres:not-the-password@{host}:{}/postgres?{params}",
            self.port
        )
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let _ = self
            .tool("pg_ctl")
            .args(["-m", "immediate", "-D"])
            .arg(self.pgdata())
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A Redis that speaks TLS only, with the server certificate of a [`TestPki`]. Stopped when
/// dropped.
pub struct TlsRedis {
    child: Child,
    /// Its TLS port.
    pub port: u16,
}

impl TlsRedis {
    /// Starts one; `None` (skipped) without `redis-server`.
    pub fn start(pki: &TestPki) -> Option<Self> {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .arg("--tls-cert-file")
            .arg(&pki.cert)
            .arg("--tls-key-file")
            .arg(&pki.key)
            .arg("--tls-ca-cert-file")
            .arg(&pki.ca)
            .args(["--tls-auth-clients", "no", "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(pki.dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else {
            unavailable("no redis-server")?;
            return None;
        };
        let mut redis = TlsRedis { child, port };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = redis.child.try_wait() {
                unavailable(&format!(
                    "redis-server with TLS exited at start ({status}); is it built with TLS?"
                ))?;
            }
            if start.elapsed() > Duration::from_secs(10) {
                unavailable("redis-server with TLS did not listen within 10 s")?;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(redis)
    }

    /// Its URL as `host`.
    pub fn url(&self, host: &str) -> String {
        format!("rediss://{host}:{}/0", self.port)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
