//! The `[apikey]` settings.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::key::Secret;
use crate::model::{de_duration, AllowIp, ForwardHeader, Quota, RateLimit};

/// The header that carries keys unless `[apikey] header` says otherwise.
pub const DEFAULT_HEADER: &str = "API-KEY";
/// Default store: an SQLite file in the working directory, created on first start.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://apikeys.db?mode=rwc";

/// The `[apikey]` settings.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Request header carrying the key (`API-KEY`); matched case-insensitively.
    pub header: String,
    /// Where keys are stored: `sqlite:…`, `postgres://…` or `memory:`.
    pub database_url: String,
    /// How long a verified key is cached; `0` disables the cache.
    #[serde(deserialize_with = "de_duration")]
    pub cache_ttl: Duration,
    /// How long an unknown key is remembered as unknown; `0` disables that cache.
    #[serde(deserialize_with = "de_duration")]
    pub negative_cache_ttl: Duration,
    /// Optional secret mixed into every digest (HMAC-SHA256).
    pub pepper: Option<Secret>,
    /// Prefix of generated keys (`ak`).
    pub key_prefix: String,
    /// Refuse the keys of disabled users (Odoo's company option; on by default).
    pub disable_keys_of_inactive_users: bool,
    /// Default rate limit of every key without one of its own (`100/1m`); none by default.
    pub rate_limit: Option<RateLimit>,
    /// Default quota of every key without one of its own (`10000/30d`); none by default.
    pub quota: Option<Quota>,
    /// Redis that rate limits and quotas are shared through (`redis://127.0.0.1:6379/0`);
    /// unset: rate limits per instance, quotas counted in the key store.
    pub limits_url: Option<String>,
    /// Prefix of every Redis key apikey writes (`apikey`).
    pub limits_prefix: String,
    /// A PEM file of the CA that signs the certificate of a `rediss://` `limits_url`; the
    /// system's roots when unset.
    pub limits_ca: Option<PathBuf>,
    /// How often the change feed proves it is alive: a PostgreSQL store notifies itself this
    /// often and stops trusting its feed when no notification arrived for two periods; an
    /// SQLite store's poll must answer within two periods.
    #[serde(deserialize_with = "de_duration")]
    pub feed_heartbeat: Duration,
    /// A direct PostgreSQL connection used only for `LISTEN` (`postgres://…`), when
    /// `database_url` goes through a pooler that does not deliver notifications (PgBouncer in
    /// transaction mode); `database_url` itself when unset.
    pub feed_url: Option<String>,
    /// Responses to a key expiring within this window carry `Sunset` (RFC 8594); `0` turns
    /// the expiry warning off (a rotated-out secret in its grace is always announced).
    #[serde(deserialize_with = "de_duration")]
    pub expiry_warning: Duration,
    /// Also accept `Authorization: Bearer <key>` (off by default, as in Odoo).
    pub accept_bearer: bool,
    /// Refuse to launch while a route is mounted without `#[route]` (an unguarded route), except
    /// the paths in `allow_unguarded`.
    pub require_route_auth: bool,
    /// Mounted paths (`/health`) that may stay unguarded under `require_route_auth`.
    pub allow_unguarded: Vec<String>,
    /// The group whose keys may use the admin page (`apikey-admin`).
    pub admin_group: String,
    /// When the admin page's session cookie is marked `Secure`: `auto` (when Rocket itself
    /// serves TLS), `always` (behind a TLS-terminating proxy), `never`.
    pub admin_secure_cookie: SecureCookie,
    /// How long an admin session may last however active it is (`8h`).
    #[serde(deserialize_with = "de_duration")]
    pub admin_session_lifetime: Duration,
    /// The key the admin page's cookies are encrypted with on axum (Rocket uses its own
    /// `secret_key`): at least 32 random bytes, base64 or hex (`openssl rand -base64 32`).
    /// Required by release builds serving the admin page; a debug build without it makes one
    /// up at start (sessions then end with the process).
    pub admin_cookie_key: Option<Secret>,
    /// A PEM file of the ECDSA P-256 public keys that sign secret scanning reports (GitHub's
    /// are published at `https://api.github.com/meta/public_keys/secret_scanning`); none: the
    /// report endpoint refuses every report.
    pub secret_scanning_keys: Option<PathBuf>,
    /// What a report of a working key of ours does: `revoke` (default) or `flag` (audit only).
    pub secret_scanning_action: LeakAction,
    /// Whether responses to keys with a rate limit or quota carry the `RateLimit-Policy` and
    /// `RateLimit` fields (`true`).
    pub ratelimit_headers: bool,
    /// How long the previous key keeps working after a key rotated itself (`24h`; `0`: it
    /// stops at once).
    #[serde(deserialize_with = "de_duration")]
    pub self_rotation_grace: Duration,
    /// How often a key may rotate itself at most (`1h`), counting every rotation of the key.
    #[serde(deserialize_with = "de_duration")]
    pub self_rotation_every: Duration,
    /// Whether a service opening a store whose schema is behind migrates it (`true`); with
    /// `false` it stops naming `apikey migrate` (a role without DDL rights then suffices). A
    /// current store runs no DDL either way.
    pub auto_migrate: bool,
    /// Most connections of a database store's pool (`8`; the change feed's listener is one
    /// more).
    pub pool_size: u32,
    /// How long a store query waits for a free connection before it fails with 503 (`3s`).
    #[serde(deserialize_with = "de_duration")]
    pub pool_timeout: Duration,
    /// The proxies whose forwarding header is believed (CIDRs; empty, the default: none, and
    /// the client's address is always the TCP peer's).
    pub trusted_proxies: AllowIp,
    /// The header a trusted proxy reports the client's address in: `X-Forwarded-For`
    /// (default; its right-most untrusted address), `Forwarded` (`for=`) or `X-Real-IP`.
    pub client_ip_header: ForwardHeader,
}

