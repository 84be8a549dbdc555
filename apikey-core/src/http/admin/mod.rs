//! The admin page (feature `admin`), as plain request data in and an answer out: keys, users and
//! the audit trail in a browser, like Odoo's Settings > Technical > API Keys. Every adapter
//! mounts this one app (`apikey_rocket::admin::routes()`, `apikey_axum::admin::router(…)`): it
//! gives [`AdminApp::handle`] the request's method, path below the mount point, query, form body
//! and client address, with its cookies ([`AdminCookies`]), and sends the [`AdminAnswer`] back as
//! it is.
//!
//! Only keys in `[apikey] admin_group` (`apikey-admin`) may log in. Every change goes through
//! [`KeyManager`], recorded in the audit trail as made by `admin:<key name>`. Every change is a
//! POST carrying the session's CSRF token; pages are sent with a strict CSP, `no-referrer` and
//! `no-store`. Failed logins are limited per client address (its /64 for IPv6) and per tried
//! key.

use std::borrow::Cow;
use std::net::IpAddr;

use maud::Markup;

use crate::config::SecureCookie;
use crate::http::RouteAuth;
use crate::model::ClientIp;
use crate::store::StoreError;
use crate::verify::{AuthError, Credential, Verifier};
use crate::AuditFilter;
use crate::{Actor, ApiKeyConfig, KeyManager};

mod keys;
mod pages;
mod session;
mod throttle;

pub use cookie;
use session::{may_administer, Scope, Session, LOGIN_ACTION, LOGOUT_ACTION};
pub use session::{AdminCookies, PrivateJar, LOGIN_COOKIE, SESSION_COOKIE};

/// The largest form body the admin page reads (adapters stop reading there).
pub const FORM_LIMIT: usize = 64 * 1024;

/// The admin app: the one mutation path, the admin group, how sessions are kept, and the count
/// of failed logins. One per service, shared by its requests.
pub struct AdminApp {
    manager: KeyManager,
    /// Where quotas are counted (`limits_url`) and the default quota, for the key pages.
    settings: crate::Settings,
    group: String,
    secure_cookie: SecureCookie,
    lifetime_secs: i64,
    throttle: throttle::Throttle,
}

/// One route of the admin app (`Custom`: the admin session, but for the two static files,
/// `None`).
pub type AdminRoute = super::AppRoute;

const fn route(
    name: &'static str,
    method: &'static str,
    path: &'static str,
    auth: RouteAuth,
) -> AdminRoute {
    super::AppRoute {
        name,
        method,
        path,
        auth,
        summary: "",
    }
}

/// Every route of the admin app.
pub const ROUTES: &[AdminRoute] = &[
    route("index", "GET", "/", RouteAuth::Custom),
    route("key_page", "GET", "/keys/<name>", RouteAuth::Custom),
    route("login", "POST", "/login", RouteAuth::Custom),
    route("logout", "POST", "/logout", RouteAuth::Custom),
    route("new_form", "GET", "/new", RouteAuth::Custom),
    route("create", "POST", "/new", RouteAuth::Custom),
    route("confirm", "GET", "/keys/<name>/<action>", RouteAuth::Custom),
    route("act", "POST", "/keys/<name>/<action>", RouteAuth::Custom),
    route("users", "GET", "/users", RouteAuth::Custom),
    route(
        "user_act",
        "POST",
        "/users/<user>/<action>",
        RouteAuth::Custom,
    ),
    route("audit", "GET", "/audit", RouteAuth::Custom),
    route("css", "GET", "/static/admin.css", RouteAuth::None),
    route("js", "GET", "/static/admin.js", RouteAuth::None),
];

/// The guard the inventory names for the admin routes checking their own session.
pub const SESSION_GUARD: &str = "admin session";

