//! Creating keys and acting on one: every change a POST with the session's CSRF token, revoke,
//! activate, rotate and delete behind a confirmation page.

use std::time::Duration;

use super::{pages, AdminAnswer, Ctx};
use crate::model::{KeyChange, KeyEdit, Meta, MetaEdit};
use crate::{parse_duration, AllowIp, CreateKey, StoreError};

pub(super) async fn new_form(cx: &mut Ctx<'_, '_>) -> AdminAnswer {
    match cx.session().await {
        Some(s) => AdminAnswer::page(200, pages::new_key(cx.base(), s.csrf(), s.name(), None)),
        None => cx.to_login(),
    }
}

/// Networks as the forms take them: separated by commas (or spaces); empty: any address.
fn networks(text: &str) -> Result<AllowIp, String> {
    let nets: Vec<&str> = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|n| !n.is_empty())
        .collect();
    AllowIp::parse(&nets)
}

/// The new key the create form describes (a missing field is an empty one).
fn spec(cx: &Ctx<'_, '_>) -> Result<CreateKey, String> {
    let field = |name: &str| cx.form.get(name).unwrap_or_default();
    let optional = |name: &str| Some(field(name).trim()).filter(|t| !t.is_empty());
    let expires_in: Option<Duration> = optional("expires_in").map(parse_duration).transpose()?;
    let rate_limit = optional("rate_limit").map(str::parse).transpose()?;
    let quota = optional("quota").map(str::parse).transpose()?;
    Ok(CreateKey {
        name: field("name").trim().to_owned(),
        user: field("user").trim().to_owned(),
        groups: field("groups").split(',').map(str::to_owned).collect(),
        expires_in,
        rate_limit,
        quota,
        allow_ip: networks(field("allow_ip"))?,
        scopes: scope_list(field("scopes")),
        description: optional("description").map(str::to_owned),
        meta: Meta::new(meta_lines(field("meta"))?)?,
    })
}

/// The change the edit form describes against the key as it is (`current`): every field the
/// form holds, the metadata replaced by the form's lines; an expiry left as it was is not
/// changed (so an expired key's other fields can still be edited).
fn edit(cx: &Ctx<'_, '_>, current: &crate::KeyRecord) -> Result<KeyEdit, String> {
    let field = |name: &str| cx.form.get(name).unwrap_or_default();
    let optional = |name: &str| Some(field(name).trim()).filter(|t| !t.is_empty());
    let expires_at = optional("expires_at")
        .map(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map_err(|_| "the expiry is an RFC 3339 time, e.g. 2027-01-31T00:00:00Z".to_owned())
        })
        .transpose()?;
    let lines = meta_lines(field("meta"))?;
    let unset: Vec<String> = current
        .meta
        .iter()
        .map(|(k, _)| k.to_owned())
        .filter(|k| !lines.iter().any(|(n, _)| n == k))
        .collect();
    let user = field("user").trim();
    Ok(KeyEdit {
        user: (!user.is_empty() && user != current.user).then(|| user.to_owned()),
        expires_at: (expires_at != current.expires_at).then_some(expires_at),
        description: Some(optional("description").map(str::to_owned)),
        meta: MetaEdit::new(lines, unset)?,
        groups: Some(crate::Groups::new(field("groups").split(','))?),
        scopes: Some(crate::Scopes::new(scope_list(field("scopes")))?),
        rate_limit: Some(optional("rate_limit").map(str::parse).transpose()?),
        quota: Some(optional("quota").map(str::parse).transpose()?),
        allow_ip: Some(networks(field("allow_ip"))?),
    })
}

/// Scopes as the forms take them: separated by commas (or spaces).
fn scope_list(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Metadata as the forms take it: one `NAME=VALUE` per line.
fn meta_lines(text: &str) -> Result<Vec<(String, String)>, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(MetaEdit::parse_entry)
        .collect()
}

pub(super) async fn create(cx: &mut Ctx<'_, '_>) -> AdminAnswer {
    let s = match cx.checked().await {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    let error = |cx: &Ctx<'_, '_>, message: String| {
        AdminAnswer::page(
            400,
            pages::new_key(cx.base(), s.csrf(), s.name(), Some(&message)),
        )
    };
    let spec = match spec(cx) {
        Ok(spec) => spec,
        Err(message) => return error(cx, message),
    };
    match cx.as_admin(&s).create(spec).await {
        Ok((r, key)) => AdminAnswer::page(
            201,
            pages::shown_once(cx.base(), s.csrf(), s.name(), &r, &key, "Created"),
        ),
        Err(e @ StoreError::Unavailable(_)) => cx.failed(&e),
        Err(e) => error(cx, e.to_string()),
    }
}

const ACTIONS: [&str; 6] = ["revoke", "activate", "rotate", "delete", "networks", "edit"];

pub(super) async fn confirm(cx: &mut Ctx<'_, '_>, name: &str, action: &str) -> AdminAnswer {
    let Some(s) = cx.session().await else {
        return cx.to_login();
    };
    if !ACTIONS.contains(&action) {
        return cx.refused(404, "No such action.");
    }
    match cx.app.manager.get(name).await {
        Ok(r) => AdminAnswer::page(
            200,
            pages::confirm(cx.base(), s.csrf(), s.name(), &r, action),
        ),
        Err(e) => cx.failed(&e),
    }
}

pub(super) async fn act(cx: &mut Ctx<'_, '_>, name: &str, action: &str) -> AdminAnswer {
    let s = match cx.checked().await {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    let keys = cx.as_admin(&s);
    let done = match action {
        "revoke" => keys.revoke(name).await.map(drop),
        "activate" => keys.activate(name).await.map(drop),
        "delete" => keys.delete(name).await,
        "networks" => match networks(cx.form.get("allow_ip").unwrap_or_default()) {
            Ok(allow) => keys.change(name, KeyChange::AllowIp(allow)).await.map(drop),
            Err(message) => return cx.refused(400, &message),
        },
        "edit" => {
            let current = match keys.get(name).await {
                Ok(r) => r,
                Err(e) => return cx.failed(&e),
            };
            let change = match edit(cx, &current) {
                Ok(change) => change,
                Err(message) => {
                    return AdminAnswer::page(
                        400,
                        pages::edit(cx.base(), s.csrf(), s.name(), &current, Some(&message)),
                    )
                }
            };
            match keys.change(name, KeyChange::Edit(Box::new(change))).await {
                Ok(_) => {
                    return AdminAnswer::redirect(format!(
                        "{}/keys/{}",
                        cx.base(),
                        pages::urlencode(name)
                    ))
                }
                Err(e @ StoreError::Invalid(_)) => {
                    return AdminAnswer::page(
                        400,
                        pages::edit(
                            cx.base(),
                            s.csrf(),
                            s.name(),
                            &current,
                            Some(&e.to_string()),
                        ),
                    )
                }
                Err(e) => return cx.failed(&e),
            }
        }
        "rotate" => {
            let grace = match parse_duration(cx.form.get("grace").unwrap_or("0")) {
                Ok(grace) => grace,
                Err(message) => return cx.refused(400, &message),
            };
            return match keys.rotate(name, grace).await {
                Ok((r, key)) => AdminAnswer::page(
                    200,
                    pages::shown_once(cx.base(), s.csrf(), s.name(), &r, &key, "Rotated"),
                ),
                Err(e) => cx.failed(&e),
            };
        }
        _ => return cx.refused(404, "No such action."),
    };
    match done {
        Ok(()) => AdminAnswer::redirect(pages::home(cx.base()).to_owned()),
        Err(e) => cx.failed(&e),
    }
}
