//! A key's metadata and description: what a team writes on a key for its handlers (the
//! customer, the plan) and for people. Metadata is handed to handlers with the identity; it is
//! never logged, and the audit trail names the entries that changed, not their values.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// The most a key's metadata may hold, as compact JSON.
pub const MAX_META_BYTES: usize = 4096;

/// The longest description, in bytes.
pub const MAX_DESCRIPTION_LEN: usize = 1024;

/// Checks one metadata entry: a name by the names rule (not empty, no control or bidi
/// formatting character, no `=`), a value without control or bidi formatting characters.
pub fn check_meta_entry(name: &str, value: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("a metadata name cannot be empty".into());
    }
    super::check_name("metadata name", name)?;
    if name.contains('=') {
        return Err(format!(
            "the metadata name {name:?} holds `=` (entries are given as NAME=VALUE)"
        ));
    }
    if value.chars().any(super::is_unsafe_char) {
        // The value itself is never repeated: metadata may be private to the key's owner.
        return Err(format!(
            "the value of metadata {name:?} holds a control or bidirectional formatting character"
        ));
    }
    Ok(())
}

/// Checks a description: at most [`MAX_DESCRIPTION_LEN`] bytes, no control or bidi
/// formatting character but line breaks and tabs.
pub fn check_description(text: &str) -> Result<(), String> {
    if text.len() > MAX_DESCRIPTION_LEN {
        return Err(format!(
            "a description holds at most {MAX_DESCRIPTION_LEN} bytes"
        ));
    }
    if text
        .chars()
        .any(|c| super::is_unsafe_char(c) && !matches!(c, '\n' | '\t'))
    {
        return Err(
            "a description may not hold control or bidirectional formatting characters".into(),
        );
    }
    Ok(())
}

/// A key's metadata: a small JSON object of strings (at most [`MAX_META_BYTES`] as JSON),
/// sorted by name.
///
/// ```
/// use apikey_core::model::Meta;
/// let meta = Meta::new([("plan", "pro"), ("customer", "c-42")]).unwrap();
/// assert_eq!(meta.get("plan"), Some("pro"));
/// assert_eq!(meta.to_json(), r#"{"customer":"c-42","plan":"pro"}"#);
/// assert!(Meta::new([("a=b", "x")]).is_err());
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Meta(BTreeMap<String, String>);

impl Meta {
    /// Checks entries ([`check_meta_entry`]) and the whole size.
    pub fn new<I, K, V>(entries: I) -> Result<Self, String>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut map = BTreeMap::new();
        for (k, v) in entries {
            let (k, v) = (k.into(), v.into());
            check_meta_entry(&k, &v)?;
            map.insert(k, v);
        }
        let meta = Meta(map);
        meta.check_size()?;
        Ok(meta)
    }

    /// Reads metadata as stored (a JSON object of strings; `None` or empty: none).
    pub fn from_json(text: Option<&str>) -> Result<Self, String> {
        match text {
            None | Some("") => Ok(Meta::default()),
            Some(text) => {
                let map: BTreeMap<String, String> = serde_json::from_str(text)
                    .map_err(|_| "metadata is not a JSON object of strings".to_owned())?;
                Meta::new(map)
            }
        }
    }

    /// As compact JSON, names sorted.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "{}".into())
    }

    /// As stored: `None` when empty.
    pub fn to_stored(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| self.to_json())
    }

    fn check_size(&self) -> Result<(), String> {
        let size = self.to_json().len();
        if size > MAX_META_BYTES {
            return Err(format!(
                "metadata holds at most {MAX_META_BYTES} bytes as JSON (this would be {size})"
            ));
        }
        Ok(())
    }

    /// The value of entry `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Every entry, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// Never the values: metadata may be private to the key's owner and stays out of logs.
