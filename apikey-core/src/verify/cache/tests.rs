//! The caches alone: generations, capacity, expiry, changes racing inserts.
use super::*;
use crate::clock::{Clock, ManualClock, SharedClock, SystemClock};
use crate::key::KeyHasher;

fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// The system clock's monotonic reading now.
fn now() -> Duration {
    SystemClock.monotonic()
}

/// A test hook run inside `insert_if`, right after the generation check, with the shard
/// lock held: where a change racing the insert must not slip in.
pub(super) mod hook {
    use std::cell::RefCell;

    thread_local! {
        static HOOK: RefCell<Option<Box<dyn FnOnce()>>> = const { RefCell::new(None) };
    }

    pub fn set(f: impl FnOnce() + 'static) {
        HOOK.with(|h| *h.borrow_mut() = Some(Box::new(f)));
    }

    pub fn run() {
        if let Some(f) = HOOK.with(|h| h.borrow_mut().take()) {
            f();
        }
    }
}

fn valid(name: &str) -> Valid {
    Valid::new(Identity::new("u", name, name, &[] as &[&str]), None, false)
}

#[test]
fn an_insert_from_before_a_change_is_refused() {
    let c = Caches::new(Duration::from_secs(60), Duration::from_secs(60), &system());
    let g = c.generation();
    c.apply(&Change::Key("k".into()));
    c.remember(d(1), valid("k"), g, 0);
    c.remember_unknown(d(2), g);
    assert!(c.get(&d(1), 0, now()).is_none());
    assert!(!c.is_known_unknown(&d(2), now()));
}

/// The change lands between the generation check and the insert (the window the old
/// check-then-lock code had): the change must still win. The hook parks the inserting
/// thread right after its check and runs the change on another thread; with the check
/// under the shard lock that change waits for the insert and then drops the entry.
#[test]
fn a_change_racing_an_insert_always_wins() {
    use std::sync::mpsc;
    use std::sync::Arc;
    for negative in [false, true] {
        let c = Arc::new(Caches::new(
            Duration::from_secs(60),
            Duration::from_secs(60),
            &system(),
        ));
        let g = c.generation();
        let (done_tx, done_rx) = mpsc::channel();
        let change_thread = Arc::new(std::sync::Mutex::new(None));
        let slot = Arc::clone(&change_thread);
        let racer = Arc::clone(&c);
        hook::set(move || {
            let handle = std::thread::spawn(move || {
                racer.apply(&Change::Key("k".into()));
                let _ = done_tx.send(());
            });
            *slot.lock().unwrap() = Some(handle);
            // With the lock held here the change cannot finish; give it every chance to.
            let finished_first = done_rx.recv_timeout(Duration::from_millis(200)).is_ok();
            assert!(
                !finished_first,
                "the change ran while an insert held its check"
            );
        });
        if negative {
            c.remember_unknown(d(1), g);
        } else {
            c.remember(d(1), valid("k"), g, 0);
        }
        let handle = change_thread.lock().unwrap().take().expect("the hook ran");
        handle.join().unwrap();
        assert!(c.get(&d(1), 0, now()).is_none(), "stale valid entry");
        assert!(!c.is_known_unknown(&d(1), now()), "stale unknown entry");
    }
}

fn d(i: u32) -> KeyDigest {
    KeyHasher::new(None).digest(&i.to_string())
}

#[test]
fn entries_expire_after_their_ttl() {
    let clock = ManualClock::starting_now();
    let s: Shards<u32> = Shards::new(10, Duration::from_secs(2), clock.shared());
    s.insert(d(1), 1, 0);
    assert_eq!(s.get(&d(1), clock.monotonic()), Some(1));
    clock.advance(Duration::from_millis(1_999));
    assert_eq!(
        s.get(&d(1), clock.monotonic()),
        Some(1),
        "kept for its whole time to live"
    );
    clock.advance(Duration::from_millis(1));
    assert_eq!(s.get(&d(1), clock.monotonic()), None);
}

#[test]
fn uses_are_noted_once_a_minute() {
    let s: Shards<u32> = Shards::new(10, Duration::from_secs(60), system());
    s.insert(d(1), 1, 7);
    assert_eq!(
        s.get_noting(&d(1), 7, now()),
        Some((1, false)),
        "noted when inserted"
    );
    assert_eq!(s.get_noting(&d(1), 8, now()), Some((1, true)));
    assert_eq!(s.get_noting(&d(1), 8, now()), Some((1, false)));
}

#[test]
fn capacity_is_bounded() {
    let s: Shards<u32> = Shards::new(SHARDS * 2, Duration::from_secs(60), system());
    for i in 0..10_000 {
        s.insert(d(i), i, 0);
    }
    assert!(s.len() <= SHARDS * 2, "{}", s.len());
    assert_eq!(
        s.get(&d(9_999), now()),
        Some(9_999),
        "the newest entry is kept"
    );
}
