//! Failed admin logins, counted per client address and per tried key: past the limit, a
//! client (or a key) is refused for the rest of the window, whatever it sends.

use std::time::Duration;

use crate::admin::Failures;
use crate::KeyDigest;

/// The window failures are counted in.
const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failed logins allowed per client address in a window.
const PER_CLIENT: u32 = 10;
/// Failed logins allowed per tried key in a window.
const PER_KEY: u32 = 5;
/// Most addresses and keys remembered (the oldest windows are dropped first).
const REMEMBERED: usize = 10_000;

/// The failed logins of one service.
pub(crate) struct Throttle {
    clients: Failures,
    keys: Failures,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            clients: Failures::new(PER_CLIENT, WINDOW, REMEMBERED),
            keys: Failures::new(PER_KEY, WINDOW, REMEMBERED),
        }
    }
}

fn key_of(digest: &KeyDigest) -> String {
    crate::key::hex(&digest.as_bytes()[..16])
}

impl Throttle {
    /// Seconds until `client` (or the tried key) may try again, when it is over its limit.
    pub(crate) fn blocked(&self, client: &str, tried: Option<&KeyDigest>) -> Option<u64> {
        self.clients
            .blocked(client)
            .or_else(|| tried.and_then(|d| self.keys.blocked(&key_of(d))))
    }

    /// Counts a failed login (against the tried key too, when given).
    pub(crate) fn failed(&self, client: &str, tried: Option<&KeyDigest>) {
        self.clients.failed(client);
        if let Some(d) = tried {
            self.keys.failed(&key_of(d));
        }
    }
}
