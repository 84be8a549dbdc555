//! Where the verifier reads the time: the time of day (key expiry, rotation grace, usage
//! minutes) and a monotonic count (how long a cached answer has been kept). [`SystemClock`] in
//! production; [`ManualClock`] in tests, moved forward by hand, so that a test of an expiry or
//! a cache's time to live waits for nothing.

use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of time for a [`Verifier`](crate::Verifier).
pub trait Clock: Send + Sync + fmt::Debug {
    /// Seconds since the Unix epoch (the time of day; may jump when the system's clock is set).
    fn unix_secs(&self) -> i64;

    /// Time elapsed since a fixed start (never goes back): what time-to-live checks count.
    fn monotonic(&self) -> Duration;

    /// Both readings at one instant: what a verification reads, once per request. By default
    /// each is asked; [`SystemClock`] reads the system's clock once.
    fn now(&self) -> Reading {
        Reading {
            unix_secs: self.unix_secs(),
            monotonic: self.monotonic(),
        }
    }
}

/// A clock's two readings at one instant ([`Clock::now`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// Seconds since the Unix epoch.
    pub unix_secs: i64,
    /// Time elapsed since the clock's fixed start.
    pub monotonic: Duration,
}

/// A shared clock, as the verifier holds it.
pub type SharedClock = Arc<dyn Clock>;

/// The system's clocks: `SystemTime` for the time of day, `Instant` for durations.
///
/// [`now`](Clock::now) reads `Instant` only, and the time of day as the monotonic count plus
/// their difference, which is read again from `SystemTime` whenever the monotonic count enters
/// a new second: a request reads the system's clock once, and a time of day set by hand is seen
/// within a second.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

/// The time of day minus the monotonic count, in nanoseconds, as last read.
static DAY_OFFSET_NANOS: AtomicI64 = AtomicI64::new(0);
/// The monotonic second in which [`DAY_OFFSET_NANOS`] was read (`u64::MAX`: never).
static DAY_OFFSET_SECOND: AtomicU64 = AtomicU64::new(u64::MAX);

/// Nanoseconds since the Unix epoch (an `i64` holds them until the year 2262).
fn unix_nanos() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

impl Clock for SystemClock {
    fn unix_secs(&self) -> i64 {
        // Before 1970 reads as 1970, as ever.
        unix_nanos().div_euclid(1_000_000_000).max(0)
    }

    fn monotonic(&self) -> Duration {
        static START: OnceLock<Instant> = OnceLock::new();
        START.get_or_init(Instant::now).elapsed()
    }

    fn now(&self) -> Reading {
        let monotonic = self.monotonic();
        let second = monotonic.as_secs();
        // Nanoseconds since the start: an `i64` holds 292 years of them.
        let mono_nanos = i64::try_from(monotonic.as_nanos()).unwrap_or(i64::MAX);
        let offset = if DAY_OFFSET_SECOND.load(Ordering::Acquire) == second {
            DAY_OFFSET_NANOS.load(Ordering::Relaxed)
        } else {
            let offset = unix_nanos().saturating_sub(mono_nanos);
            DAY_OFFSET_NANOS.store(offset, Ordering::Relaxed);
            DAY_OFFSET_SECOND.store(second, Ordering::Release);
            offset
        };
        Reading {
            unix_secs: mono_nanos.saturating_add(offset).div_euclid(1_000_000_000),
            monotonic,
        }
    }
}

/// A clock that moves only when told: [`advance`](Self::advance) moves both the time of day and
/// the monotonic count. Clones share one time.
///
/// ```
/// use std::time::Duration;
/// use apikey_core::clock::{Clock, ManualClock};
/// let clock = ManualClock::starting_now();
/// let before = clock.unix_secs();
/// clock.advance(Duration::from_secs(90));
/// assert_eq!(clock.unix_secs(), before + 90);
/// assert_eq!(clock.monotonic(), Duration::from_secs(90));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<ManualTime>);

#[derive(Debug)]
struct ManualTime {
    unix_secs: AtomicI64,
    /// Nanoseconds moved since the clock was made.
    moved_nanos: AtomicU64,
}

impl ManualClock {
    /// A clock reading `unix_secs` until moved.
    pub fn at(unix_secs: i64) -> Self {
        ManualClock(Arc::new(ManualTime {
            unix_secs: AtomicI64::new(unix_secs),
            moved_nanos: AtomicU64::new(0),
        }))
    }

    /// A clock reading the system's time of day now, until moved.
    pub fn starting_now() -> Self {
        Self::at(SystemClock.unix_secs())
    }

    /// Moves the clock forward by `by` (whole seconds for the time of day; the monotonic count
    /// moves by exactly `by`).
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let before = self.0.moved_nanos.fetch_add(nanos, Ordering::SeqCst);
        // The time of day moves by the whole seconds crossed, so that sub-second steps add up.
        let secs = (before.saturating_add(nanos) / 1_000_000_000) - (before / 1_000_000_000);
        self.0
            .unix_secs
            .fetch_add(i64::try_from(secs).unwrap_or(i64::MAX), Ordering::SeqCst);
    }

    /// This clock as the verifier takes it.
    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }
}

impl Clock for ManualClock {
    fn unix_secs(&self) -> i64 {
        self.0.unix_secs.load(Ordering::SeqCst)
    }

    fn monotonic(&self) -> Duration {
        Duration::from_nanos(self.0.moved_nanos.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_second_steps_add_up_on_both_readings() {
        let clock = ManualClock::at(1_000);
        for _ in 0..4 {
            clock.advance(Duration::from_millis(250));
        }
        assert_eq!(clock.unix_secs(), 1_001);
        assert_eq!(clock.monotonic(), Duration::from_secs(1));
        clock.advance(Duration::from_millis(1_500));
        assert_eq!(clock.unix_secs(), 1_002);
        clock.advance(Duration::from_millis(500));
        assert_eq!(clock.unix_secs(), 1_003);
        let other = clock.clone();
        other.advance(Duration::from_secs(10));
        assert_eq!(clock.unix_secs(), 1_013, "clones share one time");
    }

    #[test]
    fn one_reading_agrees_with_the_two() {
        for _ in 0..3 {
            let before = SystemClock.unix_secs();
            let reading = SystemClock.now();
            let after = SystemClock.unix_secs();
            // Within a second: the two system clocks may run at slightly different rates.
            assert!(
                (before - 1..=after + 1).contains(&reading.unix_secs),
                "{before} <= {} <= {after}",
                reading.unix_secs
            );
            assert!(reading.monotonic <= SystemClock.monotonic());
        }
        let clock = ManualClock::at(5_000);
        clock.advance(Duration::from_secs(3));
        assert_eq!(
            clock.now(),
            Reading {
                unix_secs: 5_003,
                monotonic: Duration::from_secs(3)
            }
        );
    }

    #[test]
    fn the_system_clock_moves_forward() {
        let a = SystemClock.monotonic();
        let b = SystemClock.monotonic();
        assert!(b >= a);
        assert!(SystemClock.unix_secs() > 1_700_000_000);
    }
}
