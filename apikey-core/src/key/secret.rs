//! A string that must never be printed: API keys and the pepper.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A secret value (an API key or the pepper). `Debug` and `Display` print a redacted stub,
/// so a secret can sit in structs that are logged without leaking.
///
/// ```
/// use apikey_core::Secret;
/// let s = Secret::new("ak_verysecret");
/// assert_eq!(format!("{s}"), "[redacted]");
/// assert_eq!(format!("{s:?}"), "Secret([redacted])");
/// assert_eq!(s.expose(), "ak_verysecret");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself. Call this only to hash it or to show it once to its owner.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Config sources such as environment variables turn `12345` into a number; a key made
        // of digits is still a key.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Str(String),
            Int(i64),
            UInt(u64),
        }
        Ok(Secret(match Raw::deserialize(d)? {
            Raw::Str(s) => s,
            Raw::Int(i) => i.to_string(),
            Raw::UInt(u) => u.to_string(),
        }))
    }
}
