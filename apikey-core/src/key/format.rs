//! The key format: `<prefix>_<secret><checksum>`, and the checks that reject bad keys early.

use std::fmt;

use super::Secret;

/// Length of the random part of a generated key: 32 bytes as two zero-padded base62 `u128`s.
pub(crate) const SECRET_LEN: usize = 44;
/// Length of the checksum: CRC32 in zero-padded base62.
pub(crate) const CHECKSUM_LEN: usize = 6;
/// Longest header value ever looked up; anything longer is rejected before hashing.
pub const MAX_KEY_LEN: usize = 512;
/// Characters of the secret shown in a display stub.
const STUB_SECRET_CHARS: usize = 4;

/// Why a presented value can never be a valid key. Never carries the value itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Empty after trimming.
    #[error("the key is empty")]
    Empty,
    /// Longer than [`MAX_KEY_LEN`].
    #[error("the key is longer than {MAX_KEY_LEN} bytes")]
    TooLong,
    /// Holds a space, a control character or a non-ASCII character.
    #[error("the key holds characters that keys never contain")]
    BadCharacter,
    /// Carries our prefix but not the length or alphabet of a generated key.
    #[error("the key carries the generated-key prefix but not its shape")]
    BadShape,
    /// Carries our prefix but its checksum does not match.
    #[error("the key's checksum does not match")]
    BadChecksum,
}

/// The shape of a value that passed [`KeyFormat::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A key generated in our format (prefix, secret and valid checksum).
    Generated,
    /// Any other printable value: keys migrated from elsewhere, config sections.
    FreeForm,
}

/// A newly generated key: the secret (shown once) and its display stub.
#[derive(Clone)]
pub struct GeneratedKey {
    /// The full key. Show it once, then drop it.
    pub key: Secret,
    /// Prefix and the first secret characters, safe to display (`ak_3xZq`).
    pub stub: String,
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("key", &self.key)
            .field("stub", &self.stub)
            .finish()
    }
}

/// The key format with its prefix (`ak` by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFormat {
    prefix: String,
}

impl Default for KeyFormat {
    fn default() -> Self {
        KeyFormat {
            prefix: "ak".into(),
        }
    }
}

