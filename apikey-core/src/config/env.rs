//! `APIKEY_…` environment variables as a figment provider.

use figment::value::{Dict, Value};
use figment::Profile;

use super::SECTION_PREFIX;

/// Variables with the `APIKEY_` prefix that are not settings: the config file's name, the
/// CLI's actor, and the test harness' variables.
fn not_a_setting(name: &str) -> bool {
    name == "config" || name == "actor" || name.starts_with("test_")
}

/// Settings whose values are text, taken verbatim from the environment.
const TEXT_SETTINGS: &[&str] = &[
    "header",
    "database_url",
    "pepper",
    "key_prefix",
    "rate_limit",
    "quota",
    "limits_url",
    "limits_prefix",
    "limits_ca",
    "feed_url",
    "admin_group",
    "admin_secure_cookie",
    "secret_scanning_keys",
    "secret_scanning_action",
];

/// `APIKEY_<SETTING>` → `apikey.<setting>`; `APIKEY_API_KEY_<TECH>__<FIELD>` →
/// `api_key_<tech>.<field>`. Keys, users, groups and text settings are taken verbatim
/// (`000042` stays `000042`, `true` stays `true`); `groups`, `allow_ip` and `scopes` are
/// comma-separated lists, `meta` an inline table (`{plan = "pro"}`). Other
/// settings (numbers, booleans, durations) are parsed as figment's `Env` would.
pub(super) struct EnvProvider;

/// Where environment settings come from, in messages.
pub(super) const ENV_SOURCE: &str = "APIKEY_* environment variables";

impl figment::Provider for EnvProvider {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named(ENV_SOURCE)
    }

    fn data(&self) -> Result<figment::value::Map<Profile, Dict>, figment::Error> {
        let mut root = Dict::new();
        for (name, value) in std::env::vars_os() {
            let Some(name) = name.to_str() else { continue };
            let lower = name.to_ascii_lowercase();
            let Some(rest) = lower.strip_prefix("apikey_") else {
                continue;
            };
            if not_a_setting(rest) {
                continue;
            }
            let Some(value) = value.to_str() else {
                return Err(format!("{name} is not valid UTF-8").into());
            };
            if rest.starts_with(SECTION_PREFIX) {
                let Some((section, field)) = rest.split_once("__") else {
                    return Err(format!(
                        "{name} names a whole key section; set one of its fields, e.g. \
                         {name}__KEY or {name}__USER"
                    )
                    .into());
                };
                let value = match field {
                    "groups" | "allow_ip" | "scopes" if value.trim_start().starts_with('[') => {
                        parsed(value)
                    }
                    "groups" | "allow_ip" | "scopes" => comma_list(value),
                    "meta" if value.trim_start().starts_with('{') => parsed(value),
                    _ => Value::from(value.to_owned()),
                };
                insert(&mut root, section, field, value);
            } else {
                let value = if rest == "allow_unguarded" && !value.trim_start().starts_with('[') {
                    comma_list(value)
                } else if TEXT_SETTINGS.contains(&rest) {
                    Value::from(value.to_owned())
                } else {
                    parsed(value)
                };
                insert(&mut root, "apikey", rest, value);
            }
        }
        Ok(Profile::Global.collect(root))
    }
}

/// `a, b, ,c` as the list `[a, b, c]`: how group lists are written outside TOML.
pub(super) fn comma_list(text: &str) -> Value {
    Value::from(
        text.split(',')
            .map(|g| g.trim().to_owned())
            .filter(|g| !g.is_empty())
            .collect::<Vec<String>>(),
    )
}

/// A value as figment's `Env` provider reads it (numbers, booleans, lists, else a string).
fn parsed(text: &str) -> Value {
    text.parse()
        .unwrap_or_else(|_| Value::from(text.to_owned()))
}

fn insert(root: &mut Dict, section: &str, field: &str, value: Value) {
    use figment::value::{Dict, Value};
    let entry = root
        .entry(section.to_owned())
        .or_insert_with(|| Value::from(Dict::new()));
    if let Value::Dict(_, dict) = entry {
        dict.insert(field.to_owned(), value);
    }
}
