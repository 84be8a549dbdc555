//! Configuration: `[apikey]` settings and `[api_key_<tech_name>]` key sections, read with
//! figment from Rocket's profiles, a standalone `apikeys.toml` and `APIKEY_…` variables.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Format, Toml};
use figment::value::Value;
use figment::{Figment, Profile};
use serde::{Deserialize, Deserializer};

use crate::{slugify, KeyFormat, RateLimit, Secret};

/// Environment variable naming the standalone config file.
pub const CONFIG_ENV: &str = "APIKEY_CONFIG";
/// Standalone config file read from the working directory when [`CONFIG_ENV`] is unset.
pub const CONFIG_FILE: &str = "apikeys.toml";
/// Prefix of config section names: `[api_key_<tech_name>]`.
pub const SECTION_PREFIX: &str = "api_key_";
/// Default store: an SQLite file in the working directory, created on first start.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://apikeys.db?mode=rwc";

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

/// The `[apikey]` settings.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Request header carrying the key (`API-KEY`); matched case-insensitively.
    pub header: String,
    /// Where keys are stored: `sqlite:…`, `postgres://…` or `memory:`.
    pub database_url: String,
    /// How long a verified key is cached; `0` disables the cache.
    #[serde(deserialize_with = "de_duration")]
    pub cache_ttl: Duration,
    /// How long an unknown key is remembered as unknown; `0` disables that cache.
    #[serde(deserialize_with = "de_duration")]
    pub negative_cache_ttl: Duration,
    /// Optional secret mixed into every digest (HMAC-SHA256).
    pub pepper: Option<Secret>,
    /// Prefix of generated keys (`ak`).
    pub key_prefix: String,
    /// Refuse the keys of disabled users (Odoo's company option; on by default).
    pub disable_keys_of_inactive_users: bool,
    /// Default rate limit of every key without one of its own (`100/1m`); none by default.
    pub rate_limit: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            header: "API-KEY".into(),
            database_url: DEFAULT_DATABASE_URL.into(),
            cache_ttl: Duration::from_secs(60),
            negative_cache_ttl: Duration::from_secs(10),
            pepper: None,
            key_prefix: "ak".into(),
            disable_keys_of_inactive_users: true,
            rate_limit: None,
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("header", &self.header)
            .field("database_url", &redact_url(&self.database_url))
            .field("cache_ttl", &self.cache_ttl)
            .field("negative_cache_ttl", &self.negative_cache_ttl)
            .field("pepper", &self.pepper)
            .field("key_prefix", &self.key_prefix)
            .field(
                "disable_keys_of_inactive_users",
                &self.disable_keys_of_inactive_users,
            )
            .field("rate_limit", &self.rate_limit)
            .finish()
    }
}

/// A database URL with any password replaced by `***`, for messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_owned()
            };
            format!("{scheme}://{masked}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

/// Durations: whole seconds (`30`) or humantime (`30s`, `24h`, `90d`).
///
/// ```
/// use std::time::Duration;
/// assert_eq!(apikey_core::config::parse_duration("90"), Ok(Duration::from_secs(90)));
/// assert_eq!(apikey_core::config::parse_duration("24h"), Ok(Duration::from_secs(86_400)));
/// assert!(apikey_core::config::parse_duration("soon").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text).map_err(|e| {
        format!("{text:?} is not a duration ({e}); use whole seconds or e.g. 30s, 15m, 24h, 90d")
    })
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }
    match Raw::deserialize(d).map_err(|_| {
        serde::de::Error::custom("expected a duration: whole seconds or e.g. 30s, 15m, 24h")
    })? {
        Raw::Secs(s) => Ok(Duration::from_secs(s)),
        // The message never repeats the value: config errors name the field only.
        Raw::Text(t) => parse_duration(&t).map_err(|_| {
            serde::de::Error::custom("expected a duration: whole seconds or e.g. 30s, 15m, 24h")
        }),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSection {
    key: Option<Secret>,
    user: Option<String>,
    groups: Option<Vec<String>>,
    rate_limit: Option<String>,
}

/// One `[api_key_<tech_name>]` section.
#[derive(Debug, Clone)]
pub struct KeySection {
    /// The tech name (the section name without `api_key_`).
    pub tech_name: String,
    /// The key value.
    pub key: Secret,
    /// The user; needed when no stored key has this tech name.
    pub user: Option<String>,
    /// Groups; when absent, the stored key's groups (or none).
    pub groups: Option<Vec<String>>,
    /// Rate limit; when absent, the stored key's (or the default).
    pub rate_limit: Option<crate::RateLimit>,
    /// Where the section came from, for messages.
    pub source_name: String,
}

impl KeySection {
    /// The section's name, `api_key_<tech_name>`.
    pub fn section_name(&self) -> String {
        format!("{SECTION_PREFIX}{}", self.tech_name)
    }
}

/// Everything apikey reads from configuration.
#[derive(Debug, Clone, Default)]
pub struct ApiKeyConfig {
    /// The `[apikey]` settings.
    pub settings: Settings,
    /// Key sections, sorted by tech name.
    pub sections: Vec<KeySection>,
}

/// Adds apikey's own sources on top of `base` (which may be Rocket's figment, with its
/// profiles): the standalone file (`file`, else `APIKEY_CONFIG`, else `apikeys.toml` in the
/// working directory) and then `APIKEY_…` environment variables. Both land in the global
/// profile, so they override every Rocket profile, later sources winning.
///
/// A file named explicitly (argument or `APIKEY_CONFIG`) must exist.
pub fn layered(base: Figment, file: Option<&Path>) -> Result<Figment, ConfigError> {
    let explicit = file
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(CONFIG_ENV).map(PathBuf::from));
    let path = match explicit {
        Some(path) => {
            if !path.is_file() {
                return Err(ConfigError {
                    section: "apikey".into(),
                    source_name: path.display().to_string(),
                    message: "the config file does not exist or is not a file".into(),
                });
            }
            path
        }
        None => PathBuf::from(CONFIG_FILE),
    };
    let with_file = if path.is_file() {
        base.merge(Toml::file_exact(path).profile(Profile::Global))
    } else {
        base
    };
    Ok(with_file.merge(EnvProvider))
}

