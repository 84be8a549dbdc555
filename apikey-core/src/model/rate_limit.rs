//! Rate limits as values: `100/1m` means bursts of up to 100 requests, refilled at 100 per
//! minute.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::duration::count_per;

/// A rate limit: `count` requests per `period`, in bursts of up to `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per period (at least 1).
    pub count: u32,
    /// The period (at least 1 ms).
    pub period: Duration,
}

/// The longest period a rate limit may have.
const MAX_PERIOD: Duration = Duration::from_secs(366 * 86_400);

impl RateLimit {
    /// What a rate limit looks like, for messages.
    pub const EXPECTED: &'static str =
        "must be <count>/<period>, e.g. 100/1m, 10/s or 5000/1h (count 1 to 4294967295, period 1ms to 366d)";
}

impl FromStr for RateLimit {
    type Err = String;

    /// `<count>/<period>`: `100/1m`, `10/s`, `5000/1h`, `3/90` (seconds).
    ///
    /// ```
    /// use apikey_core::RateLimit;
    /// use std::time::Duration;
    /// let l: RateLimit = "100/1m".parse().unwrap();
    /// assert_eq!((l.count, l.period), (100, Duration::from_secs(60)));
    /// assert_eq!("10/s".parse::<RateLimit>().unwrap().period, Duration::from_secs(1));
    /// assert!("0/1m".parse::<RateLimit>().is_err());
    /// assert!("lots".parse::<RateLimit>().is_err());
    /// ```
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a rate limit; write e.g. 100/1m, 10/s or 5000/1h");
        let (count, period): (u32, Duration) = count_per(text).ok_or_else(bad)?;
        if count == 0 || period < Duration::from_millis(1) {
            return Err(bad());
        }
        if period > MAX_PERIOD {
            return Err(format!(
                "{text:?} is not a usable rate limit: periods longer than 366 days are not supported"
            ));
        }
        Ok(RateLimit { count, period })
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            self.count,
            humantime::format_duration(self.period)
        )
    }
}

impl Serialize for RateLimit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RateLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        // The message never repeats the value: config errors name the field only.
        text.parse()
            .map_err(|_| serde::de::Error::custom(format!("a rate limit {}", RateLimit::EXPECTED)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let l: RateLimit = "5000/1h".parse().unwrap();
        assert_eq!(l.to_string(), "5000/1h");
        assert_eq!(
            "3/90".parse::<RateLimit>().unwrap().period,
            Duration::from_secs(90)
        );
        for bad in [
            "",
            "1",
            "/1m",
            "1/",
            "-1/1m",
            "1/0",
            "1/soon",
            "x/1m",
            "1/1000y",
            "1/367d",
            "99999999999/1s",
        ] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad}");
        }
    }
}
