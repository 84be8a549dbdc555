//! Digests of keys: what is stored and looked up instead of the key.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest as _, Sha256};

use subtle::ConstantTimeEq;

use super::Secret;

/// The SHA-256 (or HMAC-SHA256, with a pepper) digest of a key. Only digests are stored.
///
/// `Debug` does not print the bytes: a digest of a key is as good as the key for an offline
/// attacker who can guess it, so it stays out of logs too.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyDigest([u8; 32]);

impl KeyDigest {
    /// Wraps raw digest bytes (as read from a store).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        KeyDigest(bytes)
    }

    /// Reads a digest from a slice; `None` unless it is exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        Some(KeyDigest(bytes.try_into().ok()?))
    }

    /// The raw bytes, for storing.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Constant-time equality.
    pub fn ct_eq(&self, other: &KeyDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    /// Reads a digest written as 64 hex digits (what [`hex`] writes); `None` otherwise.
    #[cfg(feature = "admin")]
    pub(crate) fn from_hex(text: &str) -> Option<Self> {
        if text.len() != 64 || !text.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(KeyDigest(bytes))
    }
}

/// `bytes` as lower-case hex digits (digests, tokens and key identifiers in text).
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(2 * bytes.len()), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyDigest([redacted])")
    }
}

/// Computes key digests: SHA-256, or HMAC-SHA256 keyed by the configured pepper.
#[derive(Clone)]
pub struct KeyHasher {
    pepper: Option<Hmac<Sha256>>,
}

impl fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyHasher")
            .field("peppered", &self.pepper.is_some())
            .finish()
    }
}

impl KeyHasher {
    /// A hasher with an optional pepper. An empty pepper counts as none.
    pub fn new(pepper: Option<&Secret>) -> Self {
        let pepper = pepper.filter(|p| !p.is_empty()).map(|p| {
            // HMAC accepts keys of any length, so this cannot fail.
            <Hmac<Sha256> as Mac>::new_from_slice(p.expose().as_bytes())
                .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
        });
        KeyHasher { pepper }
    }

    /// The digest of `key`.
    ///
    /// ```
    /// use apikey_core::KeyHasher;
    /// let plain = KeyHasher::new(None);
    /// assert_eq!(plain.digest("a"), plain.digest("a"));
    /// assert_ne!(plain.digest("a"), plain.digest("b"));
    /// let peppered = KeyHasher::new(Some(&apikey_core::Secret::new("pepper")));
    /// assert_ne!(plain.digest("a"), peppered.digest("a"));
    /// ```
    pub fn digest(&self, key: &str) -> KeyDigest {
        match &self.pepper {
            None => KeyDigest(Sha256::digest(key.as_bytes()).into()),
            Some(mac) => {
                let mut mac = mac.clone();
                mac.update(key.as_bytes());
                KeyDigest(mac.finalize().into_bytes().into())
            }
        }
    }
}
