//! Configuration: `[apikey]` settings and `[api_key_<tech_name>]` key sections, read with
//! figment from a base (Rocket's figment, with its profiles), a standalone `apikeys.toml` and
//! `APIKEY_…` variables.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Format, Toml};
use figment::value::Value;
use figment::{Figment, Profile};
use serde::Deserialize;

use crate::key::{slugify, KeyFormat, Secret};
use crate::model::{AllowIp, Groups, Meta, Quota, RateLimit, Scopes};

mod env;
mod errors;
mod odoo_ini;
mod settings;
#[cfg(test)]
mod tests;

use env::EnvProvider;
pub use errors::ConfigError;
use errors::{describe, source_of};
use settings::valid_header_name;
pub use settings::{
    redact_url, LeakAction, SecureCookie, Settings, DEFAULT_DATABASE_URL, DEFAULT_HEADER,
};

/// Environment variable naming the standalone config file.
pub const CONFIG_ENV: &str = "APIKEY_CONFIG";
/// Standalone config file read from the working directory when [`CONFIG_ENV`] is unset.
pub const CONFIG_FILE: &str = "apikeys.toml";
/// Prefix of config section names: `[api_key_<tech_name>]`.
pub const SECTION_PREFIX: &str = "api_key_";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSection {
    key: Option<Secret>,
    user: Option<String>,
    groups: Option<Groups>,
    rate_limit: Option<RateLimit>,
    quota: Option<Quota>,
    allow_ip: Option<AllowIp>,
    scopes: Option<Scopes>,
    meta: Option<Meta>,
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
    pub groups: Option<Groups>,
    /// Rate limit; when absent, the stored key's (or the default).
    pub rate_limit: Option<RateLimit>,
    /// Quota; when absent, the stored key's (or the default).
    pub quota: Option<Quota>,
    /// The networks the key is accepted from; when absent, the stored key's (or anywhere).
    pub allow_ip: Option<AllowIp>,
    /// Scopes; when absent, the stored key's (or none).
    pub scopes: Option<Scopes>,
    /// Metadata for handlers; when absent, the stored key's (or none).
    pub meta: Option<Meta>,
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
/// A file named explicitly (argument or `APIKEY_CONFIG`) must exist. One ending in `.conf`,
/// `.cfg` or `.ini` is read as an Odoo `server_environment` file: its `[api_key_*]` sections
/// only, values verbatim, `groups = a, b`.
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
    let with_file = if !path.is_file() {
        base
    } else if odoo_ini::is_ini(&path) {
        base.merge(odoo_ini::OdooIni(path))
    } else {
        base.merge(Toml::file_exact(path).profile(Profile::Global))
    };
    Ok(with_file.merge(EnvProvider))
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
        if let Err(message) = settings.admin_cookie_key_bytes() {
            return Err(fail("apikey", message));
        }
        if settings.database_url.trim().is_empty() {
            return Err(fail("apikey", "database_url is empty".into()));
        }
        if let Some(url) = &settings.limits_url {
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(fail(
                    "apikey",
                    "`limits_url` must be a Redis URL (redis://host:6379/0 or rediss://…)".into(),
                ));
            }
        }
        if let Some(path) = &settings.limits_ca {
            if !settings
                .limits_url
                .as_deref()
                .is_some_and(|u| u.starts_with("rediss://"))
            {
                return Err(fail(
                    "apikey",
                    "`limits_ca` applies to a TLS `limits_url` only (rediss://…)".into(),
                ));
            }
            if let Err(e) = std::fs::metadata(path) {
                return Err(fail(
                    "apikey",
                    format!("`limits_ca` cannot be read ({}): {e}", path.display()),
                ));
            }
        }
        if settings.feed_heartbeat < Duration::from_millis(10) {
            return Err(fail(
                "apikey",
                "`feed_heartbeat` must be at least 10ms (e.g. 5s)".into(),
            ));
        }
        if let Some(url) = &settings.feed_url {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(fail(
                    "apikey",
                    "`feed_url` must be a PostgreSQL URL (postgres://…)".into(),
                ));
            }
        }
        if settings.limits_prefix.is_empty()
            || !settings
                .limits_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b))
        {
            return Err(fail(
                "apikey",
                "`limits_prefix` must be letters, digits or _-.: (e.g. apikey)".into(),
            ));
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
            if raw.user.as_deref().is_some_and(|u| u.trim().is_empty()) {
                return Err(fail(name, "`user` is empty".into()));
            }
            sections.push(KeySection {
                tech_name: tech_name.to_owned(),
                key,
                user: raw.user,
                groups: raw.groups,
                rate_limit: raw.rate_limit,
                quota: raw.quota,
                allow_ip: raw.allow_ip,
                scopes: raw.scopes,
                meta: raw.meta,
                source_name: source_of(figment, name),
            });
        }
        Ok(ApiKeyConfig { settings, sections })
    }

    /// The key format of these settings.
    pub fn key_format(&self) -> KeyFormat {
        // `from_figment` validated the prefix; a hand-built config falls back to the default.
        KeyFormat::new(&self.settings.key_prefix).unwrap_or_default()
    }
}
