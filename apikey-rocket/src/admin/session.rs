//! The admin session: a private (encrypted, authenticated) cookie naming the admin key, the
//! digest of the very secret that logged in (never the secret), a session id, a CSRF token,
//! when it began and when it was last used.
//!
//! Every request re-verifies that secret through the verifier (caches, config sections, the
//! store), so the session ends with it: revoked, expired, rotated out or its grace over, its
//! user disabled, its effective groups no longer holding the admin group. Logging out is
//! recorded in the audit trail (`admin-logout` with the session id), which every request
//! consults, so a copy of the cookie dies with it, on every instance. A session also ends
//! after 30 minutes idle and at `admin_session_lifetime` (8 h) however active.

use apikey_core::config::SecureCookie;
use apikey_core::{AuditFilter, Credential, Identity, KeyDigest};
use rocket::http::{Cookie, CookieJar, SameSite};
use rocket::request::{FromRequest, Outcome};
use rocket::Request;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use super::Admin;
use crate::facts::client_ip;
use crate::state::ApiKeyState;

/// The session cookie's name.
const COOKIE: &str = "apikey_admin";
/// The login form's token cookie.
const LOGIN_COOKIE: &str = "apikey_admin_login";
/// A session unused this long ends.
pub(crate) const IDLE_SECS: i64 = 30 * 60;
/// The audit action of a login, and of a logout (which ends the session everywhere).
pub(crate) const LOGIN_ACTION: &str = "admin-login";
pub(crate) const LOGOUT_ACTION: &str = "admin-logout";

#[derive(Serialize, Deserialize)]
struct Data {
    /// The admin key's name.
    name: String,
    /// The digest of the secret that logged in, hex.
    digest: String,
    /// This session's id (in the audit trail's login and logout entries).
    id: String,
    csrf: String,
    started: i64,
    seen: i64,
}

/// A logged-in administrator.
pub(crate) struct Session {
    data: Data,
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// `n` random bytes, hex.
fn token(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).expect("the OS random generator works");
    hex(&bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<KeyDigest> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..32)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
        .collect();
    KeyDigest::from_slice(&bytes?)
}

