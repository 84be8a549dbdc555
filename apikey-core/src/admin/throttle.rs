//! Failures counted per client (or per tried key) in a fixed window: past the limit, whoever
//! it is is refused for the rest of the window, whatever it sends. What the admin page's logins
//! and the leak-report endpoint's refused reports are limited by.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures per name (an address, a key's digest prefix) in a window, for at most a bounded
/// number of names (the oldest windows are dropped first).
pub struct Failures {
    window: Duration,
    limit: u32,
    remembered: usize,
    counts: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Failures {
    /// `limit` failures per name in `window`, remembering at most `remembered` names.
    pub fn new(limit: u32, window: Duration, remembered: usize) -> Self {
        Failures {
            window,
            limit,
            remembered: remembered.max(1),
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// Seconds until `name` may try again, when it is over its limit (at least 1).
    pub fn blocked(&self, name: &str) -> Option<u64> {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let (n, since) = counts.get(name).copied()?;
        let left = self.window.checked_sub(since.elapsed())?;
        (n >= self.limit).then(|| left.as_secs().max(1))
    }

    /// Counts a failure of `name`.
    pub fn failed(&self, name: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.len() >= self.remembered && !counts.contains_key(name) {
            let window = self.window;
            counts.retain(|_, (_, since)| since.elapsed() < window);
            if counts.len() >= self.remembered {
                if let Some(oldest) = counts
                    .iter()
                    .min_by_key(|(_, (_, since))| *since)
                    .map(|(k, _)| k.clone())
                {
                    counts.remove(&oldest);
                }
            }
        }
        let entry = counts.entry(name.to_owned()).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= self.window {
            *entry = (0, Instant::now());
        }
        entry.0 = entry.0.saturating_add(1);
    }
}

impl std::fmt::Debug for Failures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Failures")
            .field("window", &self.window)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_limit_a_name_waits_for_its_window() {
        let f = Failures::new(3, Duration::from_secs(60), 2);
        for _ in 0..2 {
            f.failed("a");
        }
        assert_eq!(f.blocked("a"), None);
        f.failed("a");
        assert!(f.blocked("a").is_some_and(|s| (1..=60).contains(&s)));
        assert_eq!(f.blocked("b"), None);
        // Bounded: a third name pushes the oldest out.
        f.failed("b");
        f.failed("c");
        assert_eq!(f.blocked("a"), None);
    }
}
