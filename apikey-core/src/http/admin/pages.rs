//! The admin pages, rendered on the server (maud: checked at compile time). No page needs
//! JavaScript; the one script (copy buttons) is a file of ours, allowed by the CSP.

use crate::{AuditRecord, KeyRecord, Quota, Secret, UsageDay};
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
                            a href={ (home(base)) } { "Keys" }
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

/// How the key list is sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sort {
    /// By name (the default).
    Name,
    /// Most recently used first; never used last.
    LastUsed,
    /// Most requests in the last 30 days first.
    Usage,
}

impl Sort {
    pub(crate) fn from_param(param: &str) -> Self {
        match param {
            "last_used" => Sort::LastUsed,
            "usage" => Sort::Usage,
            _ => Sort::Name,
        }
    }

    fn param(self) -> &'static str {
        match self {
            Sort::Name => "name",
            Sort::LastUsed => "last_used",
            Sort::Usage => "usage",
        }
    }
}

/// What the key list shows: the filter, the order, and each key's requests of the last 30
/// days (by tech name).
pub(crate) struct KeyList<'a> {
    /// The store's filter the page was listed with.
    pub(crate) filter: &'a crate::model::KeyFilter,
    pub(crate) q: &'a str,
    pub(crate) sort: Sort,
    pub(crate) totals: &'a std::collections::HashMap<String, u64>,
}

