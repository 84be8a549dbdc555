//! How stores announce changes: to the caches of this process synchronously, and to other
//! processes through the database (see each store).

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{broadcast, watch, Notify};

/// How a database store connects: its pool (`pool_size`, `pool_timeout`), and how its change
/// feed is kept and proven alive (`feed_heartbeat`, `feed_url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// How often the feed proves it is alive (`feed_heartbeat`): a PostgreSQL store notifies
    /// itself this often and its feed is not live once no notification arrived for two
    /// periods; an SQLite store's change check must answer within two periods.
    pub heartbeat: Duration,
    /// A direct PostgreSQL connection for `LISTEN` (`feed_url`), for a `database_url` that
    /// goes through a pooler; the store's own database when `None`.
    pub listen_url: Option<String>,
    /// Most connections the store's pool holds (`pool_size`, 8); the change feed's listener is
    /// one more, of its own.
    pub pool_size: u32,
    /// How long a store query waits for a free connection before it fails (→ 503)
    /// (`pool_timeout`, 3 s).
    pub pool_timeout: Duration,
    /// Whether opening a store whose schema is behind migrates it (`auto_migrate`, true);
    /// without, it is refused naming `apikey migrate`. A current store runs no DDL either way.
    pub auto_migrate: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            heartbeat: Duration::from_secs(5),
            listen_url: None,
            pool_size: 8,
            pool_timeout: Duration::from_secs(3),
            auto_migrate: true,
        }
    }
}

impl StoreOptions {
    /// The options the settings ask for.
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        StoreOptions {
            heartbeat: settings.feed_heartbeat,
            listen_url: settings.feed_url.clone(),
            pool_size: settings.pool_size.max(1),
            pool_timeout: settings.pool_timeout,
            auto_migrate: settings.auto_migrate,
        }
    }

    /// How long the feed may stay silent before it is no longer trusted.
    pub fn silence_limit(&self) -> Duration {
        self.heartbeat * 2
    }
}

/// A change to the stored keys, announced to running verifiers so caches drop what it touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The key with this name changed (created, revoked, activated, deleted, rotated).
    Key(String),
    /// Keys of this user changed (user disabled or enabled).
    User(String),
    /// Anything may have changed (a notification was lost): drop everything.
    All,
}

/// Something that must learn of changes synchronously (caches).
pub(crate) trait ChangeListener: Send + Sync {
    /// Called for every change, before the write that made it returns (for changes made in
    /// this process) or as soon as it is noticed (for changes made elsewhere).
    fn on_change(&self, change: &Change);
}

/// How a store announces changes: synchronously to listeners (so a cache never serves a key
/// after the call that revoked it returned), then to broadcast subscribers.
pub struct ChangeFeed {
    listeners: Mutex<Vec<Weak<dyn ChangeListener>>>,
    broadcast: broadcast::Sender<Change>,
    /// False while changes made elsewhere may go unnoticed (notification connection lost,
    /// change check failing): what is derived from the feed must not be trusted meanwhile.
    live: AtomicBool,
    /// Whether the store polls for changes and can be asked to check at once (SQLite).
    polls: AtomicBool,
    /// Checks asked for so far (`check_now`), and the poller's wake-up.
    requested: AtomicU64,
    poke: Notify,
    /// The last request the poller's finished checks had seen when they started.
    checked: watch::Sender<u64>,
}

impl fmt::Debug for ChangeFeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangeFeed").finish_non_exhaustive()
    }
}

/// A feed that is not live until its store says so ([`ChangeFeed::set_live`]): a store that
/// cannot hear of changes made elsewhere must never have caches and a digest filter trusted
/// on its word.
impl Default for ChangeFeed {
    fn default() -> Self {
        ChangeFeed {
            listeners: Mutex::new(Vec::new()),
            broadcast: broadcast::channel(1024).0,
            live: AtomicBool::new(false),
            polls: AtomicBool::new(false),
            requested: AtomicU64::new(0),
            poke: Notify::new(),
            checked: watch::channel(0).0,
        }
    }
}

impl ChangeFeed {
    /// A feed that is live from the start: for a store whose every change goes through it
    /// (in memory), or that starts following changes made elsewhere from a known position.
    pub fn live() -> Self {
        let feed = ChangeFeed::default();
        feed.live.store(true, Ordering::Release);
        feed
    }

    /// Announces a change to every live listener, then to subscribers.
    pub fn announce(&self, change: Change) {
        let listeners: Vec<Arc<dyn ChangeListener>> = {
            let mut all = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
            all.retain(|l| l.strong_count() > 0);
            all.iter().filter_map(Weak::upgrade).collect()
        };
        for l in listeners {
            l.on_change(&change);
        }
        // No subscriber is not an error.
        let _ = self.broadcast.send(change);
    }

    /// Registers a listener for as long as it lives.
    pub(crate) fn listen(&self, listener: Weak<dyn ChangeListener>) {
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(listener);
    }

    /// Whether every change made elsewhere reaches this feed right now.
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Marks the feed as missing changes (`false`) or as complete again (`true`). Going back
    /// to live announces [`Change::All`] first, since changes may have been missed.
    pub fn set_live(&self, live: bool) {
        if live {
            if !self.live.load(Ordering::Acquire) {
                self.announce(Change::All);
                self.live.store(true, Ordering::Release);
            }
        } else {
            // Caches keep what they hold (their TTL bounds it); consumers that need every
            // change check `is_live`.
            self.live.store(false, Ordering::Release);
        }
    }

    /// Asks a store that polls for changes (SQLite) to check at once, and waits (at most
    /// `within`) for a check that started after this call: `true` when one finished, and every
    /// change it found was announced. `false` at once for feeds that do not poll (PostgreSQL
    /// hears its changes pushed; the memory store announces as it writes).
    pub async fn check_now(&self, within: Duration) -> bool {
        if !self.polls.load(Ordering::Acquire) {
            return false;
        }
        let mut done = self.checked.subscribe();
        let mine = self.requested.fetch_add(1, Ordering::AcqRel) + 1;
        self.poke.notify_one();
        tokio::time::timeout(within, done.wait_for(|seen| *seen >= mine))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Whether the store polls for changes (SQLite), so that [`check_now`](Self::check_now)
    /// can find one; `false` for feeds that hear every change as it is made.
    pub fn polls(&self) -> bool {
        self.polls.load(Ordering::Acquire)
    }

    /// For a store's poller: it takes `check_now` requests.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn attach_poller(&self) {
        self.polls.store(true, Ordering::Release);
    }

    /// For a store's poller: resolves when a check is asked for.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) async fn poked(&self) {
        self.poke.notified().await;
    }

    /// For a store's poller, as a check starts: the requests it serves.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn check_starts(&self) -> u64 {
        self.requested.load(Ordering::Acquire)
    }

    /// For a store's poller, as a check ends (announcements made): wakes the requests it
    /// served.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn check_done(&self, served: u64) {
        self.checked.send_if_modified(|seen| {
            let newer = served > *seen;
            if newer {
                *seen = served;
            }
            newer
        });
    }

    /// A receiver of the changes announced from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.broadcast.subscribe()
    }
}
