//! A mountable admin page (feature `admin`): keys, users and the audit trail in a browser,
//! like Odoo's Settings > Technical > API Keys.
//!
//! ```no_run
//! use apikey_rocket::admin::{self, Admin};
//! use apikey_rocket::core::{open, ApiKeyConfig, KeyManager};
//! use apikey_rocket::ApiKey;
//!
//! #[rocket::launch]
//! async fn rocket() -> _ {
//!     let config = ApiKeyConfig::default();
//!     let store = open(&config.settings).await.expect("the key store opens");
//!     rocket::build()
//!         .attach(ApiKey::with_store(store.clone()))
//!         .manage(Admin::new(KeyManager::new(store, &config), &config))
//!         .mount("/admin", admin::routes())
//! }
//! ```
//!
//! Only keys in `[apikey] admin_group` (`apikey-admin`) may log in. Every change goes through
//! [`KeyManager`], recorded in the audit trail as made by `admin:<key name>`. Every change is a
//! POST carrying the session's CSRF token; pages are sent with a strict CSP, `no-referrer` and
//! `no-store`.

use apikey_core::config::SecureCookie;
use apikey_core::{Actor, ApiKeyConfig, AuditFilter, KeyManager, StoreError};
use maud::Markup;
use rocket::form::{Form, FromForm};
use rocket::http::{ContentType, CookieJar, Header, Status};
use rocket::response::{self, Redirect, Responder};
use rocket::{get, post, routes, Request, Route, State};

use crate::state::ApiKeyState;
use session::{may_administer, Scope, Session, LOGIN_ACTION, LOGOUT_ACTION};

mod keys;
mod pages;
mod session;
mod throttle;

/// What the admin routes need: the one mutation path, the admin group, how sessions are
/// kept, and the count of failed logins.
pub struct Admin {
    manager: KeyManager,
    /// Where quotas are counted (`limits_url`) and the default quota, for the key pages.
    settings: apikey_core::Settings,
    group: String,
    secure_cookie: SecureCookie,
    lifetime_secs: i64,
    throttle: throttle::Throttle,
}

impl Admin {
    /// Administers through `manager`; admins are the keys in `config`'s `admin_group`
    /// (their effective groups, config sections included).
    pub fn new(manager: KeyManager, config: &ApiKeyConfig) -> Self {
        let settings = &config.settings;
        Admin {
            manager,
            settings: settings.clone(),
            group: settings.admin_group.clone(),
            secure_cookie: settings.admin_secure_cookie,
            lifetime_secs: i64::try_from(settings.admin_session_lifetime.as_secs())
                .unwrap_or(i64::MAX),
            throttle: throttle::Throttle::default(),
        }
    }

    /// The manager, recording changes as made by the session's admin key.
    fn as_admin(&self, session: &Session) -> KeyManager {
        // Always the admin key, never the service's OS user: a name an older store holds
        // that could not be an actor as it is is escaped.
        let actor = Actor::escaped(&format!("admin:{}", session.name()));
        self.manager.clone().with_actor(actor)
    }
}

/// The admin routes, to mount where the page should live (`/admin`).
pub fn routes() -> Vec<Route> {
    routes![
        index,
        key_page,
        login,
        logout,
        keys::new_form,
        keys::create,
        keys::confirm,
        keys::act,
        users,
        user_act,
        audit,
        css,
        js
    ]
}

/// Registers the admin routes in the route inventory: they check their own session (`custom`),
/// except the two static files (`none`).
macro_rules! declare {
    ($($name:literal $method:literal $path:literal $auth:ident),* $(,)?) => {
        $(::inventory::submit! {
            crate::routes::Declared {
                name: $name,
                method: $method,
                path: $path,
                auth: crate::RouteAuth::$auth,
                groups: &[],
                guard: match crate::RouteAuth::$auth {
                    crate::RouteAuth::Custom => Some("admin session"),
                    _ => None,
                },
            }
        })*
    };
}

declare!(
    "index" "GET" "/?<q>&<sort>" Custom,
    "key_page" "GET" "/keys/<name>" Custom,
    "login" "POST" "/login" Custom,
    "logout" "POST" "/logout" Custom,
    "new_form" "GET" "/new" Custom,
    "create" "POST" "/new" Custom,
    "confirm" "GET" "/keys/<name>/<action>" Custom,
    "act" "POST" "/keys/<name>/<action>" Custom,
    "users" "GET" "/users" Custom,
    "user_act" "POST" "/users/<user>/<action>" Custom,
    "audit" "GET" "/audit" Custom,
    "css" "GET" "/static/admin.css" None,
    "js" "GET" "/static/admin.js" None,
);