/// One admin request as the adapter received it.
#[derive(Debug, Clone, Copy)]
pub struct AdminRequest<'a> {
    /// The method, upper case (`GET`, `POST`; `HEAD` is answered as `GET`).
    pub method: &'a str,
    /// Where the admin routes are mounted (`/admin`), no trailing `/`; links and the cookies'
    /// path start there.
    pub base: &'a str,
    /// The path below `base`, as sent (percent-encoded): `/`, `/keys/Web%20Made/revoke`.
    pub path: &'a str,
    /// The query string, without `?`.
    pub query: Option<&'a str>,
    /// The form body (`application/x-www-form-urlencoded`) of a POST, at most [`FORM_LIMIT`].
    pub body: &'a [u8],
    /// The client's address (`Verifier::client_of`: the peer, or what a trusted proxy reports).
    pub client: Option<IpAddr>,
    /// Whether this service itself serves the request over TLS (`admin_secure_cookie = auto`).
    pub tls: bool,
}

/// What the adapter sends back: the status, the headers (the cookies aside, which the
/// [`AdminCookies`] hold) and the body.
pub type AdminAnswer = super::Reply;

const HTML: &str = "text/html; charset=utf-8";
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

impl AdminAnswer {
    /// An HTML page with the admin's security headers.
    fn page(status: u16, markup: Markup) -> Self {
        AdminAnswer {
            status,
            headers: vec![
                ("Content-Type", HTML.into()),
                ("Content-Security-Policy", CSP.into()),
                ("Referrer-Policy", "no-referrer".into()),
                ("X-Content-Type-Options", "nosniff".into()),
                ("Cache-Control", "no-store".into()),
            ],
            body: markup.into_string().into_bytes(),
        }
    }

    /// 303 to `to`.
    fn redirect(to: String) -> Self {
        AdminAnswer {
            status: 303,
            headers: vec![("Location", to.into())],
            body: Vec::new(),
        }
    }

    fn file(content_type: &'static str, body: &'static str) -> Self {
        AdminAnswer {
            status: 200,
            headers: vec![
                ("Content-Type", content_type.into()),
                ("X-Content-Type-Options", "nosniff".into()),
            ],
            body: body.as_bytes().to_vec(),
        }
    }
}

/// The fields of a query string or form body, percent-decoded.
struct Fields(Vec<(String, String)>);

impl Fields {
    fn parse(text: &[u8]) -> Self {
        Fields(form_urlencoded::parse(text).into_owned().collect())
    }

    /// The first value of `name`.
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One request being answered: the app, the request, its cookies and its form.
struct Ctx<'a, 'j> {
    app: &'a AdminApp,
    req: &'a AdminRequest<'a>,
    verifier: &'a Verifier,
    jar: &'j mut (dyn AdminCookies + Send),
    scope: Scope,
    form: Fields,
}

impl Ctx<'_, '_> {
    fn base(&self) -> &str {
        self.req.base
    }

    fn to_login(&self) -> AdminAnswer {
        AdminAnswer::redirect(pages::home(self.base()).to_owned())
    }

    fn refused(&self, status: u16, message: &str) -> AdminAnswer {
        AdminAnswer::page(
            status,
            pages::problem(self.base(), crate::http::reason(status), message),
        )
    }

    fn failed(&self, e: &StoreError) -> AdminAnswer {
        let status = match e {
            StoreError::Unavailable(_) => 503,
            StoreError::NotFound(_) => 404,
            _ => 400,
        };
        self.refused(status, &e.to_string())
    }

    /// The request's session, if it still holds.
    async fn session(&mut self) -> Option<Session> {
        Session::of(
            self.app,
            self.verifier,
            &self.scope,
            self.jar,
            self.req.client,
        )
        .await
    }

    /// The session of a change: logged in (else to the login page), carrying its CSRF token
    /// (else 403, nothing changed).
    async fn checked(&mut self) -> Result<Session, AdminAnswer> {
        let Some(s) = self.session().await else {
            return Err(self.to_login());
        };
        if s.accepts(self.form.get("csrf")) {
            Ok(s)
        } else {
            let message = "The form has expired or was not sent from this page; reload it.";
            Err(self.refused(403, message))
        }
    }

    /// The login page (with a fresh form token), with `message` when a login failed.
    fn login_page(&mut self, status: u16, message: Option<&str>) -> AdminAnswer {
        let token = self.scope.login_token(self.jar);
        AdminAnswer::page(status, pages::login(self.req.base, message, &token))
    }

