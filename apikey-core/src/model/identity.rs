//! The identity of a verified key, handed to handlers.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use super::Meta;

/// Who a verified key speaks for: user, key name, tech name, groups, scopes and metadata.
///
/// Compact on purpose (one allocation, 32 bytes inline): verified keys are cached by the
/// million. Groups, scopes and metadata never contain control characters, so they are stored
/// in one text, each introduced by its own control character.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    /// `user`, `key_name`, `tech_name`, then [`GROUP`] + group for each group, [`SCOPE`] +
    /// scope for each scope, [`ENTRY`] + name + [`VALUE`] + value for each metadata entry.
    text: Arc<str>,
    user_end: u32,
    name_end: u32,
    tech_end: u32,
    groups_end: u32,
}

/// What introduces a group, a scope, a metadata entry and its value in [`Identity::text`].
const GROUP: char = '\n';
const SCOPE: char = '\u{1f}';
const ENTRY: char = '\u{1e}';
const VALUE: char = '\u{1d}';

fn clean(text: &str) -> impl Iterator<Item = char> + '_ {
    text.chars().filter(|c| !c.is_control())
}

/// Names without control characters, sorted and deduplicated.
fn sorted<T: AsRef<str>>(items: &[T]) -> Vec<String> {
    let mut out: Vec<String> = items.iter().map(|i| clean(i.as_ref()).collect()).collect();
    out.sort();
    out.dedup();
    out
}

fn offset(len: usize) -> u32 {
    // Names, users and groups are far below 4 GiB; saturate rather than wrap.
    u32::try_from(len).unwrap_or(u32::MAX)
}

impl Identity {
    /// Builds an identity. Groups are sorted and deduplicated; control characters in them are
    /// dropped (stores and config refuse such groups before they get here).
    pub fn new<G: AsRef<str>>(user: &str, key_name: &str, tech_name: &str, groups: &[G]) -> Self {
        Self::with_grants(
            user,
            key_name,
            tech_name,
            groups,
            &[] as &[&str],
            &Meta::default(),
        )
    }

    /// Builds an identity with the key's scopes and metadata too (what the verifier caches).
    /// Groups and scopes are sorted and deduplicated; control characters in groups, scopes and
    /// metadata are dropped (stores and config refuse them before they get here).
    pub fn with_grants<G: AsRef<str>, S: AsRef<str>>(
        user: &str,
        key_name: &str,
        tech_name: &str,
        groups: &[G],
        scopes: &[S],
        meta: &Meta,
    ) -> Self {
        let groups = sorted(groups);
        let scopes = sorted(scopes);
        let mut text = String::with_capacity(
            user.len()
                + key_name.len()
                + tech_name.len()
                + groups.iter().map(|g| g.len() + 1).sum::<usize>()
                + scopes.iter().map(|s| s.len() + 1).sum::<usize>()
                + meta
                    .iter()
                    .map(|(k, v)| k.len() + v.len() + 2)
                    .sum::<usize>(),
        );
        text.push_str(user);
        let user_end = offset(text.len());
        text.push_str(key_name);
        let name_end = offset(text.len());
        text.push_str(tech_name);
        let tech_end = offset(text.len());
        for g in &groups {
            text.push(GROUP);
            text.push_str(g);
        }
        let groups_end = offset(text.len());
        for s in &scopes {
            text.push(SCOPE);
            text.push_str(s);
        }
        for (k, v) in meta.iter() {
            text.push(ENTRY);
            text.extend(clean(k));
            text.push(VALUE);
            text.extend(clean(v));
        }
        Identity {
            text: text.into(),
            user_end,
            name_end,
            tech_end,
            groups_end,
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
        let rest = &self.text[self.tech_end as usize..self.groups_end as usize];
        rest.split(GROUP).skip(1)
    }

    /// Scopes and metadata, as stored after the groups.
    fn grants(&self) -> (&str, &str) {
        let rest = &self.text[self.groups_end as usize..];
        rest.split_at(rest.find(ENTRY).unwrap_or(rest.len()))
    }

    /// The key's scopes, sorted (`orders:write`, `orders:*`, `*`).
    pub fn scopes(&self) -> impl Iterator<Item = &str> + Clone + '_ {
        self.grants().0.split(SCOPE).skip(1)
    }

    /// Whether the key's scopes cover every one of `required` (true when it is empty): a
    /// scope covers itself, `prefix:*` covers `prefix:<anything>`, `*` covers all.
    pub fn has_scopes<S: AsRef<str>>(&self, required: &[S]) -> bool {
        required.iter().all(|needed| {
            self.scopes()
                .any(|held| super::scope_covers(held, needed.as_ref()))
        })
    }

    /// The key's metadata entry `name` (`Caller::meta("plan")`).
    pub fn meta(&self, name: &str) -> Option<&str> {
        self.meta_entries()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// Every metadata entry of the key, sorted by name.
    pub fn meta_entries(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.grants()
            .1
            .split(ENTRY)
            .skip(1)
            .map(|entry| entry.split_once(VALUE).unwrap_or((entry, "")))
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
            .field("scopes", &self.scopes().collect::<Vec<_>>())
            // Names only: metadata values stay out of logs.
            .field(
                "meta",
                &self.meta_entries().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Serialize for Identity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Identity", 5)?;
        st.serialize_field("user", self.user())?;
        st.serialize_field("key_name", self.key_name())?;
        st.serialize_field("tech_name", self.tech_name())?;
        st.serialize_field("groups", &self.groups().collect::<Vec<_>>())?;
        st.serialize_field("scopes", &self.scopes().collect::<Vec<_>>())?;
        st.end()
    }
}
