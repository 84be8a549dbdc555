//! The request path: a header value in, a [`Caller`] or an [`AuthError`] out.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::config::{ApiKeyConfig, ConfigError, KeySection, Settings};
use crate::store::{SharedStore, StoreError};
use crate::{Caller, Digest, Hasher, KeyFormat, Match};

/// Why a request is not let in. Carries nothing about the presented value: the same
/// [`AuthError::Invalid`] answers every kind of wrong key, so responses are no oracle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No key was sent (header absent or empty). → 401
    #[error("an API key is required")]
    Missing,
    /// The key is not valid: unknown, wrong, malformed, revoked, expired, of a disabled user,
    /// or sent more than once. → 401
    #[error("the API key is not valid")]
    Invalid,
    /// The key is valid but not in a group this route allows. → 403
    #[error("the API key is not allowed to use this resource")]
    Forbidden,
    /// The key store could not be asked. → 503, never the handler.
    #[error("the API key store is unavailable")]
    Unavailable,
}

/// A failure to build a [`Verifier`].
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The configuration is not usable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store could not be opened or asked.
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Default)]
struct Sections {
    by_digest: HashMap<Digest, KeySection>,
    /// Tech names whose stored secret is replaced by a config section.
    overridden: HashSet<String>,
}

/// Verifies keys against config sections and a [`KeyStore`](crate::KeyStore).
///
/// Precedence follows Odoo's `server_environment`: a `[api_key_<tech_name>]` section replaces
/// the stored secret of the key with that tech name (the stored one stops working); a section
/// with no stored key is a key on its own and names its `user`.
pub struct Verifier {
    store: SharedStore,
    hasher: Hasher,
    format: KeyFormat,
    settings: Settings,
    sections: Sections,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("store", &self.store)
            .field("settings", &self.settings)
            .field("sections", &self.sections.by_digest.len())
            .finish()
    }
}

impl Verifier {
    /// Builds a verifier. Every section without `user` must match a stored key's tech name.
    pub async fn new(config: ApiKeyConfig, store: SharedStore) -> Result<Self, SetupError> {
        let hasher = Hasher::new(config.settings.pepper.as_ref());
        let format = config.key_format();
        let mut sections = Sections::default();
        for section in config.sections {
            if section.user.is_none() && store.get_by_tech_name(&section.tech_name).await?.is_none()
            {
                return Err(ConfigError {
                    section: section.section_name(),
                    source_name: section.source_name.clone(),
                    message: format!(
                        "no stored key has the tech name {:?}, so this section is a key on its \
                         own and needs `user = \"…\"`",
                        section.tech_name
                    ),
                }
                .into());
            }
            sections.overridden.insert(section.tech_name.clone());
            sections
                .by_digest
                .insert(hasher.digest(section.key.expose()), section);
        }
        Ok(Verifier {
            store,
            hasher,
            format,
            settings: config.settings,
            sections,
        })
    }

    /// The header that carries keys.
    pub fn header(&self) -> &str {
        &self.settings.header
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The store behind this verifier.
    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    /// The hasher (with the configured pepper).
    pub fn hasher(&self) -> &Hasher {
        &self.hasher
    }

    /// The key format (with the configured prefix).
    pub fn format(&self) -> &KeyFormat {
        &self.format
    }

    /// Verifies the values of the key header of one request. No value, or only an empty one,
    /// is [`AuthError::Missing`]; several values are [`AuthError::Invalid`].
    pub async fn verify_header<'a, I>(&self, values: I) -> Result<Caller, AuthError>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut values = values.into_iter();
        let first = values.next();
        if values.next().is_some() {
            log::info!("API key refused: the key header was sent more than once");
            return Err(AuthError::Invalid);
        }
        match first.map(str::trim) {
            None | Some("") => Err(AuthError::Missing),
            Some(value) => self.verify(value).await,
        }
    }

    /// Verifies one key.
    pub async fn verify(&self, key: &str) -> Result<Caller, AuthError> {
        if let Err(why) = self.format.check(key) {
            log::info!("API key refused before lookup: {why}");
            return Err(AuthError::Invalid);
        }
        let digest = self.hasher.digest(key);
        let now = OffsetDateTime::now_utc();
        if let Some(section) = self.sections.by_digest.get(&digest) {
            return self.verify_section(section, now).await;
        }
        let found = self.store.find_by_digest(&digest).await.map_err(|e| {
            log::error!("API key lookup failed: {e}");
            AuthError::Unavailable
        })?;
        match found {
            Some(m) if m.digest.ct_eq(&digest) => self.check_match(m, now).await,
            _ => {
                log::info!("API key refused: unknown key");
                Err(AuthError::Invalid)
            }
        }
    }

    async fn check_match(&self, m: Match, now: OffsetDateTime) -> Result<Caller, AuthError> {
        let r = &m.record;
        let refused = if self.sections.overridden.contains(&r.tech_name) {
            Some("its secret is replaced by a config section")
        } else if !r.active {
            Some("revoked")
        } else if r.is_expired(now) {
            Some("expired")
        } else if m.valid_until.is_some_and(|t| t <= now) {
            Some("a rotated-out secret whose grace period ended")
        } else if self.settings.disable_keys_of_inactive_users && !r.user_active {
            Some("its user is disabled")
        } else {
            None
        };
        match refused {
            Some(why) => {
                log::info!("API key {:?} refused: {why}", r.name);
                Err(AuthError::Invalid)
            }
            None => Ok(Caller::new(&r.user, &r.name, &r.tech_name, &r.groups)),
        }
    }

    async fn verify_section(
        &self,
        section: &KeySection,
        now: OffsetDateTime,
    ) -> Result<Caller, AuthError> {
        let unavailable = |e: StoreError| {
            log::error!("API key lookup failed: {e}");
            AuthError::Unavailable
        };
        let stored = self
            .store
            .get_by_tech_name(&section.tech_name)
            .await
            .map_err(unavailable)?;
        let refuse = |why: &str| {
            log::info!(
                "API key of section [{}] refused: {why}",
                section.section_name()
            );
            Err(AuthError::Invalid)
        };
        let (user, name, groups, user_active) = match &stored {
            Some(r) => {
                if !r.active {
                    return refuse("the stored key is revoked");
                }
                if r.is_expired(now) {
                    return refuse("the stored key is expired");
                }
                let user = section.user.as_deref().unwrap_or(&r.user);
                let user_active = if user == r.user {
                    r.user_active
                } else {
                    self.store.user_active(user).await.map_err(unavailable)?
                };
                let groups = section.groups.as_deref().unwrap_or(&r.groups);
                (user, r.name.as_str(), groups, user_active)
            }
            None => {
                let Some(user) = section.user.as_deref() else {
                    return refuse("no stored key of that tech name and no `user`");
                };
                let user_active = self.store.user_active(user).await.map_err(unavailable)?;
                let groups = section.groups.as_deref().unwrap_or_default();
                (user, section.tech_name.as_str(), groups, user_active)
            }
        };
        if self.settings.disable_keys_of_inactive_users && !user_active {
            return refuse("its user is disabled");
        }
        Ok(Caller::new(user, name, &section.tech_name, groups))
    }
}

/// A verifier shared between threads.
pub type SharedVerifier = Arc<Verifier>;
