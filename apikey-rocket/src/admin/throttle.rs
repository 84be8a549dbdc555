//! Failed admin logins, counted per client address and per tried key: past the limit, a
//! client (or a key) is refused for the rest of the window, whatever it sends.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use apikey_core::KeyDigest;

/// The window failures are counted in.
const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failed logins allowed per client address in a window.
const PER_CLIENT: u32 = 10;
/// Failed logins allowed per tried key in a window.
const PER_KEY: u32 = 5;
/// Most addresses and keys remembered (the oldest windows are dropped first).
const REMEMBERED: usize = 10_000;

#[derive(Default)]
struct Counts(HashMap<String, (u32, Instant)>);

impl Counts {
    fn count(&self, what: &str) -> Option<(u32, Instant)> {
        self.0
            .get(what)
            .copied()
            .filter(|(_, since)| since.elapsed() < WINDOW)
    }

    fn add(&mut self, what: String) {
        if self.0.len() >= REMEMBERED {
            self.0.retain(|_, (_, since)| since.elapsed() < WINDOW);
            if self.0.len() >= REMEMBERED {
                if let Some(oldest) = self
                    .0
                    .iter()
                    .min_by_key(|(_, (_, since))| *since)
                    .map(|(k, _)| k.clone())
                {
                    self.0.remove(&oldest);
                }
            }
        }
        let entry = self.0.entry(what).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }
}

/// The failed logins of one service.
#[derive(Default)]
pub(crate) struct Throttle {
    clients: Mutex<Counts>,
    keys: Mutex<Counts>,
}

fn key_of(digest: &KeyDigest) -> String {
    digest.as_bytes()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Throttle {
    /// Seconds until `client` (or the tried key) may try again, when it is over its limit.
    pub(crate) fn blocked(&self, client: &str, tried: Option<&KeyDigest>) -> Option<u64> {
        let over = |counts: &Mutex<Counts>, what: &str, limit: u32| {
            let counts = counts.lock().unwrap_or_else(|e| e.into_inner());
            counts
                .count(what)
                .filter(|(n, _)| *n >= limit)
                .map(|(_, since)| WINDOW.saturating_sub(since.elapsed()).as_secs().max(1))
        };
        over(&self.clients, client, PER_CLIENT)
            .or_else(|| tried.and_then(|d| over(&self.keys, &key_of(d), PER_KEY)))
    }

    /// Counts a failed login.
    pub(crate) fn failed(&self, client: &str, tried: Option<&KeyDigest>) {
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .add(client.to_owned());
        if let Some(d) = tried {
            self.keys
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .add(key_of(d));
        }
    }
}
