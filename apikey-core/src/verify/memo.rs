//! The digests of keys presented lately, so that a key presented again costs a keyed hash of
//! a few hundred instructions instead of the format check and SHA-256 (thousands): the digest is
//! a pure function of the key (and the pepper), so a memo of it is never stale, whatever
//! happens to the key — revocation, expiry and the rest are decided after it, on the digest,
//! as ever.
//!
//! A slot holds a key's 128-bit SipHash-1-3 tag, under a random key drawn at start, and the
//! digest; the key itself is never kept. Without the random key nobody can make two keys share
//! a tag (a PRF's output, 128 bits). The memo is a fixed array, one slot per tag's low bits:
//! a new key simply takes its slot, so a spray costs its memory nothing.

use std::hash::Hasher;
use std::sync::Mutex;

use siphasher::sip128::{Hasher128, SipHasher13};

use crate::key::KeyDigest;

/// How many slots the memo has (a power of two): 1 MiB.
const SLOTS: usize = 1 << 14;

/// One key's tag and digest.
type Slot = Option<(u128, KeyDigest)>;

pub(crate) struct DigestMemo {
    key: [u8; 16],
    slots: Box<[Mutex<Slot>]>,
}

impl DigestMemo {
    /// An empty memo under a random key.
    pub(crate) fn new() -> Self {
        let mut key = [0u8; 16];
        getrandom::fill(&mut key).expect("the OS random generator works");
        DigestMemo {
            key,
            slots: (0..SLOTS).map(|_| Mutex::new(None)).collect(),
        }
    }

    /// The tag of a presented key.
    pub(crate) fn tag(&self, key: &str) -> u128 {
        let mut h = SipHasher13::new_with_key(&self.key);
        h.write(key.as_bytes());
        h.finish128().as_u128()
    }

    fn slot(&self, tag: u128) -> &Mutex<Slot> {
        &self.slots[(tag as usize) & (SLOTS - 1)]
    }

    /// The digest of the key of this tag, if it was presented lately.
    pub(crate) fn get(&self, tag: u128) -> Option<KeyDigest> {
        match *self.slot(tag).lock().unwrap_or_else(|e| e.into_inner()) {
            Some((t, digest)) if t == tag => Some(digest),
            _ => None,
        }
    }

    /// Notes the digest of the key of this tag (in place of whatever held its slot).
    pub(crate) fn put(&self, tag: u128, digest: KeyDigest) {
        *self.slot(tag).lock().unwrap_or_else(|e| e.into_inner()) = Some((tag, digest));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_keyed_and_slots_are_exact() {
        let a = DigestMemo::new();
        let b = DigestMemo::new();
        assert_ne!(a.tag("ak_key"), b.tag("ak_key"), "a random key per memo");
        assert_eq!(a.tag("ak_key"), a.tag("ak_key"));
        let digest = crate::KeyHasher::new(None).digest("ak_key");
        let tag = a.tag("ak_key");
        assert_eq!(a.get(tag), None);
        a.put(tag, digest);
        assert_eq!(a.get(tag), Some(digest));
        // Another tag of the same slot is not taken for it.
        let other = tag ^ (1 << 100);
        assert_eq!(a.get(other), None);
        a.put(other, crate::KeyHasher::new(None).digest("other"));
        assert_eq!(a.get(tag), None, "the slot went to the newer key");
    }
}
