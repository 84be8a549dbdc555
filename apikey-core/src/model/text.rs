//! Names people read (keys, users, groups, audit actors) must not be able to forge what a
//! terminal or a log shows: no control characters (C0, DEL, C1) and no bidirectional
//! formatting characters (overrides, embeddings, isolates, marks). Checked where names enter;
//! escaped where names from an older store leave.

use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` could forge output: a control character (C0, DEL, C1) or a bidirectional
/// formatting character.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// Checks a name of `kind` ("key name", "user", …): `Err` with a message that shows the
/// offending character escaped, never raw.
pub fn check_name(kind: &str, name: &str) -> Result<(), String> {
    match name.chars().find(|&c| is_unsafe_char(c)) {
        None => Ok(()),
        Some(c) => Err(format!(
            "the {kind} {} holds the character {}: control and bidirectional formatting \
             characters are not allowed in names",
            escape_unsafe(name),
            c.escape_unicode()
        )),
    }
}

/// `text` with every character that could forge output written as `\u{…}`.
///
/// ```
/// use apikey_core::model::escape_unsafe;
/// assert_eq!(escape_unsafe("ok"), "ok");
/// assert_eq!(escape_unsafe("a\nb\u{1b}[2J"), "a\\u{a}b\\u{1b}[2J");
/// ```
pub fn escape_unsafe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unsafe_char(c) {
            let _ = write!(out, "{}", c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}
