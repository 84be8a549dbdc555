//! What `apikey` prints: aligned text for people, one JSON document per command with `--json`.
//!
//! Names come from the store, and a store written before names were checked may hold any
//! character: everything printed goes through [`escape_unsafe`] (text) or [`json_safe`]
//! (JSON), so no name can move the cursor, clear the screen or start a forged line.

use apikey_core::admin::OdooReport;
use apikey_core::model::{escape_unsafe, is_unsafe_char, KeyView};
use apikey_core::{AuditRecord, AuthError, Identity, KeyRecord, Secret, UsageDay};
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Prints one line for people on stdout, escaped.
macro_rules! say {
    ($($arg:tt)*) => {
        println!("{}", escape_unsafe(&format!($($arg)*)))
    };
}

/// Prints one line for people on stderr, escaped.
macro_rules! tell {
    ($($arg:tt)*) => {
        eprintln!("{}", escape_unsafe(&format!($($arg)*)))
    };
}

/// A JSON text with every character that could forge output written as a `\uXXXX` escape
/// (only strings can hold one; a raw newline is the layout of pretty output).
pub(crate) fn json_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c != '\n' && is_unsafe_char(c) {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// Prints a JSON document on stdout, escaped.
fn print_json(doc: &impl std::fmt::Display) {
    println!("{}", json_safe(&doc.to_string()));
}

fn when(t: Option<OffsetDateTime>) -> String {
    t.and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "-".into())
}

pub(crate) fn record_json(r: &KeyRecord) -> serde_json::Value {
    serde_json::to_value(KeyView::from(r)).unwrap_or_default()
}

fn print_record(r: &KeyRecord) {
    say!("name:         {}", r.name);
    say!("tech_name:    {}", r.tech_name);
    say!("user:         {}", r.user);
    say!("groups:       {}", r.groups.join(", "));
    say!("status:       {}", r.status());
    say!("stub:         {}", r.stub);
    say!(
        "rate_limit:   {}",
        r.rate_limit
            .map_or_else(|| "- (the default)".into(), |l| l.to_string())
    );
    say!(
        "quota:        {}",
        r.quota
            .map_or_else(|| "- (the default)".into(), |q| q.to_string())
    );
    say!(
        "allow_ip:     {}",
        if r.allow_ip.is_empty() {
            "- (any address)".into()
        } else {
            r.allow_ip.to_string().replace(',', ", ")
        }
    );
    say!(
        "scopes:       {}",
        if r.scopes.is_empty() {
            "-".into()
        } else {
            r.scopes.join(", ")
        }
    );
    say!("description:  {}", r.description.as_deref().unwrap_or("-"));
    if r.meta.is_empty() {
        say!("meta:         -");
    }
    for (i, (k, v)) in r.meta.iter().enumerate() {
        let label = if i == 0 { "meta:" } else { "" };
        say!("{label:<14}{k}={v}");
    }
    say!("expires_at:   {}", when(r.expires_at));
    say!("created_at:   {}", when(Some(r.created_at)));
    say!("last_used_at: {}", when(r.last_used_at));
}

/// Prints rows under a header, in columns.
fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header = header.map(String::from);
    for row in std::iter::once(&header).chain(rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        say!("{}", line.join("  ").trim_end());
    }
}

fn print_list(records: &[KeyRecord]) {
    let rows: Vec<[String; 8]> = records
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                r.user.clone(),
                r.groups.join(","),
                r.status().into(),
                r.stub.clone(),
                r.rate_limit.map_or_else(|| "-".into(), |l| l.to_string()),
                when(r.expires_at),
                when(r.last_used_at),
            ]
        })
        .collect();
    let header = [
        "NAME",
        "USER",
        "GROUPS",
        "STATUS",
        "STUB",
        "RATE LIMIT",
        "EXPIRES",
        "LAST USED",
    ];
    table(header, &rows);
}

/// Prints the audit trail.
pub(crate) fn audit(json: bool, entries: &[AuditRecord]) {
    if json {
        print_json(&json!(entries));
        return;
    }
    let rows: Vec<[String; 5]> = entries
        .iter()
        .map(|a| {
            [
                when(Some(a.at)),
                a.actor.clone(),
                a.action.clone(),
                a.name.clone(),
                a.summary.clone(),
            ]
        })
        .collect();
    table(["AT", "ACTOR", "ACTION", "NAME", "SUMMARY"], &rows);
}

/// Prints what an Odoo import did (or would do); warnings go to stderr.
pub(crate) fn imported(json: bool, r: &OdooReport) {
    if json {
        print_json(&json!(r));
        return;
    }
    for w in &r.warnings {
        tell!("warning: {w}");
    }
    let (lead, verbs) = if r.dry_run {
        (
            "Dry run, nothing written: would have",
            ["created", "updated", "disabled"],
        )
    } else {
        ("Imported from Odoo:", ["created", "updated", "disabled"])
    };
    say!(
        "{lead} {} {}, {} {}, {} unchanged, {} skipped, {} changed here (left as is); {} user(s) {}.",
        r.created,
        verbs[0],
        r.updated,
        verbs[1],
        r.unchanged,
        r.skipped,
        r.conflicts,
        r.users_disabled,
        verbs[2]
    );
}

/// Prints how many keys neutralize deactivated.
pub(crate) fn neutralized(json: bool, count: u64) {
    if json {
        print_json(&json!({ "deactivated": count }));
    } else {
        tell!("Deactivated {count} key(s); every stored key is now inactive.");
    }
}