impl Settings {
    /// The bytes of `admin_cookie_key` (base64, standard or URL-safe, or hex), `None` when
    /// unset; `Err` when set but not 32 bytes or more in one of those encodings.
    pub fn admin_cookie_key_bytes(&self) -> Result<Option<Vec<u8>>, String> {
        use base64::Engine as _;
        let Some(key) = &self.admin_cookie_key else {
            return Ok(None);
        };
        let text = key.expose().trim();
        let hex = || -> Option<Vec<u8>> {
            if text.len() % 2 != 0 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            (0..text.len() / 2)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
                .collect()
        };
        let engines = [
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::URL_SAFE,
            base64::engine::general_purpose::STANDARD_NO_PAD,
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ];
        hex()
            .into_iter()
            .chain(engines.iter().filter_map(|e| e.decode(text).ok()))
            .find(|bytes| bytes.len() >= 32)
            .map(Some)
            .ok_or_else(|| {
                "`admin_cookie_key` must be at least 32 random bytes, base64 or hex \
                 (openssl rand -base64 32)"
                    .to_owned()
            })
    }
}

/// What to do with a key of ours a secret scanner reports leaked (`secret_scanning_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeakAction {
    /// Revoke it (the default): it stops working at once.
    #[default]
    Revoke,
    /// Only record the report in the audit trail.
    Flag,
}

