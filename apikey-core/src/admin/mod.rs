//! Key administration: the one path for every change to stored keys. It generates secrets,
//! stores only their digests, and checks what people type (groups, limits, lifetimes) before
//! any store sees it.

use std::collections::HashMap;
use std::time::Duration;

use time::OffsetDateTime;

use crate::config::ApiKeyConfig;
use crate::key::{GeneratedKey, KeyDigest, KeyFormat, KeyHasher, Secret};
use crate::model::{
    Actor, AllowIp, AuditFilter, AuditRecord, Groups, Imported, ImportedKey, KeyChange, KeyFilter,
    KeyRecord, Match, Meta, NewKey, NewSecret, OwnRotation, Quota, RateLimit, Scopes, UsageDay,
};
use crate::store::{SharedStore, StoreError};

mod leaks;
#[cfg(feature = "postgres")]
mod odoo;
mod rotation;
mod throttle;
pub mod usage;

pub use leaks::{
    Admitted, Label, LeakError, LeakReports, LEAK_ACTION, LEAK_ACTOR, MAX_REPORT_BYTES,
    REFUSED_PER_CLIENT, REFUSED_WINDOW, REPLAY_WINDOW,
};
#[cfg(feature = "postgres")]
pub use odoo::{OdooError, OdooReport};
pub use rotation::{RotateError, Rotated, SelfRotation, REFUSED_ACTION, SELF_ROTATE_ACTION};
pub use throttle::Failures;

/// Creates, changes and rotates keys: generates the secret, stores only its digest and stub,
/// and hands the secret back once. Every write is one atomic store operation.
#[derive(Debug, Clone)]
pub struct KeyManager {
    store: SharedStore,
    hasher: KeyHasher,
    format: KeyFormat,
    actor: Actor,
    /// The admin group: an import never grants it unless asked to.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    admin_group: String,
    /// The config sections' tech names and the users they name: an import never disables a
    /// user a section acts for.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    section_users: std::sync::Arc<[(String, Option<String>)]>,
}

/// What to create.
#[derive(Debug, Clone, Default)]
pub struct CreateKey {
    /// Unique name.
    pub name: String,
    /// User the key acts for.
    pub user: String,
    /// Groups (checked and normalised on creation).
    pub groups: Vec<String>,
    /// Lifetime from now; `None` never expires.
    pub expires_in: Option<Duration>,
    /// Its own rate limit.
    pub rate_limit: Option<RateLimit>,
    /// Its own quota.
    pub quota: Option<Quota>,
    /// The networks it is accepted from; empty: from anywhere.
    pub allow_ip: AllowIp,
    /// Scopes (checked and normalised on creation).
    pub scopes: Vec<String>,
    /// Words for people about the key.
    pub description: Option<String>,
    /// Metadata handed to handlers.
    pub meta: Meta,
}

fn after(now: OffsetDateTime, d: Duration) -> Result<OffsetDateTime, StoreError> {
    crate::model::expiry_after(now, d).map_err(StoreError::Invalid)
}

fn groups<I>(names: I) -> Result<Groups, StoreError>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    Groups::new(names).map_err(StoreError::Invalid)
}

impl KeyManager {
    /// A manager for `store` with the pepper and prefix of `config`.
    pub fn new(store: SharedStore, config: &ApiKeyConfig) -> Self {
        KeyManager {
            store,
            hasher: KeyHasher::new(config.settings.pepper.as_ref()),
            format: config.key_format(),
            actor: Actor::from_env(),
            admin_group: config.settings.admin_group.clone(),
            section_users: config
                .sections
                .iter()
                .map(|s| (s.tech_name.clone(), s.user.clone()))
                .collect(),
        }
    }

    /// The same manager recording its changes as made by `actor` (else `APIKEY_ACTOR`, else
    /// the OS user).
    pub fn with_actor(mut self, actor: Actor) -> Self {
        self.actor = actor;
        self
    }

    /// Who this manager's changes are recorded as made by.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// The key with this name.
    pub async fn get(&self, name: &str) -> Result<KeyRecord, StoreError> {
        self.store
            .get(name)
            .await?
            .ok_or_else(|| StoreError::NotFound(name.to_owned()))
    }

    /// The keys `filter` selects ([`KeyFilter::all`]: every key), sorted by name.
    pub async fn list(&self, filter: &KeyFilter) -> Result<Vec<KeyRecord>, StoreError> {
        self.store.list(filter).await
    }