    /// The manager, recording changes as made by the session's admin key.
    fn as_admin(&self, session: &Session) -> KeyManager {
        as_admin(&self.app.manager, session.name())
    }
}

/// `manager`, recording changes as made by the admin key `name`: always the admin key, never
/// the service's OS user (a name an older store holds that could not be an actor as it is is
/// escaped).
fn as_admin(manager: &KeyManager, name: &str) -> KeyManager {
    manager
        .clone()
        .with_actor(Actor::escaped(&format!("admin:{name}")))
}

impl AdminApp {
    /// Administers through `manager`; admins are the keys in `config`'s `admin_group`
    /// (their effective groups, config sections included).
    pub fn new(manager: KeyManager, config: &ApiKeyConfig) -> Self {
        let settings = &config.settings;
        AdminApp {
            manager,
            settings: settings.clone(),
            group: settings.admin_group.clone(),
            secure_cookie: settings.admin_secure_cookie,
            lifetime_secs: i64::try_from(settings.admin_session_lifetime.as_secs())
                .unwrap_or(i64::MAX),
            throttle: throttle::Throttle::default(),
        }
    }

    /// The key [`PrivateJar`] encrypts cookies with, for a framework without private cookies
    /// of its own: `admin_cookie_key`; unset, a key made up now in a debug build (sessions end
    /// with the process, said once in the log), an error naming the setting in a release
    /// build.
    pub fn cookie_key(&self) -> Result<cookie::Key, String> {
        match self.settings.admin_cookie_key_bytes()? {
            Some(bytes) => Ok(cookie::Key::derive_from(&bytes)),
            None if cfg!(debug_assertions) => {
                crate::obs::warning!(
                    "apikey: `admin_cookie_key` is not set; the admin page's cookies use a key \
                     made up at start (sessions end with this process; release builds refuse \
                     to start without it)"
                );
                Ok(cookie::Key::generate())
            }
            None => Err(
                "the admin page needs `admin_cookie_key` (at least 32 random bytes, \
                         base64 or hex: openssl rand -base64 32)"
                    .into(),
            ),
        }
    }

    /// Answers `req`: a page, a redirect or a refusal, reading and setting `jar`'s cookies.
    /// `verifier` is the service's (sessions are re-verified through it on every request).
    pub async fn handle(
        &self,
        verifier: &Verifier,
        req: &AdminRequest<'_>,
        jar: &mut (dyn AdminCookies + Send),
    ) -> AdminAnswer {
        let mut cx = Ctx {
            app: self,
            req,
            verifier,
            jar,
            scope: Scope::new(req.base, self.secure_cookie, req.tls),
            form: Fields::parse(if req.method == "POST" { req.body } else { &[] }),
        };
        let query = Fields::parse(req.query.unwrap_or_default().as_bytes());
        let Some(path) = segments(req.path) else {
            return cx.refused(404, "No such page.");
        };
        let path: Vec<&str> = path.iter().map(|s| s.as_ref()).collect();
        let get = matches!(req.method, "GET" | "HEAD");
        let post = req.method == "POST";
        match (path.as_slice(), get, post) {
            ([], true, _) => self.index(&mut cx, &query).await,
            (["keys", name], true, _) => self.key_page(&mut cx, name).await,
            (["login"], _, true) => self.login(&mut cx).await,
            (["logout"], _, true) => self.logout(&mut cx).await,
            (["new"], true, _) => keys::new_form(&mut cx).await,
            (["new"], _, true) => keys::create(&mut cx).await,
            (["keys", name, action], true, _) => keys::confirm(&mut cx, name, action).await,
            (["keys", name, action], _, true) => keys::act(&mut cx, name, action).await,
            (["users"], true, _) => self.users(&mut cx).await,
            (["users", user, action], _, true) => self.user_act(&mut cx, user, action).await,
            (["audit"], true, _) => self.audit(&mut cx).await,
            (["static", "admin.css"], true, _) => {
                AdminAnswer::file("text/css; charset=utf-8", pages::CSS)
            }
            (["static", "admin.js"], true, _) => {
                AdminAnswer::file("text/javascript; charset=utf-8", pages::JS)
            }
            _ => cx.refused(404, "No such page."),
        }
    }

