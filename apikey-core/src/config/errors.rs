//! Configuration errors: where they are, and what is wrong, never the value found.

use figment::Figment;

/// A configuration that cannot be used. The message names the file (or variable) and section.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid apikey configuration: [{section}] in {source_name}: {message}")]
pub struct ConfigError {
    /// The section at fault (`apikey` or `api_key_<tech_name>`).
    pub section: String,
    /// Where that section came from (file path or environment variables).
    pub source_name: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// A figment error as a message that names the field and what was expected, never the value
/// found (it may be a key: `APIKEY_API_KEY_X=<key>` with the `__KEY` forgotten).
pub(super) fn describe(error: figment::Error) -> String {
    use figment::error::{Actual, Kind};
    let kind_of = |a: &Actual| match a {
        Actual::Bool(_) => "a boolean",
        Actual::Unsigned(_) | Actual::Signed(_) => "an integer",
        Actual::Float(_) => "a number",
        Actual::Char(_) | Actual::Str(_) => "a string",
        Actual::Bytes(_) => "bytes",
        Actual::Seq => "a list",
        Actual::Map => "a table",
        _ => "another kind of value",
    };
    let messages: Vec<String> = error
        .into_iter()
        .map(|e| {
            let field = e.path.join(".");
            let at = if field.is_empty() {
                String::new()
            } else {
                format!("`{field}`: ")
            };
            let what = match &e.kind {
                Kind::Message(m) => m.clone(),
                Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
                    format!("expected {expected}, found {}", kind_of(actual))
                }
                Kind::InvalidLength(n, expected) => format!("{n} items, expected {expected}"),
                Kind::UnknownVariant(_, expected) => {
                    format!("unknown value; expected one of {}", expected.join(", "))
                }
                Kind::UnknownField(field, expected) => format!(
                    "unknown setting `{field}`; expected one of {}",
                    expected.join(", ")
                ),
                Kind::MissingField(f) => format!("`{f}` is missing"),
                Kind::DuplicateField(f) => format!("`{f}` is set twice"),
                Kind::ISizeOutOfRange(_) | Kind::USizeOutOfRange(_) => {
                    "the number is out of range".into()
                }
                Kind::Unsupported(a) | Kind::UnsupportedKey(a, _) => {
                    format!("{} is not supported here", kind_of(a))
                }
            };
            format!("{at}{what}")
        })
        .collect();
    messages.join("; ")
}

/// Where the value at `key` came from (file path or environment), for messages.
pub(super) fn source_of(figment: &Figment, key: &str) -> String {
    figment
        .find_metadata(key)
        .map(|m| match &m.source {
            Some(src) => src.to_string(),
            None => m.name.to_string(),
        })
        .unwrap_or_else(|| "the configuration".into())
}