/// An HTML page with the admin's security headers.
struct Page(Status, Markup);

impl<'r> Responder<'r, 'static> for Page {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        let body = self.1.into_string();
        rocket::Response::build_from(body.respond_to(req)?)
            .status(self.0)
            .header(ContentType::HTML)
            .header(Header::new(
                "Content-Security-Policy",
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                 form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ))
            .header(Header::new("Referrer-Policy", "no-referrer"))
            .header(Header::new("X-Content-Type-Options", "nosniff"))
            .header(Header::new("Cache-Control", "no-store"))
            .ok()
    }
}

/// The mount point, for links.
struct Base(String);

#[rocket::async_trait]
impl<'r> rocket::request::FromRequest<'r> for Base {
    type Error = ();
    async fn from_request(req: &'r Request<'_>) -> rocket::request::Outcome<Self, ()> {
        rocket::request::Outcome::Success(Base(session::base(req)))
    }
}

/// A page, or a redirect (to the login page, or after a change).
#[derive(Responder)]
enum Answer {
    Page(Page),
    Redirect(Box<Redirect>),
}

/// The answer of a change: `Err` when the session or its token is refused.
type Reply = Result<Answer, Answer>;

fn redirect(to: String) -> Answer {
    Answer::Redirect(Box::new(Redirect::to(to)))
}

fn to_login(base: &Base) -> Answer {
    redirect(format!("{}/", base.0))
}

/// The session of a change: logged in (else to the login page), carrying its CSRF token
/// (else 403, nothing changed).
fn checked(s: Option<Session>, token: Option<&str>, base: &Base) -> Result<Session, Answer> {
    let s = s.ok_or_else(|| to_login(base))?;
    if s.accepts(token) {
        Ok(s)
    } else {
        let message = "The form has expired or was not sent from this page; reload it.";
        Err(refused(base, Status::Forbidden, message))
    }
}

fn refused(base: &Base, status: Status, message: &str) -> Answer {
    let title = status.reason_lossy();
    Answer::Page(Page(status, pages::problem(&base.0, title, message)))
}

fn failed(base: &Base, e: &StoreError) -> Answer {
    let status = match e {
        StoreError::Unavailable(_) => Status::ServiceUnavailable,
        StoreError::NotFound(_) => Status::NotFound,
        _ => Status::BadRequest,
    };
    refused(base, status, &e.to_string())
}

/// The login page (with a fresh form token), with `message` when a login failed.
fn login_page(
    base: &Base,
    scope: &Scope,
    jar: &CookieJar<'_>,
    status: Status,
    message: Option<&str>,
) -> Answer {
    let token = scope.login_token(jar);
    Answer::Page(Page(status, pages::login(&base.0, message, &token)))
}

/// Days shown in usage: the last 30, today included.
const USAGE_DAYS: i64 = 30;

fn today() -> i64 {
    time::OffsetDateTime::now_utc()
        .unix_timestamp()
        .div_euclid(86_400)
}

#[get("/?<q>&<sort>")]
#[allow(clippy::too_many_arguments)]
async fn index(
    s: Option<Session>,
    admin: &State<Admin>,
    base: Base,
    q: Option<&str>,
    sort: Option<&str>,
    keys: &State<ApiKeyState>,
    scope: Scope,
    jar: &CookieJar<'_>,
) -> Answer {
    let Some(s) = s else {
        return login_page(&base, &scope, jar, Status::Ok, None);
    };
    let _ = keys.verifier().flush_usage().await;
    let since = today() - USAGE_DAYS + 1;
    let found = match admin.manager.list().await {
        Ok(all) => admin.manager.usage_totals(since).await.map(|t| (all, t)),
        Err(e) => Err(e),
    };
    match found {
        Ok((all, totals)) => {
            let view = pages::KeyList {
                q: q.unwrap_or_default(),
                sort: pages::Sort::from_param(sort.unwrap_or_default()),
                totals: &totals,
            };
            let page = pages::keys(&base.0, s.csrf(), s.name(), &all, &view);
            Answer::Page(Page(Status::Ok, page))
        }
        Err(e) => failed(&base, &e),
    }
}

