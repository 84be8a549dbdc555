//! The request path: a header value in, a [`Caller`] or an [`AuthError`] out.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use tokio::sync::OnceCell;

use crate::cache::{Caches, Valid};
use crate::config::{ApiKeyConfig, ConfigError, KeySection, Settings};
use crate::filter::{DigestFilter, FilterStats};
use crate::limit::Limiter;
use crate::store::{ChangeListener, SharedStore, StoreError};
use crate::task::Background;
use crate::usage::{Usage, USAGE_FLUSH};
use crate::{Caller, Digest, Hasher, KeyFormat, KeyRecord, Match, RateLimit};

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
    /// The key is over its rate limit; retry after this many seconds. → 429
    #[error("the API key is over its rate limit")]
    RateLimited {
        /// Seconds until a request would be accepted again (at least 1).
        retry_after_secs: u32,
    },
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

/// One store lookup in flight, shared by every request that misses on the same digest in the
/// same cache generation.
type Lookup = OnceCell<Result<Valid, AuthError>>;

#[derive(Default)]
struct Sections {
    by_digest: HashMap<Digest, KeySection>,
    /// Tech names whose stored secret is replaced by a config section.
    overridden: HashSet<String>,
}

/// Verifies keys against config sections and a [`KeyStore`](crate::KeyStore), with caches in
/// front of the store.
///
/// Precedence follows Odoo's `server_environment`: a `[api_key_<tech_name>]` section replaces
/// the stored secret of the key with that tech name (the stored one stops working); a section
/// with no stored key is a key on its own and names its `user`.
///
/// Valid keys are cached for `cache_ttl`, unknown ones (apart, bounded) for
/// `negative_cache_ttl`. Every change the store announces — made here, by the CLI or by another
/// instance — drops exactly the entries it affects; expiry is re-checked on every hit.
pub struct Verifier {
    store: SharedStore,
    hasher: Hasher,
    format: KeyFormat,
    settings: Settings,
    sections: Sections,
    caches: Arc<Caches>,
    /// Lookups in flight, with the cache generation they started in: a request that arrives
    /// after a change (a newer generation) never joins a lookup from before it.
    inflight: Mutex<HashMap<Digest, (u64, Arc<Lookup>)>>,
    filter: DigestFilter,
    store_queries: AtomicU64,
    filtered: AtomicU64,
    limiter: Limiter,
    usage: Arc<Usage>,
    _usage_writer: Background,
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

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn unavailable(e: StoreError) -> AuthError {
    log::error!("API key lookup failed: {e}");
    AuthError::Unavailable
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
        let default_limit = config
            .settings
            .rate_limit
            .as_deref()
            .map(str::parse::<RateLimit>)
            .transpose()
            .map_err(|message| ConfigError {
                section: "apikey".into(),
                source_name: "the configuration".into(),
                message: format!("rate_limit: {message}"),
            })?;
        let usage = Arc::new(Usage::default());
        let usage_writer = Background(tokio::spawn(Usage::write_every(
            Arc::clone(&usage),
            store.clone(),
            USAGE_FLUSH,
        )));
        let caches = Arc::new(Caches::new(
            config.settings.cache_ttl,
            config.settings.negative_cache_ttl,
        ));
        // Registered before the first lookup, so no change can slip between.
        let listener: Arc<dyn ChangeListener> = caches.clone();
        store.changes().listen(Arc::downgrade(&listener));
        let filter = DigestFilter::start(store.clone());
        Ok(Verifier {
            store,
            hasher,
            format,
            settings: config.settings,
            sections,
            caches,
            inflight: Mutex::new(HashMap::new()),
            filter,
            store_queries: AtomicU64::new(0),
            filtered: AtomicU64::new(0),
            limiter: Limiter::new(default_limit),
            usage,
            _usage_writer: usage_writer,
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

    /// How many store queries verification has made so far (cache misses).
    pub fn store_queries(&self) -> u64 {
        self.store_queries.load(Ordering::Relaxed)
    }

    /// How many unknown keys the digest filter refused without a store query.
    pub fn filtered(&self) -> u64 {
        self.filtered.load(Ordering::Relaxed)
    }

    /// The state of the digest filter.
    pub fn filter_stats(&self) -> FilterStats {
        self.filter.stats()
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
        // Only HTTP's optional white space (space, tab) surrounds a field value; anything
        // else, a no-break space say, is part of the value and makes it invalid.
        match first.map(|v| v.trim_matches([' ', '\t'])) {
            None | Some("") => Err(AuthError::Missing),
            Some(value) => self.verify(value).await,
        }
    }

    /// Verifies one key.
    pub async fn verify(&self, key: &str) -> Result<Caller, AuthError> {
        // Malformed values never reach a cache or the store.
        if let Err(why) = self.format.check(key) {
            log::info!("API key refused before lookup: {why}");
            return Err(AuthError::Invalid);
        }
        let digest = self.hasher.digest(key);
        let now = unix_now();
        let minute = (now / 60) as u32;
        if let Some((valid, first_this_minute)) = self.caches.get(&digest, minute) {
            return self.accept(&digest, &valid, now, Some(first_this_minute));
        }
        // A digest the store never held (a spray of random keys) costs no store query.
        if self.filter.excludes(&digest) && !self.sections.by_digest.contains_key(&digest) {
            self.filtered.fetch_add(1, Ordering::Relaxed);
            return Err(AuthError::Invalid);
        }
        if self.caches.is_known_unknown(&digest) {
            return Err(AuthError::Invalid);
        }
        let generation = self.caches.generation();
        // Concurrent misses for one digest in one generation share a single store query.
        let cell = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            match inflight.get(&digest) {
                Some((g, cell)) if *g == generation => Arc::clone(cell),
                _ => {
                    let cell = Arc::new(Lookup::new());
                    inflight.insert(digest, (generation, Arc::clone(&cell)));
                    cell
                }
            }
        };
        let mut leader = false;
        let outcome = cell
            .get_or_init(|| {
                leader = true;
                self.resolve(&digest)
            })
            .await
            .clone();
        {
            let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            if inflight
                .get(&digest)
                .is_some_and(|(_, c)| Arc::ptr_eq(c, &cell))
            {
                inflight.remove(&digest);
            }
        }
        match outcome {
            Ok(valid) => {
                if leader {
                    self.caches
                        .remember(digest, valid.clone(), generation, minute);
                }
                // A freshly cached entry is noted as used this minute: note it here.
                let first = self.caches.enabled().then_some(true);
                self.accept(&digest, &valid, now, first)
            }
            Err(AuthError::Invalid) => {
                if leader {
                    self.caches.remember_unknown(digest, generation);
                }
                Err(AuthError::Invalid)
            }
            Err(e) => Err(e),
        }
    }

    /// Re-checks expiry on every hit, then counts the request against the key's rate limit
    /// and notes its use (`first_this_minute` comes from the cache entry; `None` when the
    /// cache is off).
    fn accept(
        &self,
        digest: &Digest,
        valid: &Valid,
        now: i64,
        first_this_minute: Option<bool>,
    ) -> Result<Caller, AuthError> {
        if valid.not_after <= now {
            log::info!("API key {:?} refused: expired", valid.caller.key_name());
            self.caches.forget(digest);
            return Err(AuthError::Invalid);
        }
        if let Err(wait) = self.limiter.check(valid.caller.tech_name()) {
            log::info!(
                "API key {:?} refused: over its rate limit",
                valid.caller.key_name()
            );
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Err(AuthError::RateLimited {
                retry_after_secs: u32::try_from(secs.max(1)).unwrap_or(u32::MAX),
            });
        }
        match first_this_minute {
            Some(true) => self.usage.push(&valid.caller),
            Some(false) => {}
            None => self.usage.note(&valid.caller, now),
        }
        Ok(valid.caller.clone())
    }

    /// Writes the pending last-used times now (they are written every minute in the
    /// background otherwise).
    pub async fn flush_usage(&self) -> Result<(), StoreError> {
        self.usage.write(&self.store).await
    }

    /// How many valid keys are cached right now.
    pub fn cached_keys(&self) -> usize {
        self.caches.len()
    }

    /// What the store (and the config sections) say of a digest.
    async fn resolve(&self, digest: &Digest) -> Result<Valid, AuthError> {
        let now = OffsetDateTime::now_utc();
        if let Some((stored, section)) = self.sections.by_digest.get_key_value(digest) {
            if !stored.ct_eq(digest) {
                return Err(AuthError::Invalid);
            }
            return self.resolve_section(section, now).await;
        }
        self.store_queries.fetch_add(1, Ordering::Relaxed);
        let found = self
            .store
            .find_by_digest(digest)
            .await
            .map_err(unavailable)?;
        match found {
            Some(m) if m.digest.ct_eq(digest) => self.check_match(m, now),
            _ => {
                log::info!("API key refused: unknown key");
                Err(AuthError::Invalid)
            }
        }
    }

    fn check_match(&self, m: Match, now: OffsetDateTime) -> Result<Valid, AuthError> {
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
        if let Some(why) = refused {
            log::info!("API key {:?} refused: {why}", r.name);
            return Err(AuthError::Invalid);
        }
        self.limiter.configure(
            &r.tech_name,
            r.rate_limit.as_deref().and_then(|l| l.parse().ok()),
        );
        let not_after = [r.expires_at, m.valid_until]
            .into_iter()
            .flatten()
            .min()
            .map(OffsetDateTime::unix_timestamp);
        Ok(Valid::new(
            Caller::new(&r.user, &r.name, &r.tech_name, &r.groups),
            not_after,
        ))
    }

    async fn resolve_section(
        &self,
        section: &KeySection,
        now: OffsetDateTime,
    ) -> Result<Valid, AuthError> {
        self.store_queries.fetch_add(1, Ordering::Relaxed);
        let stored: Option<KeyRecord> = self
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
        let (user, name, groups, user_active, expires_at) = match &stored {
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
                    self.user_active(user).await?
                };
                let groups = section.groups.as_deref().unwrap_or(&r.groups);
                (user, r.name.as_str(), groups, user_active, r.expires_at)
            }
            None => {
                let Some(user) = section.user.as_deref() else {
                    return refuse("no stored key of that tech name and no `user`");
                };
                let user_active = self.user_active(user).await?;
                let groups = section.groups.as_deref().unwrap_or_default();
                (user, section.tech_name.as_str(), groups, user_active, None)
            }
        };
        if self.settings.disable_keys_of_inactive_users && !user_active {
            return refuse("its user is disabled");
        }
        let stored_limit = stored.as_ref().and_then(|r| r.rate_limit.as_deref());
        self.limiter.configure(
            &section.tech_name,
            section
                .rate_limit
                .or_else(|| stored_limit.and_then(|l| l.parse().ok())),
        );
        Ok(Valid::new(
            Caller::new(user, name, &section.tech_name, groups),
            expires_at.map(OffsetDateTime::unix_timestamp),
        ))
    }

    async fn user_active(&self, user: &str) -> Result<bool, AuthError> {
        self.store_queries.fetch_add(1, Ordering::Relaxed);
        self.store.user_active(user).await.map_err(unavailable)
    }
}

/// A verifier shared between threads.
pub type SharedVerifier = Arc<Verifier>;