    /// Revokes a key: it stops working at once, everywhere.
    pub async fn revoke(&self, name: &str) -> Result<KeyRecord, StoreError> {
        self.change(name, KeyChange::Active(false)).await
    }

    /// Re-activates a revoked key.
    pub async fn activate(&self, name: &str) -> Result<KeyRecord, StoreError> {
        self.change(name, KeyChange::Active(true)).await
    }

    /// Changes one key (groups, limits, networks, expiry, active flag) in one atomic store
    /// operation, audited as made by this manager's actor. An expiry in the past is refused
    /// ([`StoreError::Invalid`]), nothing changed.
    pub async fn change(&self, name: &str, change: KeyChange) -> Result<KeyRecord, StoreError> {
        change
            .check(OffsetDateTime::now_utc())
            .map_err(StoreError::Invalid)?;
        self.store.change(name, change, &self.actor).await
    }

    /// Deletes a key and all its secrets.
    pub async fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.store.delete(name, &self.actor).await
    }

    /// The digest of a key value, as this manager's stores keep it.
    pub(crate) fn digest_of(&self, key: &str) -> KeyDigest {
        self.hasher.digest(key)
    }

    /// The digest of a value that passes the key format check; `None` for one that can never
    /// be a key (a bad checksum, a bad character).
    pub(crate) fn checked_digest(&self, key: &str) -> Option<KeyDigest> {
        self.format.check(key).ok()?;
        Some(self.hasher.digest(key))
    }

    /// A key's requests per day (by tech name) from `since_day` on, oldest first.
    pub async fn usage(
        &self,
        tech_name: &str,
        since_day: i64,
    ) -> Result<Vec<UsageDay>, StoreError> {
        self.store.usage(tech_name, since_day).await
    }

    /// How many uses of a key's quota the current window has taken, wherever `settings` count
    /// them (Redis with `limits_url`, else the store).
    pub async fn quota_used(
        &self,
        settings: &crate::config::Settings,
        tech_name: &str,
        quota: Quota,
    ) -> Result<u64, crate::limits::LimitsError> {
        crate::limits::quota_used(settings, &self.store, tech_name, quota).await
    }

    /// Every key's requests from `since_day` on, by tech name.
    pub async fn usage_totals(&self, since_day: i64) -> Result<HashMap<String, u64>, StoreError> {
        self.store.usage_totals(since_day).await
    }

    /// The stored key of a digest, and that secret's life.
    pub(crate) async fn find(&self, digest: &KeyDigest) -> Result<Option<Match>, StoreError> {
        self.store.find_by_digest(digest).await
    }

    /// Disables or enables a user; returns how many keys the user has.
    pub async fn set_user_active(&self, user: &str, active: bool) -> Result<u64, StoreError> {
        self.store.set_user_active(user, active, &self.actor).await
    }

    fn generate(&self) -> Result<GeneratedKey, StoreError> {
        self.format
            .generate()
            .map_err(|e| StoreError::Unavailable(format!("the OS random generator failed: {e}")))
    }

    /// Creates a key with a new secret; returns the record and the secret (shown once).
    pub async fn create(&self, spec: CreateKey) -> Result<(KeyRecord, Secret), StoreError> {
        let generated = self.generate()?;
        let record = self
            .create_inner(spec, &generated.key, generated.stub)
            .await?;
        Ok((record, generated.key))
    }

    /// Creates `keys` when the store holds no key yet (a first start): their secrets, in
    /// order, to be shown once; `None` when the store already had keys or another process
    /// seeded it first.
    pub async fn seed(&self, keys: Vec<CreateKey>) -> Result<Option<Vec<Secret>>, StoreError> {
        if !self.list(&crate::model::KeyFilter::all()).await?.is_empty() {
            return Ok(None);
        }
        let mut secrets = Vec::with_capacity(keys.len());
        for spec in keys {
            match self.create(spec).await {
                Ok((_, secret)) => secrets.push(secret),
                // Another instance seeded the same store first.
                Err(StoreError::Duplicate(_)) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Ok(Some(secrets))
    }

    /// Checks a given secret (keys migrated from elsewhere) against the key format.
    fn usable(&self, key: &Secret) -> Result<(), StoreError> {
        self.format
            .check(key.expose())
            .map(drop)
            .map_err(|why| StoreError::Invalid(format!("the key is not usable: {why}")))
    }

    /// Creates a key with a given secret (keys migrated from elsewhere). The secret must pass
    /// the format check.
    pub async fn import(&self, spec: CreateKey, key: &Secret) -> Result<KeyRecord, StoreError> {
        self.usable(key)?;
        let stub = self.format.stub(key.expose());
        self.create_inner(spec, key, stub).await
    }

    async fn create_inner(
        &self,
        spec: CreateKey,
        key: &Secret,
        stub: String,
    ) -> Result<KeyRecord, StoreError> {
        let expires_at = spec
            .expires_in
            .map(|d| after(OffsetDateTime::now_utc(), d))
            .transpose()?;
        self.store
            .create(
                NewKey {
                    name: spec.name,
                    user: spec.user,
                    groups: groups(&spec.groups)?,
                    expires_at,
                    digest: self.hasher.digest(key.expose()),
                    stub,
                    rate_limit: spec.rate_limit,
                    quota: spec.quota,
                    allow_ip: spec.allow_ip,
                    scopes: Scopes::new(&spec.scopes).map_err(StoreError::Invalid)?,
                    description: spec.description,
                    meta: spec.meta,
                },
                &self.actor,
            )
            .await
    }

    /// Gives a key a new secret; the old one keeps working for `grace` (zero: stops now).
    pub async fn rotate(
        &self,
        name: &str,
        grace: Duration,
    ) -> Result<(KeyRecord, Secret), StoreError> {
        self.rotate_with(name, grace, None).await
    }

    /// [`rotate`](Self::rotate) for a key rotating itself: `rule` is decided by the store under
    /// the key's lock ([`StoreError::RotationRefused`] and nothing changed when it fails).
    pub async fn rotate_own(
        &self,
        name: &str,
        grace: Duration,
        rule: OwnRotation,
    ) -> Result<(KeyRecord, Secret), StoreError> {
        self.rotate_with(name, grace, Some(rule)).await
    }

    async fn rotate_with(
        &self,
        name: &str,
        grace: Duration,
        rule: Option<OwnRotation>,
    ) -> Result<(KeyRecord, Secret), StoreError> {
        let generated = self.generate()?;
        let until = if grace.is_zero() {
            None
        } else {
            Some(after(OffsetDateTime::now_utc(), grace)?)
        };
        let digest = self.hasher.digest(generated.key.expose());
        let mut secret = NewSecret::new(digest, generated.stub, until);
        secret.own = rule;
        let record = self.store.rotate(name, secret, &self.actor).await?;
        Ok((record, generated.key))
    }

    /// Brings over a key from another system with its plain value (which must pass the format
    /// check, like [`import`](Self::import)): created when new, brought in line (secret, user,
    /// groups, active flag) when it differs, left alone when it is the same.
    pub async fn import_key(
        &self,
        spec: CreateKey,
        key: &Secret,
        active: bool,
    ) -> Result<Imported, StoreError> {
        self.usable(key)?;
        let digest = self.hasher.digest(key.expose());
        let stub = self.format.stub(key.expose());
        self.import_digest(spec, digest, stub, active).await
    }

    /// [`import_key`](Self::import_key) for a secret already digested (and checked).
    pub(crate) async fn import_digest(
        &self,
        spec: CreateKey,
        digest: KeyDigest,
        stub: String,
        active: bool,
    ) -> Result<Imported, StoreError> {
        let new = NewKey {
            stub,
            digest,
            name: spec.name,
            user: spec.user,
            groups: groups(&spec.groups)?,
            expires_at: None,
            rate_limit: spec.rate_limit,
            quota: spec.quota,
            allow_ip: spec.allow_ip,
            scopes: Scopes::new(&spec.scopes).map_err(StoreError::Invalid)?,
            description: spec.description,
            meta: spec.meta,
        };
        self.store
            .import(ImportedKey { key: new, active }, &self.actor)
            .await
    }

    /// Deactivates every stored key in one transaction (a store restored into another
    /// environment, like Odoo's neutralize); returns how many were active.
    pub async fn neutralize(&self) -> Result<u64, StoreError> {
        self.store.deactivate_all(&self.actor).await
    }

    /// Whether a user is active (users never disabled are).
    pub async fn user_active(&self, user: &str) -> Result<bool, StoreError> {
        self.store.user_active(user).await
    }

    /// The audit trail entries `filter` selects, oldest first.
    pub async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        self.store.audit(filter).await
    }

    /// Records an event that changes no key (an admin page login or logout) in the audit
    /// trail, as made by this manager's actor.
    pub async fn note(&self, action: &str, name: &str, summary: &str) -> Result<(), StoreError> {
        self.store.note(action, name, summary, &self.actor).await
    }
}
