//! Creating keys and acting on one: every change a POST with the session's CSRF token, revoke,
//! activate, rotate and delete behind a confirmation page.

use std::time::Duration;

use apikey_core::{parse_duration, AllowIp, CreateKey, StoreError};
use rocket::form::{Form, FromForm};
use rocket::http::Status;
use rocket::{get, post, State};

use super::{
    checked, failed, pages, redirect, refused, to_login, Admin, Answer, Base, Page, Reply, Session,
};

#[get("/new")]
pub(super) fn new_form(s: Option<Session>, base: Base) -> Answer {
    match s {
        Some(s) => Answer::Page(Page(
            Status::Ok,
            pages::new_key(&base.0, s.csrf(), s.name(), None),
        )),
        None => to_login(&base),
    }
}

#[derive(FromForm)]
pub(super) struct Create<'r> {
    csrf: Option<&'r str>,
    name: &'r str,
    user: &'r str,
    groups: &'r str,
    expires_in: &'r str,
    rate_limit: &'r str,
    quota: Option<&'r str>,
    allow_ip: Option<&'r str>,
}

/// Networks as the forms take them: separated by commas (or spaces); empty: any address.
fn networks(text: &str) -> Result<AllowIp, String> {
    let nets: Vec<&str> = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|n| !n.is_empty())
        .collect();
    AllowIp::parse(&nets)
}

impl Create<'_> {
    fn spec(&self) -> Result<CreateKey, String> {
        fn optional(text: &str) -> Option<&str> {
            Some(text.trim()).filter(|t| !t.is_empty())
        }
        let expires_in: Option<Duration> =
            optional(self.expires_in).map(parse_duration).transpose()?;
        let rate_limit = optional(self.rate_limit).map(str::parse).transpose()?;
        let quota = self.quota.and_then(optional).map(str::parse).transpose()?;
        Ok(CreateKey {
            name: self.name.trim().to_owned(),
            user: self.user.trim().to_owned(),
            groups: self.groups.split(',').map(str::to_owned).collect(),
            expires_in,
            rate_limit,
            quota,
            allow_ip: networks(self.allow_ip.unwrap_or_default())?,
        })
    }
}

#[post("/new", data = "<form>")]
pub(super) async fn create(
    s: Option<Session>,
    form: Form<Create<'_>>,
    admin: &State<Admin>,
    base: Base,
) -> Reply {
    let s = checked(s, form.csrf, &base)?;
    let error = |message: String| {
        Answer::Page(Page(
            Status::BadRequest,
            pages::new_key(&base.0, s.csrf(), s.name(), Some(&message)),
        ))
    };
    let spec = match form.spec() {
        Ok(spec) => spec,
        Err(message) => return Ok(error(message)),
    };
    Ok(match admin.as_admin(&s).create(spec).await {
        Ok((r, key)) => Answer::Page(Page(
            Status::Created,
            pages::shown_once(&base.0, s.csrf(), s.name(), &r, &key, "Created"),
        )),
        Err(e @ StoreError::Unavailable(_)) => failed(&base, &e),
        Err(e) => error(e.to_string()),
    })
}

const ACTIONS: [&str; 5] = ["revoke", "activate", "rotate", "delete", "networks"];

#[get("/keys/<name>/<action>")]
pub(super) async fn confirm(
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
pub(super) struct Act<'r> {
    csrf: Option<&'r str>,
    grace: Option<&'r str>,
    allow_ip: Option<&'r str>,
}

#[post("/keys/<name>/<action>", data = "<form>")]
pub(super) async fn act(
    s: Option<Session>,
    name: &str,
    action: &str,
    form: Form<Act<'_>>,
    admin: &State<Admin>,
    base: Base,
) -> Reply {
    let s = checked(s, form.csrf, &base)?;
    let keys = admin.as_admin(&s);
    let done = match action {
        "revoke" => keys.revoke(name).await.map(drop),
        "activate" => keys.activate(name).await.map(drop),
        "delete" => keys.delete(name).await,
        "networks" => match networks(form.allow_ip.unwrap_or_default()) {
            Ok(allow) => keys
                .change(name, apikey_core::model::KeyChange::AllowIp(allow))
                .await
                .map(drop),
            Err(message) => return Ok(refused(&base, Status::BadRequest, &message)),
        },
        "rotate" => {
            let grace = match parse_duration(form.grace.unwrap_or("0")) {
                Ok(grace) => grace,
                Err(message) => return Ok(refused(&base, Status::BadRequest, &message)),
            };
            return Ok(match keys.rotate(name, grace).await {
                Ok((r, key)) => Answer::Page(Page(
                    Status::Ok,
                    pages::shown_once(&base.0, s.csrf(), s.name(), &r, &key, "Rotated"),
                )),
                Err(e) => failed(&base, &e),
            });
        }
        _ => return Ok(refused(&base, Status::NotFound, "No such action.")),
    };
    Ok(match done {
        Ok(()) => redirect(format!("{}/", base.0)),
        Err(e) => failed(&base, &e),
    })
}
