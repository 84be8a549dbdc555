//! The caches alone: generations, capacity, expiry, changes racing inserts.
use super::*;
use crate::clock::{Clock, ManualClock, Reading, SharedClock, SystemClock};
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

/// The system clock's reading now.
fn reading() -> Reading {
    SystemClock.now()
}

/// Plain values for the shards' own tests: nothing noted on them.
impl Entry for u32 {
    fn identity(&self) -> Option<&Identity> {
        None
    }

    fn counted_here(&self, _: i64) -> bool {
        false
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
    assert_eq!(c.remember(d(1), valid("k"), g, reading(), true), None);
    c.remember_unknown(d(2), g);
    assert!(c.get(&d(1), reading(), false).is_none());
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
            c.remember(d(1), valid("k"), g, reading(), true);
        }
        let handle = change_thread.lock().unwrap().take().expect("the hook ran");
        handle.join().unwrap();
        assert!(
            c.get(&d(1), reading(), false).is_none(),
            "stale valid entry"
        );
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

/// The counts an entry holds, as the writer takes them: (tech name, day, accepted).
fn counts(c: &Caches) -> Vec<(String, i64, u64)> {
    let mut out = Vec::new();
    for part in 0..c.parts() {
        c.take_counts(part, &mut out);
    }
    out.sort_by(|a, b| (&a.0, a.1.day).cmp(&(&b.0, b.1.day)));
    out.into_iter()
        .map(|(tech, day)| {
            assert_eq!((day.forbidden, day.limited), (0, 0));
            (tech, day.day, day.accepted)
        })
        .collect()
}

fn used(c: &Caches) -> Vec<String> {
    let mut out = Vec::new();
    let mut walk = c.used_walk();
    while c.take_used(&mut walk, &mut out) {}
    out.sort();
    out
}

#[test]
fn a_key_without_limits_is_counted_on_its_entry() {
    let clock = ManualClock::starting_now();
    let c = Caches::new(
        Duration::from_secs(3 * 86_400),
        Duration::from_secs(60),
        &clock.shared(),
    );
    let day = clock.now().unix_secs.div_euclid(86_400);
    let g = c.generation();
    assert_eq!(
        c.remember(d(1), valid("k"), g, clock.now(), true),
        Some(true)
    );
    assert_eq!(c.get(&d(1), clock.now(), true).map(|v| v.1), Some(true));
    assert_eq!(
        c.get(&d(1), clock.now(), false).map(|v| v.1),
        Some(false),
        "an administrative look counts nothing"
    );
    // A key with an allowlist too; a request refused for its address is taken back.
    let allow = AllowIp::parse(&["10.0.0.0/8"]).unwrap();
    let bound = valid("bound").with_limits(None, &allow);
    assert_eq!(c.remember(d(2), bound, g, clock.now(), true), Some(true));
    assert_eq!(c.get(&d(2), clock.now(), true).map(|v| v.1), Some(true));
    assert!(c.uncount(&d(2), clock.now().unix_secs));
    // An expired key is not counted (verification refuses it).
    let over = Valid::new(
        Identity::new("u", "over", "over", &[] as &[&str]),
        Some(1),
        false,
    );
    assert_eq!(c.remember(d(3), over, g, clock.now(), true), Some(false));
    assert_eq!(
        counts(&c),
        [("bound".to_owned(), day, 1), ("k".to_owned(), day, 2)]
    );
    assert_eq!(counts(&c), [], "taken once");
    assert!(
        !c.uncount(&d(2), clock.now().unix_secs),
        "written: nothing left to take back"
    );
    // A new day sets the previous one's count aside.
    c.get(&d(1), clock.now(), true);
    clock.advance(Duration::from_secs(86_400));
    c.get(&d(1), clock.now(), true);
    c.get(&d(1), clock.now(), true);
    assert_eq!(
        counts(&c),
        [("k".to_owned(), day, 1), ("k".to_owned(), day + 1, 2)]
    );
    // An entry dropped by a change leaves its count behind.
    c.get(&d(1), clock.now(), true);
    c.apply(&Change::Key("k".into()));
    assert!(c.get(&d(1), clock.now(), true).is_none());
    assert_eq!(counts(&c), [("k".to_owned(), day + 1, 1)]);
}

#[test]
fn uses_are_taken_from_the_entries_and_from_those_dropped() {
    let clock = ManualClock::starting_now();
    let c = Caches::new(
        Duration::from_secs(600),
        Duration::from_secs(60),
        &clock.shared(),
    );
    let g = c.generation();
    c.remember(d(1), valid("a"), g, clock.now(), true);
    c.remember(d(2), valid("b"), g, clock.now(), false);
    assert_eq!(used(&c), ["a"], "b was only looked at");
    clock.advance(Duration::from_secs(60));
    // The minute of the last take is taken again (a use may have come after the walk).
    assert_eq!(used(&c), ["a"]);
    assert_eq!(used(&c), [] as [&str; 0]);
    c.get(&d(2), clock.now(), true);
    c.get(&d(1), clock.now(), false);
    assert_eq!(used(&c), ["b"]);
    clock.advance(Duration::from_secs(60));
    c.get(&d(1), clock.now(), true);
    // Dropped before the writer came: its use is still written (b's again: it was used in
    // the minute of the last take).
    c.forget(&d(1));
    assert_eq!(used(&c), ["a", "b"]);
    // Expired entries replaced by a fresh lookup leave theirs too.
    clock.advance(Duration::from_secs(120));
    c.get(&d(2), clock.now(), true);
    clock.advance(Duration::from_secs(600));
    let g = c.generation();
    c.remember(d(2), valid("b"), g, clock.now(), false);
    assert_eq!(used(&c), ["b"]);
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

#[test]
fn an_entry_stays_small() {
    // 16 bytes of tag beside each: 72 bytes a bucket.
    assert!(std::mem::size_of::<Option<Slot<Valid>>>() <= 56);
}

/// Requests counted on entries from several threads, while the writer takes counts and
/// changes drop and re-add entries: every request counted is taken exactly once.
#[test]
fn counts_taken_while_counting_lose_nothing_and_double_nothing() {
    use std::sync::atomic::AtomicU64;
    let c = Arc::new(Caches::new(
        Duration::from_secs(600),
        Duration::from_secs(60),
        &system(),
    ));
    let counted = Arc::new(AtomicU64::new(0));
    let add = |c: &Caches, i: u32| {
        c.remember(
            d(i),
            valid(&format!("k{i}")),
            c.generation(),
            reading(),
            false,
        );
    };
    for i in 0..8 {
        add(&c, i);
    }
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (c, counted) = (Arc::clone(&c), Arc::clone(&counted));
            std::thread::spawn(move || {
                for n in 0..20_000u32 {
                    let i = (n + w) % 8;
                    if c.get(&d(i), reading(), true).is_some_and(|(_, yes)| yes) {
                        counted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let mut taken = 0;
    let mut round = 0u32;
    while workers.iter().any(|w| !w.is_finished()) {
        taken += counts(&c).iter().map(|(_, _, n)| n).sum::<u64>();
        // A change drops a key's entries (leaving their counts); a lookup brings it back.
        let i = round % 8;
        c.apply(&Change::Key(format!("k{i}")));
        add(&c, i);
        round += 1;
    }
    for w in workers {
        w.join().unwrap();
    }
    taken += counts(&c).iter().map(|(_, _, n)| n).sum::<u64>();
    assert!(round > 0);
    assert_eq!(taken, counted.load(Ordering::Relaxed));
}
