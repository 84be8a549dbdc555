//! The identity of a verified key, handed to handlers.

use std::fmt::{self, Write};
use std::sync::Arc;

use serde::Serialize;

use super::Meta;

/// Who a verified key speaks for: user, key name, tech name, groups, scopes and metadata.
///
/// Compact on purpose (one allocation, 24 bytes inline): verified keys are cached by the
/// million. Groups, scopes and metadata never contain control characters, so they are stored
/// in one text, each introduced by its own control character.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    /// `user`, `key_name`, `tech_name`, then [`GROUP`] + group for each group, [`SCOPE`] +
    /// scope for each scope, [`ENTRY`] + name + [`VALUE`] + value for each metadata entry;
    /// for a [long](LONG) identity, then the four ends in [`LONG_ENDS`] hexadecimal digits.
    text: Arc<str>,
    /// Where the user, the key name, the tech name and the groups end in `text`; all [`LONG`]
    /// when the groups end at 64 KiB or beyond (the ends are then written at the text's end).
    ends: [u16; 4],
}

/// The ends of an identity whose user, names and groups take 64 KiB or more.
const LONG: u16 = u16::MAX;
/// The hexadecimal digits that hold a long identity's ends at its text's end.
const LONG_ENDS: usize = 4 * 8;

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
        let user_end = text.len();
        text.push_str(key_name);
        let name_end = text.len();
        text.push_str(tech_name);
        let tech_end = text.len();
        for g in &groups {
            text.push(GROUP);
            text.push_str(g);
        }
        let groups_end = text.len();
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
        let all = [user_end, name_end, tech_end, groups_end];
        let ends = match all.map(u16::try_from) {
            [Ok(a), Ok(b), Ok(c), Ok(d)] if d < LONG => [a, b, c, d],
            _ => {
                for end in all {
                    // Far below 4 GiB; the text's own length guards the slicing.
                    let _ = write!(text, "{:08x}", u32::try_from(end).unwrap_or(u32::MAX));
                }
                [LONG; 4]
            }
        };
        Identity {
            text: text.into(),
            ends,
        }
    }

    /// Where the user, the key name, the tech name and the groups end, and where the text of
    /// scopes and metadata ends.
    #[inline]
    fn ends(&self) -> ([usize; 4], usize) {
        if self.ends[3] != LONG {
            return (self.ends.map(usize::from), self.text.len());
        }
        self.long_ends()
    }

    #[cold]
    fn long_ends(&self) -> ([usize; 4], usize) {
        let body = self.text.len().saturating_sub(LONG_ENDS);
        let digits = self.text.get(body..).unwrap_or_default();
        let mut ends = [body; 4];
        for (i, end) in ends.iter_mut().enumerate() {
            let hex = digits.get(i * 8..i * 8 + 8).unwrap_or_default();
            if let Ok(n) = usize::from_str_radix(hex, 16) {
                *end = n.min(body);
            }
        }
        (ends, body)
    }

    /// The user the key acts for.
    pub fn user(&self) -> &str {
        let ([user, ..], _) = self.ends();
        &self.text[..user]
    }

    /// The name of the key that was presented.
    pub fn key_name(&self) -> &str {
        let ([user, name, ..], _) = self.ends();
        &self.text[user..name]
    }

    /// The key's tech name (`slugify(name)`).
    pub fn tech_name(&self) -> &str {
        let ([_, name, tech, _], _) = self.ends();
        &self.text[name..tech]
    }

    /// The key's groups, sorted.
    pub fn groups(&self) -> impl Iterator<Item = &str> + Clone + '_ {
        let ([_, _, tech, groups], _) = self.ends();
        self.text[tech..groups].split(GROUP).skip(1)
    }

    /// Scopes and metadata, as stored after the groups.
    fn grants(&self) -> (&str, &str) {
        let ([.., groups], body) = self.ends();
        let rest = &self.text[groups..body];
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

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(entries: &[(&str, &str)]) -> Meta {
        Meta::new(entries.iter().copied()).unwrap()
    }

    fn read_back(
        id: &Identity,
    ) -> (
        String,
        String,
        String,
        Vec<String>,
        Vec<String>,
        Vec<String>,
    ) {
        (
            id.user().into(),
            id.key_name().into(),
            id.tech_name().into(),
            id.groups().map(String::from).collect(),
            id.scopes().map(String::from).collect(),
            id.meta_entries().map(|(k, v)| format!("{k}={v}")).collect(),
        )
    }

    #[test]
    fn is_small_and_reads_back_what_it_was_built_from() {
        assert_eq!(std::mem::size_of::<Identity>(), 24);
        let id = Identity::with_grants(
            "alice",
            "Billing key",
            "billing_key",
            &["ops", "billing", "ops"],
            &["orders:write"],
            &meta(&[("plan", "gold")]),
        );
        assert_eq!(
            read_back(&id),
            (
                "alice".into(),
                "Billing key".into(),
                "billing_key".into(),
                vec!["billing".into(), "ops".into()],
                vec!["orders:write".into()],
                vec!["plan=gold".into()],
            )
        );
        assert!(id.in_any(&["ops"]) && !id.in_group("dev"));
    }

    #[test]
    fn an_identity_of_64_kib_and_more_reads_back_the_same() {
        // Around the 16-bit limit: names and groups ending just below, at and beyond it.
        for size in [65_000, 65_534, 65_535, 65_536, 200_000] {
            let user = "u".repeat(size / 2);
            let group = "g".repeat(size / 2);
            let id = Identity::with_grants(
                &user,
                "k",
                "k",
                &[group.as_str(), "ops"],
                &["read"],
                &meta(&[("plan", "gold"), ("team", "x")]),
            );
            let (u, name, tech, groups, scopes, entries) = read_back(&id);
            assert_eq!(
                (u, name.as_str(), tech.as_str()),
                (user, "k", "k"),
                "{size}"
            );
            assert_eq!(groups, [group.clone(), "ops".into()], "{size}");
            assert_eq!(scopes, ["read"], "{size}");
            assert_eq!(entries, ["plan=gold", "team=x"], "{size}");
            assert_eq!(id.meta("team"), Some("x"));
        }
        let long = Identity::new(&"n".repeat(70_000), "k", "k", &[] as &[&str]);
        assert_eq!(long.user().len(), 70_000);
        assert_eq!(long.groups().count(), 0);
        assert_eq!(long.scopes().count(), 0);
    }
}
