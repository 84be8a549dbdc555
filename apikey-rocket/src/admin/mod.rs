//! A mountable admin page (feature `admin`): keys, users and the audit trail in a browser,
//! like Odoo's Settings > Technical > API Keys.
//!
//! ```ignore
//! rocket::build()
//!     .attach(ApiKey::with_store(store.clone()))
//!     .manage(Admin::new(KeyManager::new(store, &config), &config))
//!     .mount("/admin", apikey_rocket::admin::routes())
//! ```
//!
//! Only keys in `[apikey] admin_group` (`apikey-admin`) may log in. Every change goes through
//! [`KeyManager`], recorded in the audit trail as made by `admin:<key name>`. Every change is a
//! POST carrying the session's CSRF token; pages are sent with a strict CSP, `no-referrer` and
//! `no-store`.

use std::time::Duration;

use apikey_core::{
    parse_duration, Actor, ApiKeyConfig, AuditFilter, CreateKey, KeyManager, KeyRecord, StoreError,
};
use maud::Markup;
use rocket::form::{Form, FromForm};
use rocket::http::{ContentType, CookieJar, Header, Status};
use rocket::response::{self, Redirect, Responder};
use rocket::{get, post, routes, Request, Route, State};

use crate::ApiKeyState;
use session::{may_administer, Scope, Session};

mod pages;
mod session;

/// What the admin routes need: the one mutation path, and the admin group.
pub struct Admin {
    manager: KeyManager,
    group: String,
}

impl Admin {
    /// Administers through `manager`; admins are the keys in `config`'s `admin_group`.
    pub fn new(manager: KeyManager, config: &ApiKeyConfig) -> Self {
        Admin {
            manager,
            group: config.settings.admin_group.clone(),
        }
    }

    /// The manager, recording changes as made by the session's admin key.
    fn as_admin(&self, session: &Session) -> KeyManager {
        let actor =
            Actor::new(&format!("admin:{}", session.name())).unwrap_or_else(|_| Actor::from_env());
        self.manager.clone().with_actor(actor)
    }
}

