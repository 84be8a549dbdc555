//! The values every layer speaks: stored records, the identity of a verified key, and the
//! typed settings of a key (groups, rate limit, durations), parsed once where they enter.

/// What a sorted set of names (groups, scopes) offers besides its own checks: the names as a
/// slice or a vector, deref to the slice, and a comma-separated display.
macro_rules! sorted_names {
    ($ty:ident) => {
        impl $ty {
            /// The names, sorted.
            pub fn as_slice(&self) -> &[String] {
                &self.0
            }

            /// The names, sorted.
            pub fn into_vec(self) -> Vec<String> {
                self.0
            }
        }

        impl std::ops::Deref for $ty {
            type Target = [String];

            fn deref(&self) -> &[String] {
                &self.0
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0.join(", "))
            }
        }

        impl $crate::model::NameList for $ty {
            fn checked<I>(names: I) -> Result<Self, String>
            where
                I: IntoIterator,
                I::Item: AsRef<str>,
            {
                $ty::new(names)
            }

            fn from_sorted(names: Vec<String>) -> Self {
                $ty(names)
            }

            fn names(&self) -> &[String] {
                &self.0
            }
        }
    };
}

/// A key's sorted list of checked names: its [`Groups`] or its [`Scopes`].
pub trait NameList: Sized {
    /// The names, checked and normalised as the list's own `new` does.
    fn checked<I>(names: I) -> Result<Self, String>
    where
        I: IntoIterator,
        I::Item: AsRef<str>;

    /// Names checked already, sorted and without duplicates.
    #[doc(hidden)]
    fn from_sorted(names: Vec<String>) -> Self;

    /// The names, sorted.
    fn names(&self) -> &[String];
}

/// Names to add to a key's list and names to remove from it ([`GroupEdit`], [`ScopeEdit`]):
/// one edit, applied atomically by a store under the key's lock, so two concurrent edits never
/// lose each other's change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameEdit<L> {
    /// Names to add.
    pub add: L,
    /// Names to remove (after adding).
    pub remove: L,
}

impl<L: NameList> NameEdit<L> {
    /// Names to add and to remove, each checked as the list's own `new` does.
    pub fn new<A, R>(add: A, remove: R) -> Result<Self, String>
    where
        A: IntoIterator,
        A::Item: AsRef<str>,
        R: IntoIterator,
        R::Item: AsRef<str>,
    {
        Ok(NameEdit {
            add: L::checked(add)?,
            remove: L::checked(remove)?,
        })
    }

    /// A key's stored list after this edit.
    pub fn apply(&self, current: &[String]) -> L {
        L::from_sorted(edited(current, self.add.names(), self.remove.names()))
    }
}

/// `current` with `add` added and then `remove` removed, sorted and without duplicates: how a
/// store applies an edit of groups or scopes under the key's lock.
fn edited(current: &[String], add: &[String], remove: &[String]) -> Vec<String> {
    let mut out: Vec<String> = current
        .iter()
        .chain(add)
        .filter(|name| !remove.contains(name))
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

mod allow_ip;
mod audit;
mod change;
mod client_ip;
mod duration;
mod groups;
mod identity;
mod meta;
mod quota;
mod rate_limit;
mod record;
mod refusal;
mod scopes;
mod text;

pub use allow_ip::{AllowIp, IpNet};
pub use audit::{Actor, AuditFilter, AuditRecord, ACTOR_ENV};
pub use change::{KeyChange, KeyEdit};
pub use client_ip::{ClientIp, ForwardHeader};
pub(crate) use duration::de_duration;
pub use duration::{expiry_after, parse_duration};
pub use groups::{GroupEdit, Groups};
pub use identity::Identity;
pub use meta::{
    check_description, check_meta_entry, Meta, MetaEdit, MAX_DESCRIPTION_LEN, MAX_META_BYTES,
};
pub use quota::{Quota, QuotaWindow, UsageCount, UsageDay};
pub use rate_limit::RateLimit;
pub use record::{
    Imported, ImportedKey, KeyFilter, KeyOrigin, KeyRecord, KeyView, Match, NewKey, NewSecret,
    OwnRotation, RotationRefusal,
};
pub use refusal::{AuthError, InvalidKey};
pub use scopes::{
    check_required_scope, check_scope, scope_covers, ScopeEdit, Scopes, MAX_SCOPE_LEN,
};
pub use text::{check_name, escape_unsafe, is_unsafe_char};