/// One key: its facts, and its requests of the last 30 days as a chart.
#[get("/keys/<name>")]
async fn key_page(
    s: Option<Session>,
    name: &str,
    admin: &State<Admin>,
    keys: &State<ApiKeyState>,
    base: Base,
) -> Answer {
    let Some(s) = s else { return to_login(&base) };
    // This instance's counts not written yet (every 10 s) are written now: the page is current.
    let _ = keys.verifier().flush_usage().await;
    let r = match admin.manager.get(name).await {
        Ok(r) => r,
        Err(e) => return failed(&base, &e),
    };
    let today = today();
    let days = match admin
        .manager
        .usage(&r.tech_name, today - USAGE_DAYS + 1)
        .await
    {
        Ok(days) => days,
        Err(e) => return failed(&base, &e),
    };
    let quota = match r.quota.or(admin.settings.quota) {
        Some(q) => {
            let used = admin
                .manager
                .quota_used(&admin.settings, &r.tech_name, q)
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
    Answer::Page(Page(
        Status::Ok,
        pages::key(&base.0, s.csrf(), s.name(), &facts),
    ))
}

#[derive(FromForm)]
struct Login<'r> {
    key: &'r str,
    login_csrf: Option<&'r str>,
}

/// Too many failed logins: 429 with `Retry-After`, on the login page.
struct Throttled(Answer, u64);

impl<'r> Responder<'r, 'static> for Throttled {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        rocket::Response::build_from(self.0.respond_to(req)?)
            .header(Header::new("Retry-After", self.1.to_string()))
            .ok()
    }
}

#[derive(Responder)]
enum LoginAnswer {
    Answer(Answer),
    Throttled(Throttled),
}

#[post("/login", data = "<form>")]
async fn login(
    form: Form<Login<'_>>,
    req_keys: &State<ApiKeyState>,
    admin: &State<Admin>,
    jar: &CookieJar<'_>,
    base: Base,
    scope: Scope,
    client: Client,
) -> LoginAnswer {
    let page = |status, message| {
        LoginAnswer::Answer(login_page(&base, &scope, jar, status, Some(message)))
    };
    if !scope.login_token_ok(jar, form.login_csrf) {
        return page(
            Status::Forbidden,
            "The login form has expired or was not sent from this page; try again.",
        );
    }
    let verifier = req_keys.verifier();
    // What failed logins are counted under for the key tried (not the stored digest: any
    // text counts, and nothing is looked up before the limits are checked).
    let tried = apikey_core::KeyHasher::new(None).digest(form.key.trim());
    if let Some(wait) = admin.throttle.blocked(&client.0, Some(&tried)) {
        let message = "Too many failed logins; try again later.";
        let token = scope.login_token(jar);
        let answer = Answer::Page(Page(
            Status::TooManyRequests,
            pages::login(&base.0, Some(message), &token),
        ));
        return LoginAnswer::Throttled(Throttled(answer, wait));
    }
    let identity = verifier
        .identify(apikey_core::Credential::Key(form.key), client.1)
        .await;
    let (identity, digest) = match identity {
        Ok(found) => found,
        Err(apikey_core::AuthError::Unavailable) => {
            return page(
                Status::ServiceUnavailable,
                "Keys cannot be checked right now.",
            )
        }
        Err(apikey_core::AuthError::AddressNotAllowed) => {
            // Counted against the address, not the key: a stranger could otherwise lock its
            // holder out by trying it from outside its networks.
            admin.throttle.failed(&client.0, None);
            return page(
                Status::Forbidden,
                "That key may not be used from this address.",
            );
        }
        Err(_) => {
            admin.throttle.failed(&client.0, Some(&tried));
            return page(Status::Unauthorized, "That key is not valid.");
        }
    };
    if !may_administer(&identity, &admin.group) {
        admin.throttle.failed(&client.0, Some(&tried));
        return page(
            Status::Forbidden,
            "That key may not administer keys (it is not in the admin group).",
        );
    }
    let id = Session::start(&scope, jar, &identity, &digest);
    let actor = Actor::escaped(&format!("admin:{}", identity.key_name()));
    let noted = admin
        .manager
        .clone()
        .with_actor(actor)
        .note(LOGIN_ACTION, identity.key_name(), &format!("session {id}"))
        .await;
    if let Err(e) = noted {
        // A session the audit trail does not know could not be logged out everywhere.
        Session::end(&scope, jar);
        return LoginAnswer::Answer(failed(&base, &e));
    }
    LoginAnswer::Answer(redirect(format!("{}/", base.0)))
}

