//! Odoo `server_environment` INI files (`odoo.conf`, `.cfg`, `.ini`) as a figment provider, read
//! the way Odoo's `configparser` reads them: `key = value` unquoted and verbatim (no quotes, no
//! escapes, no inline comments), option names in any letter case, indented continuation lines.
//! Only `[api_key_<tech_name>]` sections are taken; `[options]` and the rest are Odoo's.

use std::path::{Path, PathBuf};

use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Source};
use ini::{Ini, ParseOption};

use super::env::comma_list;
use super::SECTION_PREFIX;

/// Whether `path` names an INI file by its extension (`.conf`, `.cfg`, `.ini`).
pub(super) fn is_ini(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ["conf", "cfg", "ini"].contains(&e.to_ascii_lowercase().as_str()))
}

/// The `[api_key_*]` sections of an Odoo config file.
pub(super) struct OdooIni(pub PathBuf);

/// What configparser accepts and nothing more: values verbatim.
fn options() -> ParseOption {
    ParseOption {
        enabled_quote: false,
        enabled_escape: false,
        enabled_indented_mutiline_value: true,
        enabled_preserve_key_leading_whitespace: false,
    }
}

impl figment::Provider for OdooIni {
    fn metadata(&self) -> Metadata {
        Metadata::from("Odoo config file", Source::File(self.0.clone()))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let path = self.0.display();
        let ini = Ini::load_from_file_opt(&self.0, options()).map_err(|e| match e {
            ini::Error::Io(e) => format!("{path}: {e}"),
            // The parser's own message may quote the line; give the place only.
            ini::Error::Parse(e) => format!(
                "{path}: line {}, column {}: not an INI line (`key = value` or `[section]`)",
                e.line, e.col
            ),
        })?;
        let mut root = Dict::new();
        for (name, properties) in ini.iter() {
            let Some(name) = name.filter(|n| n.starts_with(SECTION_PREFIX)) else {
                continue;
            };
            let mut section = Dict::new();
            for (field, value) in properties.iter() {
                let field = field.trim().to_ascii_lowercase();
                let value = match field.as_str() {
                    "groups" | "allow_ip" | "scopes" => comma_list(value),
                    _ => Value::from(value.to_owned()),
                };
                section.insert(field, value);
            }
            root.insert(name.to_owned(), Value::from(section));
        }
        Ok(Profile::Global.collect(root))
    }
}