/// The admin routes, to mount where the page should live (`/admin`).
pub fn routes() -> Vec<Route> {
    routes![index, login, logout, new_form, create, confirm, act, users, user_act, audit, css, js]
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
    "index" "GET" "/?<q>" Custom,
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

fn redirect(to: String) -> Answer {
    Answer::Redirect(Box::new(Redirect::to(to)))
}

fn to_login(base: &Base) -> Answer {
    redirect(format!("{}/", base.0))
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

#[get("/?<q>")]
async fn index(s: Option<Session>, admin: &State<Admin>, base: Base, q: Option<&str>) -> Answer {
    let Some(s) = s else {
        return Answer::Page(Page(Status::Ok, pages::login(&base.0, None)));
    };
    match admin.manager.list().await {
        Ok(all) => {
            let page = pages::keys(&base.0, s.csrf(), s.name(), &all, q.unwrap_or_default());
            Answer::Page(Page(Status::Ok, page))
        }
        Err(e) => failed(&base, &e),
    }
}

#[derive(FromForm)]
struct Login<'r> {
    key: &'r str,
}

#[post("/login", data = "<form>")]
async fn login(
    form: Form<Login<'_>>,
    req_keys: &State<ApiKeyState>,
    admin: &State<Admin>,
    jar: &CookieJar<'_>,
    base: Base,
    scope: Scope,
) -> Answer {
    let login_page =
        |status, message| Answer::Page(Page(status, pages::login(&base.0, Some(message))));
    let identity = match req_keys.verifier.verify(form.key.trim()).await {
        Ok(identity) => identity,
        Err(apikey_core::AuthError::Unavailable) => {
            return login_page(
                Status::ServiceUnavailable,
                "Keys cannot be checked right now.",
            )
        }
        Err(_) => return login_page(Status::Unauthorized, "That key is not valid."),
    };
    let record: Option<KeyRecord> = admin.manager.get(identity.key_name()).await.ok();
    match record {
        Some(r) if may_administer(&r, &admin.group) => {
            Session::start(&scope, jar, &r);
            redirect(format!("{}/", base.0))
        }
        _ => login_page(
            Status::Forbidden,
            "That key may not administer keys (it is not in the admin group).",
        ),
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
fn logout(
    s: Option<Session>,
    form: Form<Csrf<'_>>,
    jar: &CookieJar<'_>,
    base: Base,
    scope: Scope,
) -> Answer {
    if s.as_ref().is_some_and(|s| s.accepts(form.csrf)) {
        Session::end(&scope, jar);
    }
    to_login(&base)
}

#[get("/new")]
fn new_form(s: Option<Session>, base: Base) -> Answer {
    match s {
        Some(s) => Answer::Page(Page(
            Status::Ok,
            pages::new_key(&base.0, s.csrf(), s.name(), None),
        )),
        None => to_login(&base),
    }
}

#[derive(FromForm)]
struct Create<'r> {
    csrf: Option<&'r str>,
    name: &'r str,
    user: &'r str,
    groups: &'r str,
    expires_in: &'r str,
    rate_limit: &'r str,
}

impl Create<'_> {
    fn spec(&self) -> Result<CreateKey, String> {
        fn optional(text: &str) -> Option<&str> {
            Some(text.trim()).filter(|t| !t.is_empty())
        }
        let expires_in: Option<Duration> =
            optional(self.expires_in).map(parse_duration).transpose()?;
        let rate_limit = optional(self.rate_limit).map(str::parse).transpose()?;
        Ok(CreateKey {
            name: self.name.trim().to_owned(),
            user: self.user.trim().to_owned(),
            groups: self.groups.split(',').map(str::to_owned).collect(),
            expires_in,
            rate_limit,
        })
    }
}

#[post("/new", data = "<form>")]
async fn create(
    s: Option<Session>,
    form: Form<Create<'_>>,
    admin: &State<Admin>,
    base: Base,
) -> Answer {
    let Some(s) = s else { return to_login(&base) };
    if !s.accepts(form.csrf) {
        return refused(
            &base,
            Status::Forbidden,
            "The form has expired; reload the page.",
        );
    }
    let error = |message: String| {
        Answer::Page(Page(
            Status::BadRequest,
            pages::new_key(&base.0, s.csrf(), s.name(), Some(&message)),
        ))
    };
    let spec = match form.spec() {
        Ok(spec) => spec,
        Err(message) => return error(message),
    };
    match admin.as_admin(&s).create(spec).await {
        Ok((r, key)) => Answer::Page(Page(
            Status::Created,
            pages::shown_once(&base.0, s.csrf(), s.name(), &r, &key, "Created"),
        )),
        Err(e @ StoreError::Unavailable(_)) => failed(&base, &e),
        Err(e) => error(e.to_string()),
    }
}

const ACTIONS: [&str; 4] = ["revoke", "activate", "rotate", "delete"];

#[get("/keys/<name>/<action>")]
async fn confirm(
    s: Option<Session>,
    name: &str,
    action: &str,
    admin: &State<Admin>,
    base: Base,
) -> Answer {
    let Some(s) = s else { return to_login(&base) };
    if !ACTIONS.contains(&action) {
        return refused(&base, Status::NotFound, "No such action.");
    }
    match admin.manager.get(name).await {
        Ok(r) => Answer::Page(Page(
            Status::Ok,
            pages::confirm(&base.0, s.csrf(), s.name(), &r, action),
        )),
        Err(e) => failed(&base, &e),
    }
}

#[derive(FromForm)]
struct Act<'r> {
    csrf: Option<&'r str>,
    grace: Option<&'r str>,
}

#[post("/keys/<name>/<action>", data = "<form>")]
async fn act(
    s: Option<Session>,
    name: &str,
    action: &str,
    form: Form<Act<'_>>,
    admin: &State<Admin>,
    base: Base,
) -> Answer {
    let Some(s) = s else { return to_login(&base) };
    if !s.accepts(form.csrf) {
        return refused(
            &base,
            Status::Forbidden,
            "The form has expired; reload the page.",
        );
    }
    let keys = admin.as_admin(&s);
    let done = match action {
        "revoke" => keys.revoke(name).await.map(drop),
        "activate" => keys.activate(name).await.map(drop),
        "delete" => keys.delete(name).await,
        "rotate" => {
            let grace = match parse_duration(form.grace.unwrap_or("0")) {
                Ok(grace) => grace,
                Err(message) => return refused(&base, Status::BadRequest, &message),
            };
            return match keys.rotate(name, grace).await {
                Ok((r, key)) => Answer::Page(Page(
                    Status::Ok,
                    pages::shown_once(&base.0, s.csrf(), s.name(), &r, &key, "Rotated"),
                )),
                Err(e) => failed(&base, &e),
            };
        }
        _ => return refused(&base, Status::NotFound, "No such action."),
    };
    match done {
        Ok(()) => redirect(format!("{}/", base.0)),
        Err(e) => failed(&base, &e),
    }
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
) -> Answer {
    let Some(s) = s else { return to_login(&base) };
    if !s.accepts(form.csrf) {
        return refused(
            &base,
            Status::Forbidden,
            "The form has expired; reload the page.",
        );
    }
    let active = match action {
        "enable" => true,
        "disable" => false,
        _ => return refused(&base, Status::NotFound, "No such action."),
    };
    match admin.as_admin(&s).set_user_active(user, active).await {
        Ok(_) => redirect(format!("{}/users", base.0)),
        Err(e) => failed(&base, &e),
    }
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
