//! The identity of a verified key, handed to handlers.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

/// Who a verified key speaks for: user, key name, tech name and groups.
///
/// Compact on purpose (one allocation, 32 bytes inline): verified keys are cached by the
/// million. Group names never contain control characters, so they are stored `\n`-separated.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    /// `user`, `key_name`, `tech_name`, then `\n` + group for each group.
    text: Arc<str>,
    user_end: u32,
    name_end: u32,
    tech_end: u32,
}

fn offset(len: usize) -> u32 {
    // Names, users and groups are far below 4 GiB; saturate rather than wrap.
    u32::try_from(len).unwrap_or(u32::MAX)
}

impl Identity {
    /// Builds an identity. Groups are sorted and deduplicated; control characters in them are
    /// dropped (stores and config refuse such groups before they get here).
    pub fn new<G: AsRef<str>>(user: &str, key_name: &str, tech_name: &str, groups: &[G]) -> Self {
        let mut groups: Vec<String> = groups
            .iter()
            .map(|g| g.as_ref().chars().filter(|c| !c.is_control()).collect())
            .collect();
        groups.sort();
        groups.dedup();
        let mut text = String::with_capacity(
            user.len()
                + key_name.len()
                + tech_name.len()
                + groups.iter().map(|g| g.len() + 1).sum::<usize>(),
        );
        text.push_str(user);
        let user_end = offset(text.len());
        text.push_str(key_name);
        let name_end = offset(text.len());
        text.push_str(tech_name);
        let tech_end = offset(text.len());
        for g in &groups {
            text.push('\n');
            text.push_str(g);
        }
        Identity {
            text: text.into(),
            user_end,
            name_end,
            tech_end,
        }
    }

    /// The user the key acts for.
    pub fn user(&self) -> &str {
        &self.text[..self.user_end as usize]
    }

    /// The name of the key that was presented.
    pub fn key_name(&self) -> &str {
        &self.text[self.user_end as usize..self.name_end as usize]
    }

    /// The key's tech name (`slugify(name)`).
    pub fn tech_name(&self) -> &str {
        &self.text[self.name_end as usize..self.tech_end as usize]
    }

    /// The key's groups, sorted.
    pub fn groups(&self) -> impl Iterator<Item = &str> + Clone + '_ {
        let rest = &self.text[self.tech_end as usize..];
        rest.split('\n').skip(1)
    }

    /// Whether the key is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups().any(|g| g == group)
    }

    /// Whether the key is in at least one of `groups`; true when `groups` is empty.
    pub fn in_any<G: AsRef<str>>(&self, groups: &[G]) -> bool {
        groups.is_empty() || groups.iter().any(|g| self.in_group(g.as_ref()))
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("user", &self.user())
            .field("key_name", &self.key_name())
            .field("tech_name", &self.tech_name())
            .field("groups", &self.groups().collect::<Vec<_>>())
            .finish()
    }
}

impl Serialize for Identity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Identity", 4)?;
        st.serialize_field("user", self.user())?;
        st.serialize_field("key_name", self.key_name())?;
        st.serialize_field("tech_name", self.tech_name())?;
        st.serialize_field("groups", &self.groups().collect::<Vec<_>>())?;
        st.end()
    }
}
