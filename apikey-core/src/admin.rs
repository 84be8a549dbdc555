//! Key administration on top of a store: generating secrets, hashing them, rotating them.

use std::time::Duration;

use time::OffsetDateTime;

use crate::config::ApiKeyConfig;
use crate::store::{SharedStore, StoreError};
use crate::{Hasher, KeyFormat, KeyRecord, NewKey, Secret};

/// Creates and rotates keys: generates the secret, stores only its digest and stub, and hands
/// the secret back once.
#[derive(Debug, Clone)]
pub struct KeyManager {
    store: SharedStore,
    hasher: Hasher,
    format: KeyFormat,
}

/// What to create.
#[derive(Debug, Clone, Default)]
pub struct CreateKey {
    /// Unique name.
    pub name: String,
    /// User the key acts for.
    pub user: String,
    /// Groups.
    pub groups: Vec<String>,
    /// Lifetime from now; `None` never expires.
    pub expires_in: Option<Duration>,
    /// Its own rate limit (`100/1m`).
    pub rate_limit: Option<String>,
}

fn after(now: OffsetDateTime, d: Duration) -> Result<OffsetDateTime, StoreError> {
    time::Duration::try_from(d)
        .ok()
        .and_then(|d| now.checked_add(d))
        .ok_or_else(|| StoreError::Invalid(format!("the duration {d:?} is too long")))
}

impl KeyManager {
    /// A manager for `store` with the pepper and prefix of `config`.
    pub fn new(store: SharedStore, config: &ApiKeyConfig) -> Self {
        KeyManager {
            store,
            hasher: Hasher::new(config.settings.pepper.as_ref()),
            format: config.key_format(),
        }
    }

    /// The store.
    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    fn generate(&self) -> Result<crate::GeneratedKey, StoreError> {
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

    /// Creates a key with a given secret (keys migrated from elsewhere). The secret must pass
    /// the format check.
    pub async fn import(&self, spec: CreateKey, key: &Secret) -> Result<KeyRecord, StoreError> {
        self.format
            .check(key.expose())
            .map_err(|why| StoreError::Invalid(format!("the key is not usable: {why}")))?;
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
            .create(NewKey {
                name: spec.name,
                user: spec.user,
                groups: spec.groups,
                expires_at,
                digest: self.hasher.digest(key.expose()),
                stub,
                rate_limit: spec.rate_limit,
            })
            .await
    }

    /// Gives a key a new secret; the old one keeps working for `grace` (zero: stops now).
    pub async fn rotate(
        &self,
        name: &str,
        grace: Duration,
    ) -> Result<(KeyRecord, Secret), StoreError> {
        let generated = self.generate()?;
        let until = if grace.is_zero() {
            None
        } else {
            Some(after(OffsetDateTime::now_utc(), grace)?)
        };
        let record = self
            .store
            .rotate(
                name,
                self.hasher.digest(generated.key.expose()),
                generated.stub,
                until,
            )
            .await?;
        Ok((record, generated.key))
    }
}