    async fn index(&self, cx: &mut Ctx<'_, '_>, query: &Fields) -> AdminAnswer {
        let Some(s) = cx.session().await else {
            return cx.login_page(200, None);
        };
        let _ = cx.verifier.flush_usage().await;
        let since = today() - USAGE_DAYS + 1;
        // The store's filter (user, group, expiring, revoked), as the management API and
        // `apikey list` take it; `q` then narrows the page by any text.
        let mut filter = crate::model::KeyFilter::all();
        for name in ["user", "group", "expiring", "revoked"] {
            if let Err(message) = filter.set(name, query.get(name).unwrap_or_default()) {
                return cx.refused(400, &message);
            }
        }
        let found = match self.manager.list(&filter).await {
            Ok(all) => self.manager.usage_totals(since).await.map(|t| (all, t)),
            Err(e) => Err(e),
        };
        match found {
            Ok((all, totals)) => {
                let view = pages::KeyList {
                    filter: &filter,
                    q: query.get("q").unwrap_or_default(),
                    sort: pages::Sort::from_param(query.get("sort").unwrap_or_default()),
                    totals: &totals,
                };
                let page = pages::keys(cx.base(), s.csrf(), s.name(), &all, &view);
                AdminAnswer::page(200, page)
            }
            Err(e) => cx.failed(&e),
        }
    }

    /// One key: its facts, and its requests of the last 30 days as a chart.
    async fn key_page(&self, cx: &mut Ctx<'_, '_>, name: &str) -> AdminAnswer {
        let Some(s) = cx.session().await else {
            return cx.to_login();
        };
        // This instance's counts not written yet (every 10 s) are written now: the page is
        // current.
        let _ = cx.verifier.flush_usage().await;
        let r = match self.manager.get(name).await {
            Ok(r) => r,
            Err(e) => return cx.failed(&e),
        };
        let today = today();
        let days = match self
            .manager
            .usage(&r.tech_name, today - USAGE_DAYS + 1)
            .await
        {
            Ok(days) => days,
            Err(e) => return cx.failed(&e),
        };
        let quota = match r.quota.or(self.settings.quota) {
            Some(q) => {
                let used = self
                    .manager
                    .quota_used(&self.settings, &r.tech_name, q)
                    .await;
                Some((q, used.ok()))
            }
            None => None,
        };
        let facts = pages::KeyFacts {
            record: &r,
            days: &days,
            today,
            span: USAGE_DAYS,
            quota,
        };
        AdminAnswer::page(200, pages::key(cx.base(), s.csrf(), s.name(), &facts))
    }

    async fn login(&self, cx: &mut Ctx<'_, '_>) -> AdminAnswer {
        if !cx.scope.login_token_ok(cx.jar, cx.form.get("login_csrf")) {
            let message = "The login form has expired or was not sent from this page; try again.";
            return cx.login_page(403, Some(message));
        }
        let key = cx.form.get("key").unwrap_or_default().to_owned();
        let client = cx.req.client;
        // What failed logins are counted under: the address (its /64 for IPv6), and the key
        // tried (not the stored digest: any text counts, and nothing is looked up before the
        // limits are checked).
        let counted = client
            .map(ClientIp::counted_as)
            .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        let tried = crate::KeyHasher::new(None).digest(key.trim());
        if let Some(wait) = self.throttle.blocked(&counted, Some(&tried)) {
            let mut answer = cx.login_page(429, Some("Too many failed logins; try again later."));
            answer
                .headers
                .push(("Retry-After", wait.to_string().into()));
            return answer;
        }
        let (identity, digest) = match cx.verifier.identify(Credential::Key(&key), client).await {
            Ok(found) => found,
            Err(AuthError::Unavailable) => {
                return cx.login_page(503, Some("Keys cannot be checked right now."))
            }
            Err(AuthError::AddressNotAllowed) => {
                // Counted against the address, not the key: a stranger could otherwise lock
                // its holder out by trying it from outside its networks.
                self.throttle.failed(&counted, None);
                return cx.login_page(403, Some("That key may not be used from this address."));
            }
            Err(_) => {
                self.throttle.failed(&counted, Some(&tried));
                return cx.login_page(401, Some("That key is not valid."));
            }
        };
        if !may_administer(&identity, &self.group) {
            self.throttle.failed(&counted, Some(&tried));
            let message = "That key may not administer keys (it is not in the admin group).";
            return cx.login_page(403, Some(message));
        }
        let now = cx.verifier.clock().unix_secs();
        let id = Session::start(&cx.scope, cx.jar, &identity, &digest, now);
        let noted = as_admin(&self.manager, identity.key_name())
            .note(LOGIN_ACTION, identity.key_name(), &format!("session {id}"))
            .await;
        if let Err(e) = noted {
            // A session the audit trail does not know could not be logged out everywhere.
            Session::end(&cx.scope, cx.jar);
            return cx.failed(&e);
        }
        AdminAnswer::redirect(pages::home(cx.base()).to_owned())
    }