/// When the admin session cookie is marked `Secure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecureCookie {
    /// When the service itself serves TLS.
    #[default]
    Auto,
    /// Always: the service sits behind a TLS-terminating proxy.
    Always,
    /// Never (plain HTTP on a trusted network only).
    Never,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            header: DEFAULT_HEADER.into(),
            database_url: DEFAULT_DATABASE_URL.into(),
            cache_ttl: Duration::from_secs(60),
            negative_cache_ttl: Duration::from_secs(10),
            pepper: None,
            key_prefix: "ak".into(),
            disable_keys_of_inactive_users: true,
            rate_limit: None,
            quota: None,
            limits_url: None,
            limits_prefix: "apikey".into(),
            limits_ca: None,
            feed_heartbeat: Duration::from_secs(5),
            feed_url: None,
            expiry_warning: Duration::from_secs(14 * 86_400),
            accept_bearer: false,
            require_route_auth: false,
            allow_unguarded: Vec::new(),
            admin_group: "apikey-admin".into(),
            admin_secure_cookie: SecureCookie::Auto,
            admin_session_lifetime: Duration::from_secs(8 * 3600),
            admin_cookie_key: None,
            secret_scanning_keys: None,
            secret_scanning_action: LeakAction::Revoke,
            ratelimit_headers: true,
            self_rotation_grace: Duration::from_secs(24 * 3600),
            self_rotation_every: Duration::from_secs(3600),
            auto_migrate: true,
            pool_size: 8,
            pool_timeout: Duration::from_secs(3),
            trusted_proxies: AllowIp::default(),
            client_ip_header: ForwardHeader::XForwardedFor,
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("header", &self.header)
            .field("database_url", &redact_url(&self.database_url))
            .field("cache_ttl", &self.cache_ttl)
            .field("negative_cache_ttl", &self.negative_cache_ttl)
            .field("pepper", &self.pepper)
            .field("key_prefix", &self.key_prefix)
            .field(
                "disable_keys_of_inactive_users",
                &self.disable_keys_of_inactive_users,
            )
            .field("rate_limit", &self.rate_limit)
            .field("quota", &self.quota)
            .field("limits_url", &self.limits_url.as_deref().map(redact_url))
            .field("limits_prefix", &self.limits_prefix)
            .field("limits_ca", &self.limits_ca)
            .field("feed_heartbeat", &self.feed_heartbeat)
            .field("feed_url", &self.feed_url.as_deref().map(redact_url))
            .field("expiry_warning", &self.expiry_warning)
            .field("accept_bearer", &self.accept_bearer)
            .field("require_route_auth", &self.require_route_auth)
            .field("allow_unguarded", &self.allow_unguarded)
            .field("admin_group", &self.admin_group)
            .field("admin_secure_cookie", &self.admin_secure_cookie)
            .field("admin_session_lifetime", &self.admin_session_lifetime)
            .field("admin_cookie_key", &self.admin_cookie_key)
            .field("secret_scanning_keys", &self.secret_scanning_keys)
            .field("secret_scanning_action", &self.secret_scanning_action)
            .field("ratelimit_headers", &self.ratelimit_headers)
            .field("self_rotation_grace", &self.self_rotation_grace)
            .field("self_rotation_every", &self.self_rotation_every)
            .field("auto_migrate", &self.auto_migrate)
            .field("pool_size", &self.pool_size)
            .field("pool_timeout", &self.pool_timeout)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("client_ip_header", &self.client_ip_header)
            .finish()
    }
}

/// A database URL with any password replaced by `***`, for messages: the one in the user
/// info (`user:pw@`) and any `password` or `sslpassword` query parameter.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            if userinfo.contains(':') {
                format!("{user}:***@{host}")
            } else {
                format!("{user}@{host}")
            }
        }
        None => authority.to_owned(),
    };
    format!("{scheme}://{authority}{}", redact_query(tail))
}

/// The path, query and fragment of a URL with the values of password parameters masked.
fn redact_query(tail: &str) -> String {
    let (before_fragment, fragment) = match tail.find('#') {
        Some(i) => tail.split_at(i),
        None => (tail, ""),
    };
    let Some((path, query)) = before_fragment.split_once('?') else {
        return tail.to_owned();
    };
    let params: Vec<String> = query
        .split('&')
        .map(|param| match param.split_once('=') {
            Some((name, _))
                if name.eq_ignore_ascii_case("password")
                    || name.eq_ignore_ascii_case("sslpassword") =>
            {
                format!("{name}=***")
            }
            _ => param.to_owned(),
        })
        .collect();
    format!("{path}?{}{fragment}", params.join("&"))
}

/// Whether `name` is a usable HTTP header name.
pub(super) fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