/// Rocket's config file (`ROCKET_CONFIG` or `Rocket.toml`) with the profile Rocket would pick
/// (`ROCKET_PROFILE`, else `default`), for programs that read the services' config without
/// being Rocket (the CLI).
pub fn rocket_toml() -> Figment {
    let path = std::env::var("ROCKET_CONFIG").unwrap_or_else(|_| "Rocket.toml".into());
    let profile = std::env::var("ROCKET_PROFILE").unwrap_or_else(|_| "default".into());
    let figment = Figment::new().select(profile);
    if Path::new(&path).is_file() {
        figment.merge(Toml::file_exact(path).nested())
    } else {
        figment
    }
}

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
    "admin_group",
];

/// `APIKEY_<SETTING>` → `apikey.<setting>`; `APIKEY_API_KEY_<TECH>__<FIELD>` →
/// `api_key_<tech>.<field>`. Keys, users, groups and text settings are taken verbatim
/// (`000042` stays `000042`, `true` stays `true`); `groups` is a comma-separated list. Other
/// settings (numbers, booleans, durations) are parsed as figment's `Env` would.
struct EnvProvider;

/// Where environment settings come from, in messages.
const ENV_SOURCE: &str = "APIKEY_* environment variables";

impl figment::Provider for EnvProvider {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named(ENV_SOURCE)
    }

    fn data(&self) -> Result<figment::value::Map<Profile, figment::value::Dict>, figment::Error> {
        use figment::value::{Dict, Value};
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
                    "groups" if value.trim_start().starts_with('[') => parsed(value),
                    "groups" => Value::from(
                        value
                            .split(',')
                            .map(|g| g.trim().to_owned())
                            .filter(|g| !g.is_empty())
                            .collect::<Vec<String>>(),
                    ),
                    _ => Value::from(value.to_owned()),
                };
                insert(&mut root, section, field, value);
            } else {
                let value = if TEXT_SETTINGS.contains(&rest) {
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

/// A value as figment's `Env` provider reads it (numbers, booleans, lists, else a string).
fn parsed(text: &str) -> figment::value::Value {
    text.parse()
        .unwrap_or_else(|_| figment::value::Value::from(text.to_owned()))
}

fn insert(
    root: &mut figment::value::Dict,
    section: &str,
    field: &str,
    value: figment::value::Value,
) {
    use figment::value::{Dict, Value};
    let entry = root
        .entry(section.to_owned())
        .or_insert_with(|| Value::from(Dict::new()));
    if let Value::Dict(_, dict) = entry {
        dict.insert(field.to_owned(), value);
    }
}

/// A figment error as a message that names the field and what was expected, never the value
/// found (it may be a key: `APIKEY_API_KEY_X=<key>` with the `__KEY` forgotten).
fn describe(error: figment::Error) -> String {
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

fn source_of(figment: &Figment, key: &str) -> String {
    figment
        .find_metadata(key)
        .map(|m| match &m.source {
            Some(src) => src.to_string(),
            None => m.name.to_string(),
        })
        .unwrap_or_else(|| "the configuration".into())
}

/// Whether `name` is a usable HTTP header name.
fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl ApiKeyConfig {
    /// Reads and validates the configuration in `figment` (see [`layered`]).
    pub fn from_figment(figment: &Figment) -> Result<Self, ConfigError> {
        let fail = |section: &str, message: String| ConfigError {
            section: section.to_owned(),
            source_name: source_of(figment, section),
            message,
        };
        let settings: Settings = if figment.find_value("apikey").is_ok() {
            figment
                .extract_inner("apikey")
                .map_err(|e| fail("apikey", describe(e)))?
        } else {
            Settings::default()
        };
        if !valid_header_name(&settings.header) {
            return Err(fail(
                "apikey",
                "`header` is not a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~)"
                    .into(),
            ));
        }
        let format = KeyFormat::new(&settings.key_prefix).ok_or_else(|| {
            fail(
                "apikey",
                "`key_prefix` must be 1 to 16 lowercase ASCII letters or digits".into(),
            )
        })?;
        if settings.database_url.trim().is_empty() {
            return Err(fail("apikey", "database_url is empty".into()));
        }
        if let Some(limit) = &settings.rate_limit {
            limit
                .parse::<crate::RateLimit>()
                .map_err(|_| fail("apikey", format!("`rate_limit` {}", RateLimit::EXPECTED)))?;
        }

        let all: BTreeMap<String, Value> =
            figment.extract().map_err(|e| fail("apikey", describe(e)))?;
        let mut sections = Vec::new();
        let mut seen = HashSet::new();
        for name in all.keys().filter(|k| k.starts_with(SECTION_PREFIX)) {
            let tech_name = &name[SECTION_PREFIX.len()..];
            if tech_name.is_empty() || slugify(tech_name) != tech_name {
                return Err(fail(
                    name,
                    format!(
                        "the section name must be api_key_<tech_name> with tech_name in \
                         lowercase letters, digits and single underscores (did you mean \
                         [api_key_{}]?)",
                        slugify(tech_name)
                    ),
                ));
            }
            let raw: RawSection = figment
                .extract_inner(name)
                .map_err(|e| fail(name, describe(e)))?;
            let key = raw
                .key
                .filter(|k| !k.is_empty())
                .ok_or_else(|| fail(name, "the section has no `key`".into()))?;
            if let Err(why) = format.check(key.expose()) {
                return Err(fail(name, format!("`key` is not usable: {why}")));
            }
            if !seen.insert(key.expose().to_owned()) {
                return Err(fail(
                    name,
                    "another section has the same `key`; every key must be unique".into(),
                ));
            }
            if let Some(groups) = &raw.groups {
                crate::check_groups(groups).map_err(|m| fail(name, m))?;
            }
            if raw.user.as_deref().is_some_and(|u| u.trim().is_empty()) {
                return Err(fail(name, "`user` is empty".into()));
            }
            let rate_limit = raw
                .rate_limit
                .map(|l| l.parse::<crate::RateLimit>())
                .transpose()
                .map_err(|_| fail(name, format!("`rate_limit` {}", RateLimit::EXPECTED)))?;
            sections.push(KeySection {
                tech_name: tech_name.to_owned(),
                key,
                user: raw.user,
                groups: raw.groups.map(|g| crate::normalize_groups(&g)),
                rate_limit,
                source_name: source_of(figment, name),
            });
        }
        Ok(ApiKeyConfig { settings, sections })
    }

    /// Reads the configuration without Rocket: Rocket's config file, then the standalone file
    /// (`file`, `APIKEY_CONFIG` or `apikeys.toml`), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::from_figment(&layered(rocket_toml(), file)?)
    }

    /// The key format of these settings.
    pub fn key_format(&self) -> KeyFormat {
        // `from_figment` validated the prefix; a hand-built config falls back to the default.
        KeyFormat::new(&self.settings.key_prefix).unwrap_or_default()
    }
}

#[cfg(test)]
// figment's `Jail` closures return its large `Error`: not ours to shrink.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    /// Loads the configuration from the jail's working directory and environment.
    fn load(_jail: &figment::Jail) -> Result<ApiKeyConfig, ConfigError> {
        ApiKeyConfig::load(None)
    }

    #[test]
    fn defaults_without_any_source() {
        figment::Jail::expect_with(|jail| {
            let c = load(jail).unwrap();
            assert_eq!(c.settings.header, "API-KEY");
            assert_eq!(c.settings.database_url, DEFAULT_DATABASE_URL);
            assert!(c.settings.disable_keys_of_inactive_users);
            assert!(c.sections.is_empty());
            Ok(())
        });
    }

    #[test]
    fn precedence_rocket_then_file_then_env() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "Rocket.toml",
                r#"
                [default.apikey]
                cache_ttl = 5
                header = "X-From-Rocket"
                key_prefix = "rk"
                [default.api_key_my_service]
                key = "from_rocket"
                user = "alice"
                [default.api_key_other]
                key = "other_key"
                user = "bob"
                groups = ["b", "a", "a"]
                "#,
            )?;
            jail.create_file(
                "apikeys.toml",
                r#"
                [apikey]
                cache_ttl = "2m"
                header = "X-From-File"
                [api_key_my_service]
                key = "from_file"
                "#,
            )?;
            jail.set_env("APIKEY_HEADER", "X-From-Env");
            jail.set_env("APIKEY_API_KEY_MY_SERVICE__KEY", "from_env");
            jail.set_env("APIKEY_API_KEY_DIGITS__KEY", "12345678");
            jail.set_env("APIKEY_API_KEY_DIGITS__USER", "carol");
            jail.set_env("APIKEY_TEST_POSTGRES_URL", "postgres://ignored");
            let c = load(jail).unwrap();
            assert_eq!(c.settings.header, "X-From-Env");
            assert_eq!(c.settings.cache_ttl, Duration::from_secs(120));
            assert_eq!(c.settings.key_prefix, "rk");
            let names: Vec<_> = c.sections.iter().map(|s| s.tech_name.as_str()).collect();
            assert_eq!(names, ["digits", "my_service", "other"]);
            let my = &c.sections[1];
            assert_eq!(my.key.expose(), "from_env");
            assert_eq!(my.user.as_deref(), Some("alice"));
            assert_eq!(c.sections[0].key.expose(), "12345678");
            assert_eq!(c.sections[2].groups, Some(vec!["a".into(), "b".into()]));
            Ok(())
        });
    }

    #[test]
    fn apikey_config_names_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("custom.toml", "[api_key_x]\nkey = \"kx\"\nuser = \"u\"\n")?;
            jail.set_env(CONFIG_ENV, "custom.toml");
            let c = load(jail).unwrap();
            assert_eq!(c.sections[0].tech_name, "x");
            assert!(c.sections[0].source_name.contains("custom.toml"));
            jail.set_env(CONFIG_ENV, "missing.toml");
            let e = load(jail).unwrap_err();
            assert!(e.to_string().contains("missing.toml"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn bad_config_names_file_and_section() {
        for (file, section, needle) in [
            ("[apikey]\nbogus = 1\n", "apikey", "bogus"),
            ("[apikey]\ncache_ttl = \"soon\"\n", "apikey", "duration"),
            ("[apikey]\nheader = \"bad header\"\n", "apikey", "header"),
            ("[apikey]\nkey_prefix = \"A_B\"\n", "apikey", "key_prefix"),
            ("[apikey]\nrate_limit = \"fast\"\n", "apikey", "rate_limit"),
            (
                "[api_key_x]\nkey = \"k\"\nrate_limit = \"0/1m\"\n",
                "api_key_x",
                "rate_limit",
            ),
            ("[api_key_x]\nuser = \"u\"\n", "api_key_x", "no `key`"),
            ("[api_key_x]\nkey = \"\"\n", "api_key_x", "no `key`"),
            (
                "[api_key_x]\nkey = \"k\"\ncolor = 1\n",
                "api_key_x",
                "color",
            ),
            (
                "[api_key_x]\nkey = \"has space\"\n",
                "api_key_x",
                "not usable",
            ),
            ("[api_key_x]\nkey = \"ak_bad\"\n", "api_key_x", "not usable"),
            (
                "[api_key_My_X]\nkey = \"k\"\n",
                "api_key_My_X",
                "api_key_my_x",
            ),
            (
                "[api_key_a]\nkey = \"same\"\n[api_key_b]\nkey = \"same\"\n",
                "api_key_b",
                "same `key`",
            ),
        ] {
            figment::Jail::expect_with(|jail| {
                jail.create_file("apikeys.toml", file)?;
                let e = load(jail).unwrap_err();
                assert_eq!(e.section, section, "{file}");
                assert!(e.source_name.contains("apikeys.toml"), "{e}");
                let text = e.to_string();
                assert!(text.contains(needle), "{file}: {text}");
                assert!(text.contains("apikeys.toml"), "{text}");
                Ok(())
            });
        }
    }

    #[test]
    fn environment_values_are_taken_verbatim() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("APIKEY_API_KEY_BOT__KEY", "000000000000000042");
            jail.set_env("APIKEY_API_KEY_BOT__USER", "true");
            jail.set_env("APIKEY_API_KEY_BOT__GROUPS", "billing, 007 ,");
            jail.set_env("APIKEY_API_KEY_FLAG__KEY", "true");
            jail.set_env("APIKEY_API_KEY_FLAG__USER", "0042");
            jail.set_env("APIKEY_API_KEY_FLAG__GROUPS", "[\"a\", \"b\"]");
            jail.set_env("APIKEY_PEPPER", "000123");
            jail.set_env("APIKEY_HEADER", "X-Key");
            jail.set_env("APIKEY_CACHE_TTL", "30");
            jail.set_env("APIKEY_NEGATIVE_CACHE_TTL", "2m");
            jail.set_env("APIKEY_DISABLE_KEYS_OF_INACTIVE_USERS", "false");
            jail.set_env("APIKEY_ACTOR", "someone");
            let c = load(jail).unwrap();
            let bot = &c.sections[0];
            assert_eq!(bot.key.expose(), "000000000000000042");
            assert_eq!(bot.user.as_deref(), Some("true"));
            assert_eq!(bot.groups, Some(vec!["007".into(), "billing".into()]));
            let flag = &c.sections[1];
            assert_eq!(flag.key.expose(), "true");
            assert_eq!(flag.user.as_deref(), Some("0042"));
            assert_eq!(flag.groups, Some(vec!["a".into(), "b".into()]));
            assert_eq!(
                c.settings.pepper.as_ref().map(Secret::expose),
                Some("000123")
            );
            assert_eq!(c.settings.header, "X-Key");
            assert_eq!(c.settings.cache_ttl, Duration::from_secs(30));
            assert_eq!(c.settings.negative_cache_ttl, Duration::from_secs(120));
            assert!(!c.settings.disable_keys_of_inactive_users);
            Ok(())
        });
    }

    #[test]
    fn config_errors_never_repeat_a_value() {
        const SECRET: &str = "s3cr3t-value-never-shown";
        // A forgotten `__KEY`: the variable names a whole section.
        figment::Jail::expect_with(|jail| {
            jail.set_env("APIKEY_API_KEY_MY_SERVICE", SECRET);
            let e = load(jail).unwrap_err().to_string();
            assert!(!e.contains(SECRET), "{e}");
            assert!(e.contains("APIKEY_API_KEY_MY_SERVICE__KEY"), "{e}");
            Ok(())
        });
        for file in [
            format!("[api_key_x]\nkey = [\"{SECRET}\"]\nuser = \"u\"\n"),
            format!("[api_key_x]\nkey = \"k\"\nuser = [\"{SECRET}\"]\n"),
            format!("[api_key_x]\nkey = \"k\"\nrate_limit = \"{SECRET}\"\n"),
            format!("[api_key_x]\nkey = \"has space {SECRET}\"\n"),
            format!("api_key_x = \"{SECRET}\"\n"),
            format!("[apikey]\ncache_ttl = \"{SECRET}\"\n"),
            format!("[apikey]\nheader = \"bad {SECRET}\"\n"),
            format!("[apikey]\nkey_prefix = \"{SECRET}\"\n"),
            format!("[apikey]\nrate_limit = \"{SECRET}\"\n"),
            format!("[apikey]\npepper = [\"{SECRET}\"]\n"),
            format!("[apikey]\ndisable_keys_of_inactive_users = \"{SECRET}\"\n"),
        ] {
            figment::Jail::expect_with(|jail| {
                jail.create_file("apikeys.toml", &file)?;
                let e = load(jail).unwrap_err();
                let text = e.to_string();
                assert!(!text.contains(SECRET), "{file}: {text}");
                assert!(text.contains("apikeys.toml"), "{text}");
                Ok(())
            });
        }
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:pw@host:5432/db?x=1"),
            "postgres://u:***@host:5432/db?x=1"
        );
        assert_eq!(redact_url("postgres://u@host/db"), "postgres://u@host/db");
        assert_eq!(
            redact_url("sqlite://apikeys.db?mode=rwc"),
            "sqlite://apikeys.db?mode=rwc"
        );
        assert_eq!(redact_url("memory:"), "memory:");
    }
}