    async fn logout(&self, cx: &mut Ctx<'_, '_>) -> AdminAnswer {
        let session = cx.session().await;
        let Some(s) = session.filter(|s| s.accepts(cx.form.get("csrf"))) else {
            return cx.to_login();
        };
        // Recorded first: every instance then refuses this session, copies of its cookie too.
        let summary = format!("session {}", s.id());
        if let Err(e) = cx
            .as_admin(&s)
            .note(LOGOUT_ACTION, s.name(), &summary)
            .await
        {
            return cx.failed(&e);
        }
        Session::end(&cx.scope, cx.jar);
        cx.to_login()
    }

    async fn users(&self, cx: &mut Ctx<'_, '_>) -> AdminAnswer {
        let Some(s) = cx.session().await else {
            return cx.to_login();
        };
        let all = match self.manager.list(&crate::model::KeyFilter::all()).await {
            Ok(all) => all,
            Err(e) => return cx.failed(&e),
        };
        let mut users: Vec<(String, bool, usize)> = Vec::new();
        for r in &all {
            match users.iter_mut().find(|(u, _, _)| *u == r.user) {
                Some(entry) => entry.2 += 1,
                None => users.push((r.user.clone(), r.user_active, 1)),
            }
        }
        users.sort();
        AdminAnswer::page(200, pages::users(cx.base(), s.csrf(), s.name(), &users))
    }

    async fn user_act(&self, cx: &mut Ctx<'_, '_>, user: &str, action: &str) -> AdminAnswer {
        let s = match cx.checked().await {
            Ok(s) => s,
            Err(answer) => return answer,
        };
        let active = match action {
            "enable" => true,
            "disable" => false,
            _ => return cx.refused(404, "No such action."),
        };
        match cx.as_admin(&s).set_user_active(user, active).await {
            Ok(_) => AdminAnswer::redirect(format!("{}/users", cx.base())),
            Err(e) => cx.failed(&e),
        }
    }

    async fn audit(&self, cx: &mut Ctx<'_, '_>) -> AdminAnswer {
        let Some(s) = cx.session().await else {
            return cx.to_login();
        };
        match self.manager.audit(&AuditFilter::default()).await {
            Ok(entries) => {
                AdminAnswer::page(200, pages::audit(cx.base(), s.csrf(), s.name(), &entries))
            }
            Err(e) => cx.failed(&e),
        }
    }
}

/// The path's segments below the mount point, percent-decoded (`None`: not UTF-8 once
/// decoded). `/` and the empty path are the index (no segment); one trailing `/` is ignored.
fn segments(path: &str) -> Option<Vec<Cow<'_, str>>> {
    let path = path.strip_prefix('/').unwrap_or(path);
    let path = path.strip_suffix('/').unwrap_or(path);
    if path.is_empty() {
        return Some(Vec::new());
    }
    path.split('/')
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8().ok())
        .collect()
}

/// Days shown in usage: the last 30, today included.
const USAGE_DAYS: i64 = 30;

fn today() -> i64 {
    time::OffsetDateTime::now_utc()
        .unix_timestamp()
        .div_euclid(86_400)
}