/// The client's address (the peer's, or what a trusted proxy reports), and what its failed
/// logins are counted under (the address; its /64 for IPv6).
struct Client(String, Option<std::net::IpAddr>);

#[rocket::async_trait]
impl<'r> rocket::request::FromRequest<'r> for Client {
    type Error = ();
    async fn from_request(req: &'r Request<'_>) -> rocket::request::Outcome<Self, ()> {
        let ip = crate::facts::client_ip(req);
        let counted = ip.map(apikey_core::model::ClientIp::counted_as);
        let text = counted.map_or_else(|| "unknown".into(), |ip| ip.to_string());
        rocket::request::Outcome::Success(Client(text, ip))
    }
}

#[rocket::async_trait]
impl<'r> rocket::request::FromRequest<'r> for Scope {
    type Error = ();
    async fn from_request(req: &'r Request<'_>) -> rocket::request::Outcome<Self, ()> {
        rocket::request::Outcome::Success(Scope::of(req))
    }
}

#[derive(FromForm)]
struct Csrf<'r> {
    csrf: Option<&'r str>,
}

#[post("/logout", data = "<form>")]
async fn logout(
    s: Option<Session>,
    form: Form<Csrf<'_>>,
    admin: &State<Admin>,
    jar: &CookieJar<'_>,
    base: Base,
    scope: Scope,
) -> Answer {
    let Some(s) = s.filter(|s| s.accepts(form.csrf)) else {
        return to_login(&base);
    };
    // Recorded first: every instance then refuses this session, copies of its cookie too.
    let summary = format!("session {}", s.id());
    if let Err(e) = admin
        .as_admin(&s)
        .note(LOGOUT_ACTION, s.name(), &summary)
        .await
    {
        return failed(&base, &e);
    }
    Session::end(&scope, jar);
    to_login(&base)
}

#[get("/users")]
async fn users(s: Option<Session>, admin: &State<Admin>, base: Base) -> Answer {
    let Some(s) = s else { return to_login(&base) };
    let all = match admin.manager.list().await {
        Ok(all) => all,
        Err(e) => return failed(&base, &e),
    };
    let mut users: Vec<(String, bool, usize)> = Vec::new();
    for r in &all {
        match users.iter_mut().find(|(u, _, _)| *u == r.user) {
            Some(entry) => entry.2 += 1,
            None => users.push((r.user.clone(), r.user_active, 1)),
        }
    }
    users.sort();
    Answer::Page(Page(
        Status::Ok,
        pages::users(&base.0, s.csrf(), s.name(), &users),
    ))
}

#[post("/users/<user>/<action>", data = "<form>")]
async fn user_act(
    s: Option<Session>,
    user: &str,
    action: &str,
    form: Form<Csrf<'_>>,
    admin: &State<Admin>,
    base: Base,
) -> Reply {
    let s = checked(s, form.csrf, &base)?;
    let active = match action {
        "enable" => true,
        "disable" => false,
        _ => return Ok(refused(&base, Status::NotFound, "No such action.")),
    };
    Ok(
        match admin.as_admin(&s).set_user_active(user, active).await {
            Ok(_) => redirect(format!("{}/users", base.0)),
            Err(e) => failed(&base, &e),
        },
    )
}

#[get("/audit")]
async fn audit(s: Option<Session>, admin: &State<Admin>, base: Base) -> Answer {
    let Some(s) = s else { return to_login(&base) };
    match admin.manager.audit(&AuditFilter::default()).await {
        Ok(entries) => Answer::Page(Page(
            Status::Ok,
            pages::audit(&base.0, s.csrf(), s.name(), &entries),
        )),
        Err(e) => failed(&base, &e),
    }
}

#[get("/static/admin.css")]
fn css() -> (ContentType, &'static str) {
    (ContentType::CSS, pages::CSS)
}

#[get("/static/admin.js")]
fn js() -> (ContentType, &'static str) {
    (ContentType::JavaScript, pages::JS)
}