/// Whether `prefix` is usable: 1 to 16 lowercase ASCII letters or digits.
fn valid_prefix(prefix: &str) -> bool {
    (1..=16).contains(&prefix.len())
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn base62_padded(n: u128, width: usize) -> String {
    let digits = base62::encode(n);
    format!("{digits:0>width$}")
}

fn checksum(body: &str) -> String {
    base62_padded(u128::from(crc32fast::hash(body.as_bytes())), CHECKSUM_LEN)
}

impl KeyFormat {
    /// A format with the given prefix; `None` unless the prefix is 1 to 16 lowercase ASCII letters or digits.
    pub fn new(prefix: &str) -> Option<Self> {
        valid_prefix(prefix).then(|| KeyFormat {
            prefix: prefix.to_owned(),
        })
    }

    /// The prefix, without the underscore.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Generates a key from 32 bytes of the operating system's CSPRNG.
    ///
    /// ```
    /// use apikey_core::key::{KeyFormat, Shape};
    /// let format = KeyFormat::default();
    /// let generated = format.generate().unwrap();
    /// assert!(generated.key.expose().starts_with("ak_"));
    /// assert_eq!(format.check(generated.key.expose()), Ok(Shape::Generated));
    /// ```
    pub fn generate(&self) -> Result<GeneratedKey, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        let (hi, lo) = bytes.split_at(16);
        let mut hi_arr = [0u8; 16];
        let mut lo_arr = [0u8; 16];
        hi_arr.copy_from_slice(hi);
        lo_arr.copy_from_slice(lo);
        let secret = format!(
            "{}{}",
            base62_padded(u128::from_le_bytes(hi_arr), SECRET_LEN / 2),
            base62_padded(u128::from_le_bytes(lo_arr), SECRET_LEN / 2)
        );
        let body = format!("{}_{secret}", self.prefix);
        let key = format!("{body}{}", checksum(&body));
        let stub = format!("{}_{}", self.prefix, &secret[..STUB_SECRET_CHARS]);
        Ok(GeneratedKey {
            key: Secret::new(key),
            stub,
        })
    }

    /// The display stub of a key: for a generated key its prefix and first secret characters,
    /// for a free-form key only a fixed marker (a short free-form key would be given away).
    pub fn stub(&self, key: &str) -> String {
        match self.check(key) {
            Ok(Shape::Generated) => {
                let start = self.prefix.len() + 1;
                format!("{}_{}", self.prefix, &key[start..start + STUB_SECRET_CHARS])
            }
            _ => "(custom)".to_owned(),
        }
    }

    /// The length of the key a display stub was made of, when the stub says: a generated
    /// key's stub (`<prefix>_` and the secret's first characters, whatever the prefix) gives
    /// its key's length; a free-form key's marker, or anything else, `None`. Lets the
    /// verifier refuse a value of a length no stored key has before hashing it.
    ///
    /// ```
    /// use apikey_core::key::KeyFormat;
    /// let f = KeyFormat::default();
    /// let generated = f.generate().unwrap();
    /// let len = generated.key.expose().len();
    /// assert_eq!(KeyFormat::key_len_of_stub(&generated.stub), Some(len));
    /// assert_eq!(KeyFormat::key_len_of_stub(&f.stub("my_api_key")), None);
    /// ```
    pub fn key_len_of_stub(stub: &str) -> Option<usize> {
        let (prefix, start) = stub.split_once('_')?;
        (valid_prefix(prefix)
            && start.len() == STUB_SECRET_CHARS
            && start.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| prefix.len() + 1 + SECRET_LEN + CHECKSUM_LEN)
    }

    /// Checks a presented value without any lookup: printable ASCII, at most
    /// [`MAX_KEY_LEN`] bytes, and for values carrying our prefix, the exact shape and a valid
    /// checksum. A value failing here is never hashed or looked up.
    ///
    /// ```
    /// use apikey_core::key::{KeyFormat, Malformed, Shape};
    /// let f = KeyFormat::default();
    /// assert_eq!(f.check("my_api_key"), Ok(Shape::FreeForm));
    /// assert_eq!(f.check("ak_short"), Err(Malformed::BadShape));
    /// assert_eq!(f.check("has space"), Err(Malformed::BadCharacter));
    /// ```
    pub fn check(&self, value: &str) -> Result<Shape, Malformed> {
        let shape = self.check_form(value)?;
        if shape == Shape::Generated && !checksum_matches(value.as_bytes()) {
            return Err(Malformed::BadChecksum);
        }
        Ok(shape)
    }

    /// [`check`](Self::check) but for the checksum: for a caller that asked
    /// [`checksum_fails`](Self::checksum_fails) first, which has then checked the checksum of
    /// every value this calls `Generated`.
    pub(crate) fn check_form(&self, value: &str) -> Result<Shape, Malformed> {
        let bytes = value.as_bytes();
        if bytes.is_empty() {
            return Err(Malformed::Empty);
        }
        if bytes.len() > MAX_KEY_LEN {
            return Err(Malformed::TooLong);
        }
        // One pass over the bytes after the prefix (which is letters and digits already), each
        // byte's classes AND-ed without an early exit, so the loop stays branch-free.
        let after = self.after_prefix(bytes);
        let classes = after
            .unwrap_or(bytes)
            .iter()
            .fold(GRAPHIC | ALNUM, |acc, &b| acc & CLASSES[usize::from(b)]);
        if classes & GRAPHIC == 0 {
            return Err(Malformed::BadCharacter);
        }
        match after {
            None => Ok(Shape::FreeForm),
            Some(rest) if rest.len() == SECRET_LEN + CHECKSUM_LEN && classes & ALNUM != 0 => {
                Ok(Shape::Generated)
            }
            Some(_) => Err(Malformed::BadShape),
        }
    }

    /// Whether `value` has a generated key's prefix and length but not its checksum: the
    /// cheapest refusal there is (a CRC-32 of the body), asked before any hash of the value.
    /// `false` says nothing: [`check`](Self::check) decides the rest.
    pub fn checksum_fails(&self, value: &str) -> bool {
        let bytes = value.as_bytes();
        self.after_prefix(bytes)
            .is_some_and(|rest| rest.len() == SECRET_LEN + CHECKSUM_LEN)
            && !checksum_matches(bytes)
    }

    /// What follows `<prefix>_` in `bytes`, when they start with it.
    fn after_prefix<'a>(&self, bytes: &'a [u8]) -> Option<&'a [u8]> {
        bytes
            .strip_prefix(self.prefix.as_bytes())?
            .strip_prefix(b"_")
    }
}