/// Every key, filtered by `q`, in the order asked.
pub(crate) fn keys(
    base: &str,
    csrf: &str,
    who: &str,
    all: &[KeyRecord],
    view: &KeyList<'_>,
) -> Markup {
    let q = view.q;
    let q_lower = q.to_lowercase();
    let total = |r: &KeyRecord| view.totals.get(&r.tech_name).copied().unwrap_or(0);
    let mut shown: Vec<&KeyRecord> = all
        .iter()
        .filter(|r| {
            q.is_empty()
                || [&r.name, &r.user, &r.stub]
                    .iter()
                    .any(|f| f.to_lowercase().contains(&q_lower))
                || r.groups.iter().any(|g| g.to_lowercase().contains(&q_lower))
        })
        .collect();
    match view.sort {
        Sort::Name => shown.sort_by(|a, b| a.name.cmp(&b.name)),
        Sort::LastUsed => shown.sort_by(|a, b| {
            b.last_used_at
                .cmp(&a.last_used_at)
                .then(a.name.cmp(&b.name))
        }),
        Sort::Usage => shown.sort_by(|a, b| total(b).cmp(&total(a)).then(a.name.cmp(&b.name))),
    }
    let f = view.filter;
    let user = f.user.as_deref().unwrap_or_default();
    let group = f.group.as_deref().unwrap_or_default();
    let expiring = f
        .expiring_within
        .map(|d| format!("{}d", d.as_secs().div_ceil(86_400)))
        .unwrap_or_default();
    let revoked = match f.revoked {
        Some(true) => "true",
        Some(false) => "false",
        None => "",
    };
    // The filter travels with the sort links.
    let kept = format!(
        "&q={}&user={}&group={}&expiring={}&revoked={}",
        urlencode(q),
        urlencode(user),
        urlencode(group),
        urlencode(&expiring),
        revoked
    );
    let sort_link = |sort: Sort, label: &str| {
        html! {
            @if view.sort == sort { (label) " ▾" }
            @else { a href={ (home(base)) "?sort=" (sort.param()) (kept) } { (label) } }
        }
    };
    let body = html! {
        form.filter method="get" action={ (home(base)) } {
            input type="search" name="q" value=(q) placeholder="Filter by name, user, group";
            label for="f-user" { "User" } input #f-user name="user" value=(user);
            label for="f-group" { "Group" } input #f-group name="group" value=(group);
            label for="f-expiring" { "Expiring within" } input #f-expiring name="expiring" value=(expiring) placeholder="14d";
            label for="f-revoked" { "State" }
            select #f-revoked name="revoked" {
                option value="" selected[revoked.is_empty()] { "any" }
                option value="false" selected[revoked == "false"] { "active" }
                option value="true" selected[revoked == "true"] { "revoked" }
            }
            input type="hidden" name="sort" value=(view.sort.param());
            button type="submit" { "Filter" }
        }
        table.keys {
            thead { tr { th { (sort_link(Sort::Name, "Name")) } th { "User" } th { "Groups" } th { "Stub" } th { "Status" }
                th { "Expires" } th { (sort_link(Sort::LastUsed, "Last used")) } th { (sort_link(Sort::Usage, "Requests (30 d)")) }
                th { "Rate limit" } th { "Quota" } th { "Networks" } th { "Actions" } } }
            tbody {
                @for r in &shown {
                    tr {
                        td { a href={ (base) "/keys/" (urlencode(&r.name)) } { (r.name) } } td { (r.user) } td { (r.groups.join(", ")) }
                        td { code { (r.stub) "…" } } td.status { (r.status()) }
                        td { (when(r.expires_at)) } td { (when(r.last_used_at)) } td.usage { (total(r)) }
                        td { (r.rate_limit.map_or_else(|| "default".into(), |l| l.to_string())) }
                        td { (r.quota.map_or_else(|| "default".into(), |q| q.to_string())) }
                        td.networks { @if r.allow_ip.is_empty() { "any" } @else { (r.allow_ip.to_string().replace(',', ", ")) } }
                        td.actions {
                            @for action in ["edit", "revoke", "activate", "rotate", "delete", "networks"] {
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

/// What the page of one key shows.
pub(crate) struct KeyFacts<'a> {
    pub(crate) record: &'a KeyRecord,
    /// Its requests per day, oldest first (days without requests left out).
    pub(crate) days: &'a [UsageDay],
    /// Today (days since the epoch) and how many days the chart spans, today included.
    pub(crate) today: i64,
    pub(crate) span: i64,
    /// The quota that applies, and how much of its window is used (when it could be read).
    pub(crate) quota: Option<(Quota, Option<u64>)>,
}

/// The page of one key: its facts and its last days of requests.
pub(crate) fn key(base: &str, csrf: &str, who: &str, facts: &KeyFacts<'_>) -> Markup {
    let r = facts.record;
    let (accepted, forbidden, limited) = facts.days.iter().fold((0, 0, 0), |(a, f, l), d| {
        (a + d.accepted, f + d.forbidden, l + d.limited)
    });
    let body = html! {
        dl.facts {
            dt { "User" } dd { (r.user) }
            dt { "Groups" } dd { (r.groups.join(", ")) }
            dt { "Status" } dd.status { (r.status()) }
            dt { "Key" } dd { code { (r.stub) "…" } }
            dt { "Last used" } dd { (when(r.last_used_at)) }
            dt { "Expires" } dd { (when(r.expires_at)) }
            dt { "Rate limit" } dd { (r.rate_limit.map_or_else(|| "default".into(), |l| l.to_string())) }
            dt { "Quota" } dd.quota {
                @match facts.quota {
                    None => { "none" }
                    Some((q, Some(used))) => { (used.min(q.count)) " of " (q) " used in this period" }
                    Some((q, None)) => { (q) " (its use cannot be read right now)" }
                }
            }
            dt { "Networks" } dd { @if r.allow_ip.is_empty() { "any address" } @else { (r.allow_ip.to_string().replace(',', ", ")) } }
            dt { "Scopes" } dd.scopes { @if r.scopes.is_empty() { "none" } @else { (r.scopes.join(", ")) } }
            dt { "Description" } dd.description { (r.description.as_deref().unwrap_or("-")) }
            dt { "Metadata" } dd.meta {
                @if r.meta.is_empty() { "none" }
                @for (k, v) in r.meta.iter() { code { (k) "=" (v) } " " }
            }
        }
        p { a href={ (base) "/keys/" (urlencode(&r.name)) "/edit" } { "Edit this key" } }
        h2 { "Requests, last " (facts.span) " days" }
        p.totals { (accepted) " accepted, " (forbidden) " refused (403), " (limited) " rate-limited (429)" }
        (usage_chart(facts))
        p { a href={ (home(base)) } { "Back to the keys" } }
    };
    layout(base, &r.name, Some((who, csrf)), body)
}

/// Requests per day as stacked bars, drawn on the server (inline SVG: no script, nothing the
/// page's CSP would need to allow).
fn usage_chart(facts: &KeyFacts<'_>) -> Markup {
    const W: i64 = 660;
    const H: i64 = 180;
    const LEFT: i64 = 44;
    const TOP: i64 = 12;
    const BOTTOM: i64 = 28;
    let first = facts.today - facts.span + 1;
    let by_day: std::collections::HashMap<i64, &UsageDay> =
        facts.days.iter().map(|d| (d.day, d)).collect();
    let peak = facts
        .days
        .iter()
        .map(|d| d.accepted + d.forbidden + d.limited)
        .max()
        .unwrap_or(0)
        .max(1);
    let plot_h = H - TOP - BOTTOM;
    let slot = (W - LEFT) / facts.span.max(1);
    let bar_w = (slot - 4).max(2);
    // The height of `n` requests, in pixels (a non-zero count is at least one pixel).
    let height = |n: u64| -> i64 {
        if n == 0 {
            0
        } else {
            (i64::try_from(n.saturating_mul(plot_h as u64) / peak).unwrap_or(plot_h)).max(1)
        }
    };
    let colours = [
        ("accepted", "#2e7d32"),
        ("refused (403)", "#ef6c00"),
        ("rate-limited (429)", "#c62828"),
    ];
    let label = format!(
        "Requests per day from {} to {}: at most {peak} a day",
        UsageDay::date_of(first),
        UsageDay::date_of(facts.today)
    );
    html! {
        svg.usage xmlns="http://www.w3.org/2000/svg" width=(W) height=(H + 22) viewBox={ "0 0 " (W) " " (H + 22) } role="img" aria-label=(label) {
            line x1=(LEFT) y1=(TOP) x2=(W) y2=(TOP) stroke="#d5dae0" {}
            line x1=(LEFT) y1=(H - BOTTOM) x2=(W) y2=(H - BOTTOM) stroke="#8a94a0" {}
            text x=(LEFT - 6) y=(TOP + 4) text-anchor="end" font-size="11" fill="#5b6570" { (peak) }
            text x=(LEFT - 6) y=(H - BOTTOM + 4) text-anchor="end" font-size="11" fill="#5b6570" { "0" }
            @for i in 0..facts.span {
                @let day = first + i;
                @let x = LEFT + i * slot + 2;
                @let d = by_day.get(&day);
                @let counts = d.map_or([0, 0, 0], |d| [d.accepted, d.forbidden, d.limited]);
                g.day data-day=(UsageDay::date_of(day)) data-total=(counts.iter().sum::<u64>()) {
                    title { (UsageDay::date_of(day)) ": " (counts[0]) " accepted, " (counts[1]) " refused (403), " (counts[2]) " rate-limited (429)" }
                    @let mut y = H - BOTTOM;
                    @for (n, (_, colour)) in counts.iter().zip(colours) {
                        @let h = height(*n);
                        @if h > 0 {
                            @let top = { y -= h; y };
                            rect x=(x) y=(top) width=(bar_w) height=(h) fill=(colour) {}
                        }
                    }
                    rect x=(x - 2) y=(TOP) width=(slot) height=(plot_h) fill="transparent" {}
                }
            }
            text x=(LEFT) y=(H - BOTTOM + 16) font-size="11" fill="#5b6570" { (UsageDay::date_of(first)) }
            text x=(W) y=(H - BOTTOM + 16) text-anchor="end" font-size="11" fill="#5b6570" { (UsageDay::date_of(facts.today)) }
            @for (i, (name, colour)) in colours.iter().enumerate() {
                @let x = LEFT + (i as i64) * 170;
                rect x=(x) y=(H + 4) width="12" height="12" fill=(colour) {}
                text x=(x + 18) y=(H + 14) font-size="12" fill="#1d232a" { (name) }
            }
        }
    }
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
            label for="scopes" { "Scopes (e.g. orders:write, orders:*; comma-separated)" } input #scopes name="scopes";
            label for="description" { "Description" } textarea #description name="description" {}
            label for="meta" { "Metadata for handlers (one NAME=VALUE per line)" } textarea #meta name="meta" {}
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
        p { a href={ (home(base)) } { "Done" } }
    };
    layout(base, "Key created", Some((who, csrf)), body)
}

/// The confirmation of an action on a key.
pub(crate) fn confirm(base: &str, csrf: &str, who: &str, r: &KeyRecord, action: &str) -> Markup {
    if action == "networks" {
        return networks(base, csrf, who, r);
    }
    if action == "edit" {
        return edit(base, csrf, who, r, None);
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
            " " a href={ (home(base)) } { "Cancel" }
        }
    };
    layout(base, &format!("Confirm: {action}"), Some((who, csrf)), body)
}

/// Every field of a key that can change after creation, to change in one go.
pub(crate) fn edit(
    base: &str,
    csrf: &str,
    who: &str,
    r: &KeyRecord,
    error: Option<&str>,
) -> Markup {
    let expires = r
        .expires_at
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    let meta: Vec<String> = r.meta.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let body = html! {
        @if let Some(e) = error { p.error role="alert" { (e) } }
        p { "The key " strong { (r.name) } " of user " (r.user) "." }
        form method="post" action={ (base) "/keys/" (urlencode(&r.name)) "/edit" } {
            input type="hidden" name="csrf" value=(csrf);
            label for="user" { "User" } input #user name="user" value=(r.user) required;
            label for="groups" { "Groups (comma-separated)" } input #groups name="groups" value=(r.groups.join(", "));
            label for="scopes" { "Scopes (comma-separated)" } input #scopes name="scopes" value=(r.scopes.join(", "));
            label for="expires_at" { "Expires at (RFC 3339, e.g. 2027-01-31T00:00:00Z; empty: never)" } input #expires_at name="expires_at" value=(expires);
            label for="rate_limit" { "Rate limit (e.g. 100/1m; empty: the default)" } input #rate_limit name="rate_limit" value=(r.rate_limit.map(|l| l.to_string()).unwrap_or_default());
            label for="quota" { "Quota (e.g. 10000/30d; empty: the default)" } input #quota name="quota" value=(r.quota.map(|q| q.to_string()).unwrap_or_default());
            label for="allow_ip" { "Networks (e.g. 10.0.0.0/8, 2001:db8::/32; empty: any address)" } input #allow_ip name="allow_ip" value=(r.allow_ip.to_string().replace(',', ", "));
            label for="description" { "Description" } textarea #description name="description" { (r.description.as_deref().unwrap_or_default()) }
            label for="meta" { "Metadata for handlers (one NAME=VALUE per line)" } textarea #meta name="meta" { (meta.join("\n")) }
            button type="submit" { "Save" }
            " " a href={ (home(base)) } { "Cancel" }
        }
    };
    layout(base, &format!("Edit {}", r.name), Some((who, csrf)), body)
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
            " " a href={ (home(base)) } { "Cancel" }
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
        html! { p.error role="alert" { (message) } p { a href={ (home(base)) } { "Back" } } },
    )
}

/// The key list's address: the mount point itself (`/admin`: axum's `nest` serves it, not
/// `/admin/`), or `/` at the root.
pub(crate) fn home(base: &str) -> &str {
    if base.is_empty() {
        "/"
    } else {
        base
    }
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
th{background:#eef1f4;font-weight:600}th a{color:inherit}
dl.facts{display:grid;grid-template-columns:9rem 1fr;gap:.3rem .8rem;background:#fff;padding:.8rem 1rem;max-width:44rem}
dl.facts dt{font-weight:600;color:#5b6570}dl.facts dd{margin:0}svg.usage{background:#fff;display:block;margin:.4rem 0}td:first-child{white-space:nowrap}td.actions a{margin-right:.6rem}
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