/// Where the key store's schema stands (`applied`: `status` is from before `migrate` applied
/// its `pending`).
pub(crate) fn schema(json: bool, status: &apikey_core::store::SchemaStatus, applied: bool) {
    let list: Vec<_> = status
        .pending
        .iter()
        .map(|(version, description)| json!({ "version": version, "description": description }))
        .collect();
    if json {
        let key = if applied { "applied" } else { "pending" };
        let at = if applied { status.needed } else { status.at };
        print_json(&json!({ key: list, "schema": at, "needed": status.needed }));
        return;
    }
    if status.pending.is_empty() {
        say!("The key store is up to date (schema {}).", status.needed);
        return;
    }
    let verb = if applied { "Applied" } else { "Pending" };
    for (version, description) in &status.pending {
        say!("{verb}: {version} {description}");
    }
    if applied {
        say!(
            "The key store is at schema {} (it was at {}).",
            status.needed,
            status.at
        );
    } else {
        say!(
            "The key store is at schema {}; this build needs {}.",
            status.at,
            status.needed
        );
    }
}

pub(crate) fn print_secret(json: bool, r: &KeyRecord, key: &Secret, what: &str) {
    if json {
        let mut v = record_json(r);
        v["key"] = json!(key.expose());
        print_json(&v);
    } else {
        tell!(
            "{what} key {:?} for user {:?}. The key is shown once, store it now:",
            r.name,
            r.user
        );
        println!("{}", key.expose());
    }
}

pub(crate) fn done(json: bool, r: &KeyRecord, what: &str) {
    if json {
        print_json(&record_json(r));
    } else {
        tell!("{what} key {:?} (now {}).", r.name, r.status());
    }
}

/// Prints the outcome of `apikey verify`.
pub(crate) fn verified(json: bool, caller: &Result<Identity, AuthError>, from_given: bool) {
    match (caller, json) {
        (Err(AuthError::AddressNotAllowed), false) if !from_given => say!(
            "invalid: the key is bound to networks; give the address it is used from with --from"
        ),
        (Ok(c), true) => say!(
            "{}",
            json!({ "valid": true, "user": c.user(), "name": c.key_name(), "groups": c.groups().collect::<Vec<_>>() })
        ),
        (Ok(c), false) => say!("valid: key {:?} of user {:?}", c.key_name(), c.user()),
        (Err(_), true) => print_json(&json!({ "valid": false })),
        (Err(e), false) => say!("invalid: {e}"),
    }
}

/// Prints a key's groups after an edit.
pub(crate) fn groups(json: bool, r: &KeyRecord) {
    if json {
        print_json(&record_json(r));
    } else {
        tell!("Key {:?} is in groups: {}.", r.name, r.groups.join(", "));
    }
}

/// Prints a key's scopes after a change.
pub(crate) fn scopes(json: bool, r: &KeyRecord) {
    if json {
        print_json(&record_json(r));
    } else if r.scopes.is_empty() {
        tell!("Key {:?} has no scopes.", r.name);
    } else {
        tell!("Key {:?} has scopes: {}.", r.name, r.scopes.join(", "));
    }
}

/// Prints a deleted key's name.
pub(crate) fn deleted(json: bool, name: &str) {
    if json {
        print_json(&json!({ "deleted": name }));
    } else {
        tell!("Deleted key {name:?}.");
    }
}

/// Prints a user's new state.
pub(crate) fn user(json: bool, user: &str, active: bool, keys: u64) {
    if json {
        print_json(&json!({ "user": user, "active": active, "keys": keys }));
    } else {
        let state = if active { "enabled" } else { "disabled" };
        tell!("User {user:?} {state} ({keys} key(s)).");
    }
}

/// Prints every key, or one.
pub(crate) fn records(json: bool, all: &[KeyRecord]) {
    if json {
        let v: Vec<_> = all.iter().map(record_json).collect();
        print_json(&serde_json::Value::Array(v));
    } else {
        print_list(all);
    }
}

/// Prints one key.
pub(crate) fn record(json: bool, r: &KeyRecord) {
    if json {
        print_json(&record_json(r));
    } else {
        print_record(r);
    }
}

pub(crate) fn usage(json: bool, report: &apikey_core::admin::usage::UsageReport) {
    if json {
        print_json(&serde_json::to_string_pretty(report).unwrap_or_default());
        return;
    }
    say!(
        "{} ({}): requests per day since {} (UTC)",
        report.name,
        report.tech_name,
        UsageDay::date_of(report.since_day)
    );
    let mut rows: Vec<[String; 4]> = report
        .days
        .iter()
        .map(|d| {
            [
                UsageDay::date_of(d.day),
                d.accepted.to_string(),
                d.forbidden.to_string(),
                d.limited.to_string(),
            ]
        })
        .collect();
    let t = &report.total;
    rows.push([
        "total".into(),
        t.accepted.to_string(),
        t.forbidden.to_string(),
        t.limited.to_string(),
    ]);
    table(["DAY", "ACCEPTED", "403", "429"], &rows);
    match &report.quota {
        Some(q) => say!(
            "quota {}: {} used, {} remaining, refilled at {}",
            q.quota,
            q.used,
            q.remaining,
            when(Some(q.refills_at))
        ),
        None => say!("quota: none"),
    }
}