/// Constant-time equality of two tokens.
fn same(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// The mount point of the admin routes, the cookie's path.
pub(crate) fn base(req: &Request<'_>) -> String {
    req.route()
        .map(|r| r.uri.base().trim_end_matches('/').to_owned())
        .unwrap_or_default()
}

/// Where the cookies go: the admin routes' mount point, `Secure` as `admin_secure_cookie`
/// says (`auto`: when Rocket itself serves TLS).
pub(crate) struct Scope {
    pub path: String,
    pub secure: bool,
}

impl Scope {
    pub(crate) fn of(req: &Request<'_>) -> Self {
        let setting = req
            .rocket()
            .state::<Admin>()
            .map_or(SecureCookie::Auto, |a| a.secure_cookie);
        Scope {
            path: base(req),
            secure: match setting {
                SecureCookie::Always => true,
                SecureCookie::Never => false,
                SecureCookie::Auto => req.rocket().config().tls_enabled(),
            },
        }
    }

    fn cookie(&self, name: &'static str, value: String) -> Cookie<'static> {
        let mut cookie = Cookie::new(name, value);
        let path = if self.path.is_empty() {
            "/".to_owned()
        } else {
            self.path.clone()
        };
        cookie.set_path(path);
        cookie.set_http_only(true);
        cookie.set_same_site(SameSite::Strict);
        cookie.set_secure(self.secure);
        cookie
    }

    /// A new login form token, set in its cookie; the form carries it back.
    pub(crate) fn login_token(&self, jar: &CookieJar<'_>) -> String {
        let t = token(16);
        jar.add_private(self.cookie(LOGIN_COOKIE, t.clone()));
        t
    }

    /// Whether a login form's token is the one its cookie holds.
    pub(crate) fn login_token_ok(&self, jar: &CookieJar<'_>, sent: Option<&str>) -> bool {
        let kept = jar.get_private(LOGIN_COOKIE).map(|c| c.value().to_owned());
        matches!((kept, sent), (Some(k), Some(s)) if same(&k, s))
    }
}

/// Whether `identity` may administer keys: its effective groups (config sections included)
/// hold the admin group.
pub(crate) fn may_administer(identity: &Identity, group: &str) -> bool {
    identity.groups().any(|g| g == group)
}

impl Session {
    /// Starts a session for the admin key `identity`, logged in with the secret of `digest`;
    /// returns the session id.
    pub(crate) fn start(
        scope: &Scope,
        jar: &CookieJar<'_>,
        identity: &Identity,
        digest: &KeyDigest,
    ) -> String {
        let id = token(8);
        let data = Data {
            name: identity.key_name().to_owned(),
            digest: hex(digest.as_bytes()),
            id: id.clone(),
            csrf: token(32),
            started: now(),
            seen: now(),
        };
        let value = serde_json::to_string(&data).expect("session data serializes");
        jar.add_private(scope.cookie(COOKIE, value));
        jar.remove_private(scope.cookie(LOGIN_COOKIE, String::new()));
        id
    }

    /// Ends the session in this browser.
    pub(crate) fn end(scope: &Scope, jar: &CookieJar<'_>) {
        jar.remove_private(scope.cookie(COOKIE, String::new()));
    }

    /// The admin key's name.
    pub(crate) fn name(&self) -> &str {
        &self.data.name
    }

    /// The session id, as the audit trail knows it.
    pub(crate) fn id(&self) -> &str {
        &self.data.id
    }

    /// The CSRF token forms carry.
    pub(crate) fn csrf(&self) -> &str {
        &self.data.csrf
    }

    /// Whether a form's token is this session's (constant time); a missing one is not.
    pub(crate) fn accepts(&self, token: Option<&str>) -> bool {
        token.is_some_and(|t| same(&self.data.csrf, t))
    }

    /// Whether the session still holds: not idle too long, not too old, its secret still
    /// verifying as an admin key (from this client's address, for a key bound to networks),
    /// and not logged out.
    async fn holds(
        data: &Data,
        admin: &Admin,
        keys: &ApiKeyState,
        client: Option<std::net::IpAddr>,
    ) -> bool {
        let now = now();
        if now - data.seen > IDLE_SECS || now - data.started > admin.lifetime_secs {
            return false;
        }
        let Some(digest) = unhex(&data.digest) else {
            return false;
        };
        match keys
            .verifier()
            .identify(Credential::Digest(&digest), client)
            .await
        {
            Ok((identity, _))
                if identity.key_name() == data.name && may_administer(&identity, &admin.group) => {}
            _ => return false,
        }
        let since = OffsetDateTime::from_unix_timestamp(data.started).ok();
        let trail = admin
            .manager
            .audit(&AuditFilter {
                name: Some(data.name.clone()),
                since,
            })
            .await;
        // A store that cannot say whether the session was ended: fail closed.
        trail.is_ok_and(|t| {
            !t.iter()
                .any(|a| a.action == LOGOUT_ACTION && a.summary.contains(&data.id))
        })
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Session {
    type Error = ();

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, ()> {
        let (Some(admin), Some(keys)) = (
            req.rocket().state::<Admin>(),
            req.rocket().state::<ApiKeyState>(),
        ) else {
            log::error!(
                "apikey: the admin routes need the ApiKey fairing and `.manage(Admin::new(…))`"
            );
            return Outcome::Forward(rocket::http::Status::ServiceUnavailable);
        };
        let jar = req.cookies();
        let data: Option<Data> = jar
            .get_private(COOKIE)
            .and_then(|c| serde_json::from_str(c.value()).ok());
        let Some(mut data) = data else {
            return Outcome::Forward(rocket::http::Status::Unauthorized);
        };
        let scope = Scope::of(req);
        if !Session::holds(&data, admin, keys, client_ip(req)).await {
            Session::end(&scope, jar);
            return Outcome::Forward(rocket::http::Status::Unauthorized);
        }
        data.seen = now();
        let value = serde_json::to_string(&data).expect("session data serializes");
        jar.add_private(scope.cookie(COOKIE, value));
        Outcome::Success(Session { data })
    }
}
