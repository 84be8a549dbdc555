//! Group names, checked and normalised once where they enter.

use serde::{Deserialize, Deserializer, Serialize};

/// A set of group names: trimmed, non-empty, sorted, unique, free of control characters
/// (identities keep groups `\n`-separated, so such a name could not be told apart).
///
/// ```
/// use apikey_core::Groups;
/// let g = Groups::new([" b", "a", "b", ""]).unwrap();
/// assert_eq!(g.as_slice(), ["a", "b"]);
/// assert!(Groups::new(["bad\nname"]).is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Groups(Vec<String>);

impl Groups {
    /// Checks and normalises group names.
    pub fn new<I>(names: I) -> Result<Self, String>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut out = Vec::new();
        for name in names {
            let name = name.as_ref().trim();
            super::check_name("group name", name)?;
            if !name.is_empty() {
                out.push(name.to_owned());
            }
        }
        out.sort();
        out.dedup();
        Ok(Groups(out))
    }

    /// One group.
    pub fn one(name: &str) -> Result<Self, String> {
        Self::new([name])
    }
}

sorted_names!(Groups);

/// Groups to add to a key and groups to remove from it.
pub type GroupEdit = super::NameEdit<Groups>;

impl<'de> Deserialize<'de> for Groups {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        // The message never repeats the names: config errors name the field only.
        Groups::new(&names)
            .map_err(|_| serde::de::Error::custom("a group name holds a control character"))
    }
}
