//! The audit trail's words: what each admin change is called and how it is summed up. Shared
//! by every store so the trail reads the same whatever holds it. Never a secret or a digest (a
//! stub, the key's first characters, is what `list` shows too).

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::model::KeyRecord;

fn when(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

fn groups(r: &KeyRecord) -> String {
    if r.groups.is_empty() {
        "no groups".into()
    } else {
        format!("groups {}", r.groups.join(", "))
    }
}

fn limit(r: &KeyRecord) -> String {
    match r.rate_limit {
        Some(l) => format!("rate limit {l}"),
        None => "the default rate limit".into(),
    }
}

fn quota(r: &KeyRecord) -> String {
    match r.quota {
        Some(q) => format!("quota {q}"),
        None => "the default quota".into(),
    }
}

fn allow_ip(r: &KeyRecord) -> String {
    if r.allow_ip.is_empty() {
        "from any address".into()
    } else {
        format!("only from {}", r.allow_ip)
    }
}

/// The summary of `action` on the key as it now is.
pub(crate) fn of(action: &str, r: &KeyRecord) -> String {
    match action {
        "create" | "import" => {
            let expiry = r
                .expires_at
                .map_or_else(|| "no expiry".into(), |t| format!("expires {}", when(t)));
            let state = if r.active { "active" } else { "inactive" };
            let mut from = if r.allow_ip.is_empty() {
                String::new()
            } else {
                format!(", {}", allow_ip(r))
            };
            if !r.scopes.is_empty() {
                from.push_str(&format!(", {}", scopes(r)));
            }
            format!(
                "user {}, {}, {}, {}{from}, {expiry}, {state}, secret {}…",
                r.user,
                groups(r),
                limit(r),
                quota(r),
                r.stub
            )
        }
        "revoke" => "revoked".into(),
        "activate" => "activated".into(),
        "groups" => groups(r),
        "rate-limit" => limit(r),
        "quota" => quota(r),
        "allow-ip" => allow_ip(r),
        "expiry" => r
            .expires_at
            .map_or_else(|| "no expiry".into(), |t| format!("expires {}", when(t))),
        "rotate" => format!("new secret {}…", r.stub),
        "scopes" => scopes(r),
        other => other.into(),
    }
}

fn scopes(r: &KeyRecord) -> String {
    if r.scopes.is_empty() {
        "no scopes".into()
    } else {
        format!("scopes {}", r.scopes.join(", "))
    }
}

fn expiry(r: &KeyRecord) -> String {
    r.expires_at
        .map_or_else(|| "no expiry".into(), |t| format!("expires {}", when(t)))
}

/// The summary of `action`, which turned `before` into `after`: what changed, old → new, for
/// the edits that touch several fields (`set`) or lists (`scopes`); [`of`] the key as it now is
/// otherwise. Metadata is named by entry, never by value.
pub(crate) fn of_change(action: &str, before: &KeyRecord, after: &KeyRecord) -> String {
    if !matches!(action, "set" | "scopes") {
        return of(action, after);
    }
    let mut parts: Vec<String> = Vec::new();
    let mut field = |f: fn(&KeyRecord) -> String| {
        let (old, new) = (f(before), f(after));
        if old != new {
            parts.push(format!("{old} → {new}"));
        }
    };
    field(|r| format!("user {}", r.user));
    field(expiry);
    field(groups);
    field(scopes);
    field(limit);
    field(quota);
    field(allow_ip);
    match (&before.description, &after.description) {
        (None, Some(_)) => parts.push("description set".into()),
        (Some(_), None) => parts.push("description removed".into()),
        (Some(a), Some(b)) if a != b => parts.push("description changed".into()),
        _ => {}
    }
    let set: Vec<&str> = after
        .meta
        .iter()
        .filter(|(k, v)| before.meta.get(k) != Some(*v))
        .map(|(k, _)| k)
        .collect();
    let removed: Vec<&str> = before
        .meta
        .iter()
        .filter(|(k, _)| after.meta.get(k).is_none())
        .map(|(k, _)| k)
        .collect();
    if !set.is_empty() {
        parts.push(format!("metadata {} set", set.join(", ")));
    }
    if !removed.is_empty() {
        parts.push(format!("metadata {} removed", removed.join(", ")));
    }
    if parts.is_empty() {
        "no change".into()
    } else {
        parts.join("; ")
    }
}

/// The summary of a rotation: the new secret's stub, and how long the previous ones last.
pub(crate) fn rotated(r: &KeyRecord, old_valid_until: Option<OffsetDateTime>) -> String {
    let now = OffsetDateTime::now_utc();
    match old_valid_until.filter(|t| *t > now) {
        Some(t) => format!(
            "new secret {}…; previous secrets valid until {}",
            r.stub,
            when(t)
        ),
        None => format!("new secret {}…; previous secrets revoked", r.stub),
    }
}

/// The action name of a user change.
pub(crate) fn user_action(active: bool) -> &'static str {
    if active {
        "user-enable"
    } else {
        "user-disable"
    }
}
