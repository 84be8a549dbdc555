//! Durations as people write them in config files and on the command line.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Durations: whole seconds (`30`) or humantime (`30s`, `24h`, `90d`).
///
/// ```
/// use std::time::Duration;
/// assert_eq!(apikey_core::parse_duration("90"), Ok(Duration::from_secs(90)));
/// assert_eq!(apikey_core::parse_duration("24h"), Ok(Duration::from_secs(86_400)));
/// assert!(apikey_core::parse_duration("soon").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text).map_err(|e| {
        format!("{text:?} is not a duration ({e}); use whole seconds or e.g. 30s, 15m, 24h, 90d")
    })
}

/// The instant `d` after `now`: when a key given an expiry as a duration (`--expires-in 90d`,
/// `expires_in`) expires. The one rule for the CLI, the admin page and the management API: a
/// duration past the calendar's end is an error, never a silent "year 9999".
///
/// ```
/// use std::time::Duration;
/// use time::macros::datetime;
/// let now = datetime!(2026-01-01 0:00 UTC);
/// let at = apikey_core::model::expiry_after(now, Duration::from_secs(86_400)).unwrap();
/// assert_eq!(at, datetime!(2026-01-02 0:00 UTC));
/// assert!(apikey_core::model::expiry_after(now, Duration::MAX).is_err());
/// ```
pub fn expiry_after(
    now: time::OffsetDateTime,
    d: Duration,
) -> Result<time::OffsetDateTime, String> {
    time::Duration::try_from(d)
        .ok()
        .and_then(|d| now.checked_add(d))
        .ok_or_else(|| {
            format!(
                "an expiry {} days from now is past the calendar's end",
                d.as_secs() / 86_400
            )
        })
}

/// `<count>/<period>` as limits and quotas write it (`100/1m`, `10/s`, `3/90`): the count, and
/// the period (a bare unit means one of it). `None` when either part does not parse; the
/// caller checks the bounds of its own kind.
pub(crate) fn count_per<T: std::str::FromStr>(text: &str) -> Option<(T, Duration)> {
    let (count, period) = text.trim().split_once('/')?;
    let count = count.trim().parse().ok()?;
    let period = period.trim();
    let period = if period.is_empty() {
        return None;
    } else if period.starts_with(|c: char| c.is_ascii_digit()) {
        parse_duration(period).ok()?
    } else {
        parse_duration(&format!("1{period}")).ok()?
    };
    Some((count, period))
}

/// Deserializes a duration written as whole seconds or as text (`30s`). The error message
/// never repeats the value: config errors name the field only.
pub(crate) fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }
    let expected =
        || serde::de::Error::custom("expected a duration: whole seconds or e.g. 30s, 15m, 24h");
    match Raw::deserialize(d).map_err(|_| expected())? {
        Raw::Secs(s) => Ok(Duration::from_secs(s)),
        Raw::Text(t) => parse_duration(&t).map_err(|_| expected()),
    }
}
