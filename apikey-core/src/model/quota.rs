//! Usage quotas ("credits") as values: `10000/30d` means 10000 accepted requests per 30-day
//! period, refilled in full when the next period starts.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::duration::count_per;

/// A quota: `count` accepted requests per `period`. Periods are fixed windows aligned on the
/// Unix epoch (UTC): a `1d` quota refills at midnight UTC, a `1h` one on the hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Requests allowed per period (at least 1).
    pub count: u64,
    /// The period, in whole seconds (1s to 366d).
    pub period: Duration,
}

/// The longest period a quota may have.
const MAX_PERIOD: Duration = Duration::from_secs(366 * 86_400);

/// One period of a quota: its index since the epoch and when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaWindow {
    /// `unix_seconds / period_seconds` at the window's start.
    pub index: i64,
    /// When the window ends and the quota is refilled (unix seconds).
    pub ends_at: i64,
}

impl Quota {
    /// What a quota looks like, for messages.
    pub const EXPECTED: &'static str =
        "must be <count>/<period>, e.g. 10000/30d or 500/1d (count at least 1, period 1s to 366d)";

    /// The period in whole seconds.
    pub fn period_secs(&self) -> i64 {
        i64::try_from(self.period.as_secs())
            .unwrap_or(i64::MAX)
            .max(1)
    }

    /// The window that holds `unix_secs`.
    ///
    /// ```
    /// use apikey_core::Quota;
    /// let q: Quota = "100/1d".parse().unwrap();
    /// let w = q.window(86_400 * 3 + 5);
    /// assert_eq!((w.index, w.ends_at), (3, 86_400 * 4));
    /// ```
    pub fn window(&self, unix_secs: i64) -> QuotaWindow {
        let period = self.period_secs();
        let index = unix_secs.div_euclid(period);
        QuotaWindow {
            index,
            ends_at: index.saturating_add(1).saturating_mul(period),
        }
    }
}

impl FromStr for Quota {
    type Err = String;

    /// `<count>/<period>`: `10000/30d`, `500/1d`, `50/h`.
    ///
    /// ```
    /// use apikey_core::Quota;
    /// let q: Quota = "10000/30d".parse().unwrap();
    /// assert_eq!(q.count, 10000);
    /// assert_eq!(q.to_string(), "10000/30days");
    /// assert!("0/1d".parse::<Quota>().is_err());
    /// assert!("5/500ms".parse::<Quota>().is_err());
    /// ```
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a quota; write e.g. 10000/30d or 500/1d");
        let (count, period): (u64, Duration) = count_per(text).ok_or_else(bad)?;
        if count == 0 || period < Duration::from_secs(1) || period.subsec_nanos() != 0 {
            return Err(bad());
        }
        if period > MAX_PERIOD {
            return Err(format!(
                "{text:?} is not a usable quota: periods longer than 366 days are not supported"
            ));
        }
        Ok(Quota { count, period })
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            self.count,
            humantime::format_duration(self.period)
        )
    }
}

impl Serialize for Quota {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Quota {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        // The message never repeats the value: config errors name the field only.
        text.parse()
            .map_err(|_| serde::de::Error::custom(format!("a quota {}", Quota::EXPECTED)))
    }
}

/// What one key did on one day (UTC): what `apikey usage` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct UsageDay {
    /// Days since the Unix epoch.
    pub day: i64,
    /// Requests let in.
    pub accepted: u64,
    /// Requests refused with 403 (the key is not in the route's groups).
    pub forbidden: u64,
    /// Requests refused with 429 (rate limit or quota).
    pub limited: u64,
}

impl UsageDay {
    /// A day (days since the Unix epoch) as a UTC date, `2026-12-02`; the number itself for a
    /// day no date can show.
    ///
    /// ```
    /// assert_eq!(apikey_core::UsageDay::date_of(20_424), "2025-12-02");
    /// ```
    pub fn date_of(day: i64) -> String {
        time::OffsetDateTime::from_unix_timestamp(day.saturating_mul(86_400))
            .ok()
            .and_then(|t| {
                t.date()
                    .format(&time::macros::format_description!("[year]-[month]-[day]"))
                    .ok()
            })
            .unwrap_or_else(|| day.to_string())
    }
}

/// Counts to add to one key's day, written in batches by the verifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageCount {
    /// The key's tech name.
    pub tech_name: String,
    /// The counts of that day.
    pub counts: UsageDay,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prints_and_windows() {
        let q: Quota = "500/1d".parse().unwrap();
        assert_eq!(q.to_string(), "500/1day");
        assert_eq!(q.to_string().parse::<Quota>().unwrap(), q);
        assert_eq!("50/h".parse::<Quota>().unwrap().period_secs(), 3600);
        for bad in [
            "", "1", "/1d", "1/", "-1/1d", "0/1d", "1/0", "1/soon", "1/367d", "1/1.5s",
        ] {
            assert!(bad.parse::<Quota>().is_err(), "{bad}");
        }
        let w = q.window(-1);
        assert_eq!((w.index, w.ends_at), (-1, 0));
        assert_eq!(q.window(0).index, 0);
        assert_eq!(q.window(86_399).ends_at, 86_400);
    }
}