impl fmt::Debug for Meta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl<'de> Deserialize<'de> for Meta {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, String>::deserialize(d)?;
        // Config errors name the field, never a value.
        Meta::new(map).map_err(|_| {
            serde::de::Error::custom(
                "metadata is not valid (names and values without control characters, names \
                 without `=`, at most 4 KiB)",
            )
        })
    }
}

/// Metadata entries to set and to remove on a key: one edit, applied atomically by a store
/// (the result is checked for size there).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct MetaEdit {
    /// Entries to set (added or replaced).
    pub set: BTreeMap<String, String>,
    /// Names to remove (after setting).
    pub unset: Vec<String>,
}

impl fmt::Debug for MetaEdit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetaEdit")
            .field("set", &self.set.keys().collect::<Vec<_>>())
            .field("unset", &self.unset)
            .finish()
    }
}

impl MetaEdit {
    /// Entries to set and names to remove, each checked.
    pub fn new<I, K, V, U>(set: I, unset: U) -> Result<Self, String>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
        U: IntoIterator,
        U::Item: Into<String>,
    {
        let mut edit = MetaEdit::default();
        for (k, v) in set {
            let (k, v) = (k.into(), v.into());
            check_meta_entry(&k, &v)?;
            edit.set.insert(k, v);
        }
        for name in unset {
            let name = name.into();
            check_meta_entry(&name, "")?;
            edit.unset.push(name);
        }
        Ok(edit)
    }

    /// Parses `NAME=VALUE` (the CLI's `--meta`).
    pub fn parse_entry(entry: &str) -> Result<(String, String), String> {
        let (k, v) = entry
            .split_once('=')
            .ok_or_else(|| "metadata is given as NAME=VALUE".to_owned())?;
        check_meta_entry(k, v)?;
        Ok((k.to_owned(), v.to_owned()))
    }

    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.unset.is_empty()
    }

    /// A key's metadata after this edit; refused when it would outgrow [`MAX_META_BYTES`].
    pub fn apply(&self, current: &Meta) -> Result<Meta, String> {
        let mut map = current.0.clone();
        for (k, v) in &self.set {
            map.insert(k.clone(), v.clone());
        }
        for k in &self.unset {
            map.remove(k);
        }
        let meta = Meta(map);
        meta.check_size()?;
        Ok(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_is_bounded_as_json() {
        let big = "x".repeat(MAX_META_BYTES);
        assert!(Meta::new([("a", big.as_str())]).is_err());
        let edit = MetaEdit::new([("a", "x".repeat(3000))], Vec::<String>::new()).unwrap();
        let half = edit.apply(&Meta::default()).unwrap();
        let more = MetaEdit::new([("b", "y".repeat(3000))], Vec::<String>::new()).unwrap();
        assert!(more.apply(&half).is_err());
    }

    #[test]
    fn values_stay_out_of_debug_and_errors() {
        let meta = Meta::new([("plan", "secret-plan")]).unwrap();
        assert!(!format!("{meta:?}").contains("secret-plan"));
        let err = check_meta_entry("plan", "a\u{1b}b-private").unwrap_err();
        assert!(!err.contains("private"), "{err}");
        let edit = MetaEdit::new([("plan", "secret-plan")], ["old"]).unwrap();
        assert!(!format!("{edit:?}").contains("secret-plan"));
    }

    #[test]
    fn entries_parse_and_round_trip() {
        assert_eq!(
            MetaEdit::parse_entry("url=https://x/?a=b").unwrap(),
            ("url".to_owned(), "https://x/?a=b".to_owned())
        );
        assert!(MetaEdit::parse_entry("novalue").is_err());
        assert!(MetaEdit::parse_entry("=v").is_err());
        let meta = Meta::new([("b", "2"), ("a", "1")]).unwrap();
        assert_eq!(Meta::from_json(meta.to_stored().as_deref()).unwrap(), meta);
        assert_eq!(Meta::from_json(None).unwrap(), Meta::default());
        assert!(check_description("line one\nline two").is_ok());
        assert!(check_description("bell\u{7}").is_err());
    }
}