/// Whether the last [`CHECKSUM_LEN`] characters of a key spell the CRC-32 of the rest. The
/// characters are fixed width, so the encoding is unique: decoding them and comparing numbers
/// avoids allocating the expected text.
fn checksum_matches(bytes: &[u8]) -> bool {
    let (body, sum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
    decode_base62(sum) == u64::from(crc32fast::hash(body))
}

/// The classes of a byte for [`KeyFormat::check`]: visible ASCII, and ASCII letter or digit.
const GRAPHIC: u8 = 1;
const ALNUM: u8 = 2;
const CLASSES: [u8; 256] = {
    let mut classes = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        if byte.is_ascii_graphic() {
            classes[b] |= GRAPHIC;
        }
        if byte.is_ascii_alphanumeric() {
            classes[b] |= ALNUM;
        }
        b += 1;
    }
    classes
};

/// The number a few base62 digits (`0-9A-Za-z`, the `base62` crate's alphabet) spell; the
/// caller checked they are letters and digits.
fn decode_base62(digits: &[u8]) -> u64 {
    digits.iter().fold(0u64, |n, &b| {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'A'..=b'Z' => b - b'A' + 10,
            _ => b.wrapping_sub(b'a').wrapping_add(36),
        };
        n * 62 + u64::from(digit)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let f = KeyFormat::default();
        let g = f.generate().unwrap();
        let k = g.key.expose();
        assert_eq!(k.len(), 3 + SECRET_LEN + CHECKSUM_LEN);
        assert!(k[3..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(g.stub, &k[..7]);
        assert_eq!(f.stub(k), g.stub);
        assert_ne!(f.generate().unwrap().key, g.key);
    }

    /// The check as first written (two passes, the `base62` crate's decoder): the one-pass
    /// check must agree with it on every value.
    fn reference_check(f: &KeyFormat, value: &str) -> Result<Shape, Malformed> {
        if value.is_empty() {
            return Err(Malformed::Empty);
        }
        if value.len() > MAX_KEY_LEN {
            return Err(Malformed::TooLong);
        }
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Malformed::BadCharacter);
        }
        let Some(rest) = value
            .strip_prefix(f.prefix.as_str())
            .and_then(|r| r.strip_prefix('_'))
        else {
            return Ok(Shape::FreeForm);
        };
        if rest.len() != SECRET_LEN + CHECKSUM_LEN
            || !rest.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(Malformed::BadShape);
        }
        let (body, sum) = value.split_at(value.len() - CHECKSUM_LEN);
        let expected = u128::from(crc32fast::hash(body.as_bytes()));
        if base62::decode(sum).is_ok_and(|n| n == expected) {
            Ok(Shape::Generated)
        } else {
            Err(Malformed::BadChecksum)
        }
    }

    #[test]
    fn the_one_pass_check_agrees_with_the_reference() {
        let f = KeyFormat::default();
        let odd = KeyFormat::new("ak2").unwrap();
        let mut values: Vec<String> = vec![
            String::new(),
            "ak".into(),
            "ak_".into(),
            "_ak".into(),
            "ak_ x".into(),
            "x".repeat(MAX_KEY_LEN),
            "x".repeat(MAX_KEY_LEN + 1),
            "caf\u{e9}-key".into(),
            "tab\tinside".into(),
            "free-form.key~!".into(),
        ];
        for _ in 0..200 {
            let key = f.generate().unwrap().key.expose().to_owned();
            values.push(key.clone());
            let bytes = key.as_bytes();
            // Every single-byte change at every position, into a sample of byte values.
            for at in 0..bytes.len() {
                for b in [
                    b' ',
                    b'-',
                    b'0',
                    b'Z',
                    b'z',
                    b'~',
                    0x7f,
                    b'a',
                    bytes[at] ^ 1,
                ] {
                    let mut changed = bytes.to_vec();
                    changed[at] = b;
                    if let Ok(text) = String::from_utf8(changed) {
                        values.push(text);
                    }
                }
            }
            values.push(key[..key.len() - 1].to_owned());
            values.push(format!("{key}0"));
            values.push(format!("ak2{}", &key[2..]));
        }
        // Checksums spelt at the edges of base62.
        values.push(format!("ak_{}zzzzzz", "a".repeat(SECRET_LEN)));
        values.push(format!("ak_{}000000", "a".repeat(SECRET_LEN)));
        for value in &values {
            for format in [&f, &odd] {
                let reference = reference_check(format, value);
                assert_eq!(format.check(value), reference, "{value:?}");
                // The form alone: the same answer, but a bad checksum is not looked at.
                let form = match reference {
                    Err(Malformed::BadChecksum) => Ok(Shape::Generated),
                    other => other,
                };
                assert_eq!(format.check_form(value), form, "{value:?}");
            }
        }
    }

    #[test]
    fn a_failing_checksum_is_always_a_refusal_of_the_check() {
        let f = KeyFormat::default();
        let key = f.generate().unwrap().key.expose().to_owned();
        assert!(!f.checksum_fails(&key));
        for at in 3..key.len() {
            for b in [b'0', b'Z', b'z', b' ', b'~'] {
                let mut changed = key.as_bytes().to_vec();
                changed[at] = b;
                let changed = String::from_utf8(changed).unwrap();
                if f.checksum_fails(&changed) {
                    assert!(f.check(&changed).is_err(), "{changed}");
                }
            }
        }
        // Other lengths and prefixes are left to the check.
        assert!(!f.checksum_fails("ak_short"));
        assert!(!f.checksum_fails(&format!("xy{}", &key[2..])));
    }

    #[test]
    fn base62_digits_decode_as_the_crate_encodes() {
        for n in [
            0u64,
            1,
            61,
            62,
            3843,
            3844,
            u64::from(u32::MAX),
            62u64.pow(6) - 1,
        ] {
            let text = format!("{:0>6}", base62::encode(n));
            assert_eq!(decode_base62(text.as_bytes()), n, "{text}");
        }
    }

    #[test]
    fn every_single_character_change_breaks_the_checksum_or_shape() {
        let f = KeyFormat::default();
        let g = f.generate().unwrap();
        let k = g.key.expose();
        for i in 3..k.len() {
            let mut bytes = k.as_bytes().to_vec();
            bytes[i] = if bytes[i] == b'x' { b'y' } else { b'x' };
            let changed = String::from_utf8(bytes).unwrap();
            assert_eq!(
                f.check(&changed),
                Err(Malformed::BadChecksum),
                "position {i}"
            );
        }
        assert_eq!(f.check(&k[..k.len() - 1]), Err(Malformed::BadShape));
        assert_eq!(f.check(&format!("{k}a")), Err(Malformed::BadShape));
    }

    #[test]
    fn other_prefixes_are_free_form_and_bad_values_are_rejected() {
        let f = KeyFormat::new("myco").unwrap();
        let ak = KeyFormat::default().generate().unwrap();
        assert_eq!(f.check(ak.key.expose()), Ok(Shape::FreeForm));
        assert_eq!(f.check(""), Err(Malformed::Empty));
        assert_eq!(f.check(&"a".repeat(513)), Err(Malformed::TooLong));
        assert_eq!(f.check(&"a".repeat(512)), Ok(Shape::FreeForm));
        assert_eq!(f.check("tab\there"), Err(Malformed::BadCharacter));
        assert_eq!(f.check("clé"), Err(Malformed::BadCharacter));
        assert_eq!(f.stub("free"), "(custom)");
    }

    #[test]
    fn prefixes_are_validated() {
        assert!(KeyFormat::new("ak").is_some());
        assert!(KeyFormat::new("").is_none());
        assert!(KeyFormat::new("Ak").is_none());
        assert!(KeyFormat::new("a_k").is_none());
        assert!(KeyFormat::new(&"a".repeat(17)).is_none());
    }
}
