//! The admin session: a private (encrypted, authenticated) cookie naming the admin key (never
//! holding it), its stub, a CSRF token and when it was last used. Every request re-checks the
//! key against the store: revoking, rotating, deleting or leaving the admin group ends it.

use apikey_core::KeyRecord;
use rocket::http::{Cookie, CookieJar, SameSite};
use rocket::request::{FromRequest, Outcome};
use rocket::Request;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use super::Admin;

/// The session cookie's name.
const COOKIE: &str = "apikey_admin";
/// A session unused this long ends.
pub(crate) const IDLE_SECS: i64 = 30 * 60;

#[derive(Serialize, Deserialize)]
struct Data {
    /// The admin key's name.
    name: String,
    /// Its stub when the session began: a rotation ends the session.
    stub: String,
    csrf: String,
    seen: i64,
}

/// A logged-in administrator.
pub(crate) struct Session {
    data: Data,
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// 32 random bytes, hex.
fn token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).expect("the OS random generator works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The mount point of the admin routes, the cookie's path.
pub(crate) fn base(req: &Request<'_>) -> String {
    req.route()
        .map(|r| r.uri.base().trim_end_matches('/').to_owned())
        .unwrap_or_default()
}

/// Where the cookie goes: the admin routes' mount point, over TLS only when TLS is on.
pub(crate) struct Scope {
    pub path: String,
    pub secure: bool,
}

impl Scope {
    pub(crate) fn of(req: &Request<'_>) -> Self {
        Scope {
            path: base(req),
            secure: req.rocket().config().tls_enabled(),
        }
    }

    fn cookie(&self, value: String) -> Cookie<'static> {
        let mut cookie = Cookie::new(COOKIE, value);
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
}

/// Whether `record` may administer keys right now.
pub(crate) fn may_administer(record: &KeyRecord, group: &str) -> bool {
    record.active
        && record.user_active
        && !record.is_expired(OffsetDateTime::now_utc())
        && record.groups.iter().any(|g| g == group)
}

impl Session {
    /// Starts a session for the admin key `record`.
    pub(crate) fn start(scope: &Scope, jar: &CookieJar<'_>, record: &KeyRecord) {
        let data = Data {
            name: record.name.clone(),
            stub: record.stub.clone(),
            csrf: token(),
            seen: now(),
        };
        let value = serde_json::to_string(&data).expect("session data serializes");
        jar.add_private(scope.cookie(value));
    }

    /// Ends the session.
    pub(crate) fn end(scope: &Scope, jar: &CookieJar<'_>) {
        jar.remove_private(scope.cookie(String::new()));
    }

    /// The admin key's name.
    pub(crate) fn name(&self) -> &str {
        &self.data.name
    }

    /// The CSRF token forms carry.
    pub(crate) fn csrf(&self) -> &str {
        &self.data.csrf
    }

    /// Whether a form's token is this session's (constant time); a missing one is not.
    pub(crate) fn accepts(&self, token: Option<&str>) -> bool {
        token.is_some_and(|t| self.data.csrf.as_bytes().ct_eq(t.as_bytes()).into())
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Session {
    type Error = ();

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, ()> {
        let Some(admin) = req.rocket().state::<Admin>() else {
            log::error!("apikey: the admin routes are mounted without `.manage(Admin::new(…))`");
            return Outcome::Forward(rocket::http::Status::ServiceUnavailable);
        };
        let jar = req.cookies();
        let data: Option<Data> = jar
            .get_private(COOKIE)
            .and_then(|c| serde_json::from_str(c.value()).ok());
        let Some(mut data) = data else {
            return Outcome::Forward(rocket::http::Status::Unauthorized);
        };
        let record = admin.manager.get(&data.name).await.ok();
        let valid = now() - data.seen <= IDLE_SECS
            && record
                .as_ref()
                .is_some_and(|r| may_administer(r, &admin.group) && r.stub == data.stub);
        let scope = Scope::of(req);
        if !valid {
            Session::end(&scope, jar);
            return Outcome::Forward(rocket::http::Status::Unauthorized);
        }
        data.seen = now();
        let value = serde_json::to_string(&data).expect("session data serializes");
        jar.add_private(scope.cookie(value));
        Outcome::Success(Session { data })
    }
}
