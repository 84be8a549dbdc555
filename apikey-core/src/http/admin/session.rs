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
//!
//! The cookies themselves are the adapter's: it keeps them encrypted and authenticated
//! ([`AdminCookies`]; Rocket's private cookies, or [`PrivateJar`] for a framework without
//! them), and this module only says what goes in them and with which attributes.

use std::net::IpAddr;

use cookie::{Cookie, SameSite};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use super::AdminApp;
use crate::config::SecureCookie;
use crate::key::hex;
use crate::model::Identity;
use crate::verify::{Credential, Verifier};
use crate::AuditFilter;
use crate::KeyDigest;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "apikey_admin";
/// The login form's token cookie.
pub const LOGIN_COOKIE: &str = "apikey_admin_login";
/// A session unused this long ends.
pub(crate) const IDLE_SECS: i64 = 30 * 60;
/// The audit action of a login, and of a logout (which ends the session everywhere).
pub(crate) const LOGIN_ACTION: &str = "admin-login";
pub(crate) const LOGOUT_ACTION: &str = "admin-logout";

/// The cookies of one admin request, as the adapter keeps them: every value encrypted and
/// authenticated, so that a client can neither read nor forge a session. Rocket's private
/// cookies are one; [`PrivateJar`] is one for any framework.
pub trait AdminCookies {
    /// The value of the cookie `name` this service set, or `None` (absent, or not made with
    /// this service's key).
    fn get(&self, name: &str) -> Option<String>;
    /// Sets `cookie` (its attributes as given), encrypted.
    fn set(&mut self, cookie: Cookie<'static>);
    /// Removes the cookie of `cookie`'s name and path from the browser.
    fn remove(&mut self, cookie: Cookie<'static>);
}

/// Encrypted cookies for a framework without its own (axum): the request's `Cookie` headers
/// read through a key, and the `Set-Cookie` values of what changed.
///
/// ```
/// use apikey_core::http::admin::{AdminCookies, PrivateJar};
/// let key = cookie::Key::generate();
/// let mut jar = PrivateJar::new(&key, []);
/// jar.set(cookie::Cookie::new("apikey_admin", "hello"));
/// let sent = jar.set_cookies();
/// let back = sent[0].split(';').next().unwrap().to_owned();
/// let again = PrivateJar::new(&key, [back.as_str()]);
/// assert_eq!(again.get("apikey_admin").as_deref(), Some("hello"));
/// assert!(PrivateJar::new(&cookie::Key::generate(), [back.as_str()]).get("apikey_admin").is_none());
/// ```
pub struct PrivateJar {
    key: cookie::Key,
    jar: cookie::CookieJar,
}

impl PrivateJar {
    /// The cookies of a request's `Cookie` header values, read with `key`.
    pub fn new<'a>(key: &cookie::Key, headers: impl IntoIterator<Item = &'a str>) -> Self {
        let mut jar = cookie::CookieJar::new();
        for header in headers {
            for c in Cookie::split_parse_encoded(header.to_owned()).flatten() {
                jar.add_original(c.into_owned());
            }
        }
        PrivateJar {
            key: key.clone(),
            jar,
        }
    }

    /// The `Set-Cookie` values of the cookies set or removed.
    pub fn set_cookies(&self) -> Vec<String> {
        self.jar.delta().map(|c| c.encoded().to_string()).collect()
    }
}

impl AdminCookies for PrivateJar {
    fn get(&self, name: &str) -> Option<String> {
        self.jar
            .private(&self.key)
            .get(name)
            .map(|c| c.value().to_owned())
    }

    fn set(&mut self, cookie: Cookie<'static>) {
        self.jar.private_mut(&self.key).add(cookie);
    }

    fn remove(&mut self, cookie: Cookie<'static>) {
        self.jar.private_mut(&self.key).remove(cookie);
    }
}

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

/// `n` random bytes, hex.
fn token(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).expect("the OS random generator works");
    hex(&bytes)
}

/// Constant-time equality of two tokens.
fn same(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Where the cookies go: the admin routes' mount point, `Secure` as `admin_secure_cookie`
/// says (`auto`: when the service itself serves TLS).
pub(crate) struct Scope {
    pub path: String,
    pub secure: bool,
}

impl Scope {
    pub(crate) fn new(base: &str, setting: SecureCookie, tls: bool) -> Self {
        Scope {
            path: base.to_owned(),
            secure: match setting {
                SecureCookie::Always => true,
                SecureCookie::Never => false,
                SecureCookie::Auto => tls,
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
    pub(crate) fn login_token(&self, jar: &mut dyn AdminCookies) -> String {
        let t = token(16);
        jar.set(self.cookie(LOGIN_COOKIE, t.clone()));
        t
    }

    /// Whether a login form's token is the one its cookie holds.
    pub(crate) fn login_token_ok(&self, jar: &dyn AdminCookies, sent: Option<&str>) -> bool {
        let kept = jar.get(LOGIN_COOKIE);
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
        jar: &mut dyn AdminCookies,
        identity: &Identity,
        digest: &KeyDigest,
        now: i64,
    ) -> String {
        let id = token(8);
        let data = Data {
            name: identity.key_name().to_owned(),
            digest: hex(digest.as_bytes()),
            id: id.clone(),
            csrf: token(32),
            started: now,
            seen: now,
        };
        let value = serde_json::to_string(&data).expect("session data serializes");
        jar.set(scope.cookie(SESSION_COOKIE, value));
        jar.remove(scope.cookie(LOGIN_COOKIE, String::new()));
        id
    }

    /// Ends the session in this browser.
    pub(crate) fn end(scope: &Scope, jar: &mut dyn AdminCookies) {
        jar.remove(scope.cookie(SESSION_COOKIE, String::new()));
    }

    /// The session the request's cookie holds, if it still holds (see [`Session::holds`]);
    /// its last use is noted in the cookie. A session that no longer holds is removed.
    pub(crate) async fn of(
        app: &AdminApp,
        verifier: &Verifier,
        scope: &Scope,
        jar: &mut (dyn AdminCookies + Send),
        client: Option<IpAddr>,
    ) -> Option<Session> {
        let mut data: Data = jar
            .get(SESSION_COOKIE)
            .and_then(|v| serde_json::from_str(&v).ok())?;
        // The verifier's clock: sessions end with the secret they logged in with, on one time.
        let now = verifier.clock().unix_secs();
        if !Session::holds(&data, app, verifier, client, now).await {
            Session::end(scope, jar);
            return None;
        }
        data.seen = now;
        let value = serde_json::to_string(&data).expect("session data serializes");
        jar.set(scope.cookie(SESSION_COOKIE, value));
        Some(Session { data })
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
        app: &AdminApp,
        verifier: &Verifier,
        client: Option<IpAddr>,
        now: i64,
    ) -> bool {
        if now - data.seen > IDLE_SECS || now - data.started > app.lifetime_secs {
            return false;
        }
        let Some(digest) = KeyDigest::from_hex(&data.digest) else {
            return false;
        };
        match verifier.identify(Credential::Digest(&digest), client).await {
            Ok((identity, _))
                if identity.key_name() == data.name && may_administer(&identity, &app.group) => {}
            _ => return false,
        }
        let since = OffsetDateTime::from_unix_timestamp(data.started).ok();
        let trail = app
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
