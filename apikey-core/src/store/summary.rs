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
            let from = if r.allow_ip.is_empty() {
                String::new()
            } else {
                format!(", {}", allow_ip(r))
            };
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
        other => other.into(),
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
