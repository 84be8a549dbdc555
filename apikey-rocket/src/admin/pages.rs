//! The admin pages, rendered on the server (maud: checked at compile time). No page needs
//! JavaScript; the one script (copy buttons) is a file of ours, allowed by the CSP.

use apikey_core::{AuditRecord, KeyRecord, Secret};
use maud::{html, Markup, DOCTYPE};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

fn when(t: Option<OffsetDateTime>) -> String {
    t.and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "—".into())
}

/// The frame of every page: title, navigation (when logged in), an optional message.
pub(crate) fn layout(
    base: &str,
    title: &str,
    session: Option<(&str, &str)>,
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · API keys" }
                link rel="stylesheet" href={ (base) "/static/admin.css" };
                script src={ (base) "/static/admin.js" } defer {}
            }
            body {
                header {
                    strong { "API keys" }
                    @if let Some((who, csrf)) = session {
                        nav {
                            a href={ (base) "/" } { "Keys" }
                            a href={ (base) "/new" } { "New key" }
                            a href={ (base) "/users" } { "Users" }
                            a href={ (base) "/audit" } { "Audit trail" }
                        }
                        form.logout method="post" action={ (base) "/logout" } {
                            input type="hidden" name="csrf" value=(csrf);
                            span.who { (who) }
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The login form, with an optional error (never the key).
pub(crate) fn login(base: &str, error: Option<&str>, token: &str) -> Markup {
    let body = html! {
        @if let Some(e) = error { p.error role="alert" { (e) } }
        form method="post" action={ (base) "/login" } {
            input type="hidden" name="login_csrf" value=(token);
            label for="key" { "Admin API key" }
            input #key type="password" name="key" autocomplete="off" required autofocus;
            button type="submit" { "Log in" }
        }
        p.hint { "Keys in the admin group may manage keys here. The session lasts while that key verifies, ends after 30 minutes idle, and at the latest after the configured lifetime." }
    };
    layout(base, "Log in", None, body)
}

/// Every key, filtered by `q`.
pub(crate) fn keys(base: &str, csrf: &str, who: &str, all: &[KeyRecord], q: &str) -> Markup {
    let q_lower = q.to_lowercase();
    let shown: Vec<&KeyRecord> = all
        .iter()
        .filter(|r| {
            q.is_empty()
                || [&r.name, &r.user, &r.stub]
                    .iter()
                    .any(|f| f.to_lowercase().contains(&q_lower))
                || r.groups.iter().any(|g| g.to_lowercase().contains(&q_lower))
        })
        .collect();
    let body = html! {
        form.filter method="get" action={ (base) "/" } {
            input type="search" name="q" value=(q) placeholder="Filter by name, user, group";
            button type="submit" { "Filter" }
        }
        table {
            thead { tr { th { "Name" } th { "User" } th { "Groups" } th { "Stub" } th { "Status" }
                th { "Expires" } th { "Last used" } th { "Rate limit" } th { "Quota" } th { "Networks" } th { "Actions" } } }
            tbody {
                @for r in &shown {
                    tr {
                        td { (r.name) } td { (r.user) } td { (r.groups.join(", ")) }
                        td { code { (r.stub) "…" } } td.status { (r.status()) }
                        td { (when(r.expires_at)) } td { (when(r.last_used_at)) }
                        td { (r.rate_limit.map_or_else(|| "default".into(), |l| l.to_string())) }
                        td { (r.quota.map_or_else(|| "default".into(), |q| q.to_string())) }
                        td.networks { @if r.allow_ip.is_empty() { "any" } @else { (r.allow_ip.to_string().replace(',', ", ")) } }
                        td.actions {
                            @for action in ["revoke", "activate", "rotate", "delete", "networks"] {
                                @if (action != "revoke" || r.active) && (action != "activate" || !r.active) {
                                    a href={ (base) "/keys/" (urlencode(&r.name)) "/" (action) } { (action) }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if shown.is_empty() { p { "No key matches." } }
    };
    layout(base, "Keys", Some((who, csrf)), body)
}

/// The create form.
pub(crate) fn new_key(base: &str, csrf: &str, who: &str, error: Option<&str>) -> Markup {
    let body = html! {
        @if let Some(e) = error { p.error role="alert" { (e) } }
        form method="post" action={ (base) "/new" } {
            input type="hidden" name="csrf" value=(csrf);
            label for="name" { "Name" } input #name name="name" required;
            label for="user" { "User" } input #user name="user" required;
            label for="groups" { "Groups (comma-separated)" } input #groups name="groups";
            label for="expires_in" { "Expires in (e.g. 90d; empty: never)" } input #expires_in name="expires_in";
            label for="rate_limit" { "Rate limit (e.g. 100/1m; empty: the default)" } input #rate_limit name="rate_limit";
            label for="quota" { "Quota (e.g. 10000/30d; empty: the default)" } input #quota name="quota";
            label for="allow_ip" { "Networks it is accepted from (e.g. 10.0.0.0/8, 2001:db8::/32; empty: any)" } input #allow_ip name="allow_ip";
            button type="submit" { "Create" }
        }
    };
    layout(base, "New key", Some((who, csrf)), body)
}

/// A new secret, shown this once.
pub(crate) fn shown_once(
    base: &str,
    csrf: &str,
    who: &str,
    r: &KeyRecord,
    key: &Secret,
    what: &str,
) -> Markup {
    let body = html! {
        p { (what) " key " strong { (r.name) } " for user " strong { (r.user) } ". "
            "Copy it now: it is shown this once and never again." }
        label for="secret" { "The key" }
        input #secret.secret type="text" readonly value=(key.expose()) autofocus;
        button.copy type="button" data-copy="secret" { "Copy" }
        p { a href={ (base) "/" } { "Done" } }
    };
    layout(base, "Key created", Some((who, csrf)), body)
}

/// The confirmation of an action on a key.
pub(crate) fn confirm(base: &str, csrf: &str, who: &str, r: &KeyRecord, action: &str) -> Markup {
    if action == "networks" {
        return networks(base, csrf, who, r);
    }
    let body = html! {
        p { "Really " (action) " the key " strong { (r.name) } " of user " (r.user) "?" }
        @if action == "delete" { p.error { "Deleting cannot be undone." } }
        form method="post" action={ (base) "/keys/" (urlencode(&r.name)) "/" (action) } {
            input type="hidden" name="csrf" value=(csrf);
            @if action == "rotate" {
                label for="grace" { "The old key keeps working for (e.g. 24h; 0: stops now)" }
                input #grace name="grace" value="0";
            }
            button type="submit" { "Yes, " (action) }
            " " a href={ (base) "/" } { "Cancel" }
        }
    };
    layout(base, &format!("Confirm: {action}"), Some((who, csrf)), body)
}

/// The networks a key is accepted from, to change.
fn networks(base: &str, csrf: &str, who: &str, r: &KeyRecord) -> Markup {
    let body = html! {
        p { "The key " strong { (r.name) } " of user " (r.user) " is accepted "
            @if r.allow_ip.is_empty() { "from any address." }
            @else { "only from " (r.allow_ip.to_string().replace(',', ", ")) "." } }
        form method="post" action={ (base) "/keys/" (urlencode(&r.name)) "/networks" } {
            input type="hidden" name="csrf" value=(csrf);
            label for="allow_ip" { "Networks (e.g. 10.0.0.0/8, 2001:db8::/32; empty: any address)" }
            input #allow_ip name="allow_ip" value=(r.allow_ip.to_string().replace(',', ", "));
            button type="submit" { "Save" }
            " " a href={ (base) "/" } { "Cancel" }
        }
    };
    layout(base, "Networks", Some((who, csrf)), body)
}

/// Users and their state.
pub(crate) fn users(base: &str, csrf: &str, who: &str, users: &[(String, bool, usize)]) -> Markup {
    let body = html! {
        table {
            thead { tr { th { "User" } th { "Keys" } th { "State" } th { "Action" } } }
            tbody {
                @for (user, active, keys) in users {
                    tr {
                        td { (user) } td { (keys) } td { @if *active { "enabled" } @else { "disabled" } }
                        td {
                            form method="post" action={ (base) "/users/" (urlencode(user)) "/" (if *active { "disable" } else { "enable" }) } {
                                input type="hidden" name="csrf" value=(csrf);
                                button type="submit" { @if *active { "Disable" } @else { "Enable" } }
                            }
                        }
                    }
                }
            }
        }
    };
    layout(base, "Users", Some((who, csrf)), body)
}

/// The audit trail, newest first.
pub(crate) fn audit(base: &str, csrf: &str, who: &str, entries: &[AuditRecord]) -> Markup {
    let body = html! {
        table {
            thead { tr { th { "When" } th { "Actor" } th { "Action" } th { "Name" } th { "Summary" } } }
            tbody {
                @for a in entries.iter().rev() {
                    tr { td { (when(Some(a.at))) } td { (a.actor) } td { (a.action) } td { (a.name) } td { (a.summary) } }
                }
            }
        }
    };
    layout(base, "Audit trail", Some((who, csrf)), body)
}

/// A refusal or failure page.
pub(crate) fn problem(base: &str, title: &str, message: &str) -> Markup {
    layout(
        base,
        title,
        None,
        html! { p.error role="alert" { (message) } p { a href={ (base) "/" } { "Back" } } },
    )
}

/// A path segment, percent-encoded.
pub(crate) fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The stylesheet.
pub(crate) const CSS: &str = "
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d232a;background:#f6f7f9}
header{display:flex;gap:1.5rem;align-items:center;padding:.7rem 1.5rem;background:#22313f;color:#fff}
header a{color:#cfe3ff;margin-right:1rem;text-decoration:none}header nav{flex:1}
header .logout{display:flex;gap:.6rem;align-items:center}
main{padding:1rem 1.5rem;max-width:72rem}
table{border-collapse:collapse;width:100%;background:#fff}th,td{padding:.4rem .6rem;border-bottom:1px solid #e3e6ea;text-align:left;vertical-align:top}
th{background:#eef1f4;font-weight:600}td:first-child{white-space:nowrap}td.actions a{margin-right:.6rem}
form{margin:.6rem 0}label{display:block;margin:.6rem 0 .2rem}input{padding:.35rem .5rem;min-width:18rem}
button{padding:.35rem .9rem;margin-top:.6rem;cursor:pointer}
.secret{font:15px monospace;width:36rem;background:#fffbe6}
.error{color:#a1001c;font-weight:600}.hint{color:#5b6570}.filter input{min-width:24rem}
";

/// The one script: copy buttons. Pages work without it.
pub(crate) const JS: &str = "
document.addEventListener('click', function (e) {
  var id = e.target && e.target.getAttribute('data-copy');
  if (!id) return;
  var field = document.getElementById(id);
  field.select();
  if (navigator.clipboard) { navigator.clipboard.writeText(field.value); }
});
";
