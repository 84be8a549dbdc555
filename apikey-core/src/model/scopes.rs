//! Scopes: what a key may do, as `resource:action` names a route requires all of.
//!
//! Groups answer "who is this key" (any of a route's groups lets it in, Odoo's model); scopes
//! answer "what may it do" (a route lists every scope it needs). A key's scope may end in a
//! wildcard: `orders:*` covers `orders:read` and `orders:write` (and `orders:read:archived`),
//! `*` covers every scope.

use serde::{Deserialize, Deserializer, Serialize};

/// The longest scope, in bytes.
pub const MAX_SCOPE_LEN: usize = 128;

/// Why a scope is not one: the message for people (names the offending scope, escaped).
fn bad(scope: &str, why: &str) -> String {
    format!(
        "the scope {:?} is not valid: {why}",
        super::escape_unsafe(scope)
    )
}

/// Checks one scope as a key may hold it: segments of letters, digits, `_`, `-` and `.`,
/// separated by `:`, the last of which may be `*` (a wildcard); or `*` alone.
///
/// ```
/// use apikey_core::model::check_scope;
/// assert!(check_scope("orders:write").is_ok());
/// assert!(check_scope("orders:*").is_ok());
/// assert!(check_scope("*").is_ok());
/// assert!(check_scope("orders:").is_err());
/// assert!(check_scope("orders:*:read").is_err());
/// assert!(check_scope("orders write").is_err());
/// ```
pub fn check_scope(scope: &str) -> Result<(), String> {
    if scope.is_empty() {
        return Err("a scope cannot be empty".into());
    }
    if scope.len() > MAX_SCOPE_LEN {
        return Err(bad(scope, &format!("longer than {MAX_SCOPE_LEN} bytes")));
    }
    let segments: Vec<&str> = scope.split(':').collect();
    let last = segments.len() - 1;
    for (i, segment) in segments.iter().enumerate() {
        if segment.is_empty() {
            return Err(bad(scope, "an empty part between `:`"));
        }
        if *segment == "*" {
            if i != last {
                return Err(bad(scope, "`*` may only end a scope (`orders:*`)"));
            }
            continue;
        }
        if let Some(c) = segment
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        {
            return Err(bad(
                scope,
                &format!(
                    "{} is not allowed (letters, digits, `_`, `-`, `.`, parts separated by `:`)",
                    c.escape_default()
                ),
            ));
        }
    }
    Ok(())
}

/// Checks a scope a route requires: as [`check_scope`], without a wildcard (a route names
/// the one permission it needs; wildcards belong to keys).
///
/// ```
/// use apikey_core::model::check_required_scope;
/// assert!(check_required_scope("orders:write").is_ok());
/// assert!(check_required_scope("orders:*").is_err());
/// ```
pub fn check_required_scope(scope: &str) -> Result<(), String> {
    check_scope(scope)?;
    if scope.split(':').any(|s| s == "*") {
        return Err(bad(
            scope,
            "a route requires a scope by its full name; `*` covers scopes only on keys",
        ));
    }
    Ok(())
}

/// Whether the key scope `held` covers the required scope `needed`: the same scope, `*`, or
/// `prefix:*` for a `needed` that starts with `prefix:`.
///
/// ```
/// use apikey_core::model::scope_covers;
/// assert!(scope_covers("orders:*", "orders:write"));
/// assert!(scope_covers("orders:*", "orders:write:bulk"));
/// assert!(scope_covers("*", "invoices:read"));
/// assert!(!scope_covers("orders:*", "orders"));
/// assert!(!scope_covers("orders:*", "ordersx:read"));
/// assert!(!scope_covers("orders:read", "orders:write"));
/// ```
pub fn scope_covers(held: &str, needed: &str) -> bool {
    if held == needed || held == "*" {
        return true;
    }
    match held.strip_suffix('*') {
        // `prefix:` with its colon: `orders:*` never covers `ordersx:read` nor `orders`.
        Some(prefix) if prefix.ends_with(':') => {
            needed.len() > prefix.len() && needed.starts_with(prefix)
        }
        _ => false,
    }
}

/// A key's scopes: checked ([`check_scope`]), sorted and without duplicates.
///
/// ```
/// use apikey_core::model::Scopes;
/// let s = Scopes::new(["orders:write", "invoices:read", "orders:write"]).unwrap();
/// assert_eq!(s.as_slice(), ["invoices:read", "orders:write"]);
/// assert!(Scopes::new(["orders:"]).is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Scopes(Vec<String>);

impl Scopes {
    /// Checks and normalises scopes (surrounding spaces trimmed).
    pub fn new<I>(scopes: I) -> Result<Self, String>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut out = Vec::new();
        for scope in scopes {
            let scope = scope.as_ref().trim();
            check_scope(scope)?;
            out.push(scope.to_owned());
        }
        out.sort();
        out.dedup();
        Ok(Scopes(out))
    }
}

sorted_names!(Scopes);

impl<'de> Deserialize<'de> for Scopes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let scopes = Vec::<String>::deserialize(d)?;
        // Config errors name the field, never a value.
        Scopes::new(&scopes).map_err(|_| {
            serde::de::Error::custom(
                "a scope is not valid (letters, digits, `_`, `-`, `.`, parts separated by `:`, \
                 an optional final `*`)",
            )
        })
    }
}

/// Scopes to add to a key and scopes to remove from it.
pub type ScopeEdit = super::NameEdit<Scopes>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_whole_segments_only() {
        assert!(scope_covers("orders:read", "orders:read"));
        assert!(scope_covers("a:b:*", "a:b:c"));
        assert!(!scope_covers("a:b:*", "a:bc"));
        assert!(!scope_covers("a:b:*", "a:b:"));
        assert!(!scope_covers("orders*", "orders:read"));
        assert!(!scope_covers("orders:read", "*"));
    }

    #[test]
    fn bad_scopes_are_named_escaped() {
        let err = check_scope("a\u{1b}[2J").unwrap_err();
        assert!(!err.contains('\u{1b}'), "{err}");
        assert!(check_scope(&"a".repeat(MAX_SCOPE_LEN + 1)).is_err());
        assert!(check_scope("*:read").is_err());
        assert!(check_scope("orders:**").is_err());
        assert!(check_required_scope("*").is_err());
    }

    #[test]
    fn edits_add_then_remove() {
        let edit = ScopeEdit::new(["b:x", "c:y"], ["a:z"]).unwrap();
        assert_eq!(
            edit.apply(&["a:z".to_owned(), "b:x".to_owned()]).as_slice(),
            ["b:x", "c:y"]
        );
    }
}
