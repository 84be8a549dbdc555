//! Holders rotating their own key: the request is authenticated by the key itself, the new key
//! is returned once, and the old one keeps working for a grace period. What adapters mount at
//! `POST /apikey/rotate` (opt-in).

use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use super::KeyManager;
use crate::config::ApiKeyConfig;
use crate::key::Secret;
use crate::model::{Actor, AuditFilter, Identity};
use crate::store::{SharedStore, StoreError};
use crate::verify::Verifier;

/// A key's rotation of itself, as the caller receives it (shown this once). Its JSON form
/// (`Serialize`) holds the new key; `Debug` never does.
#[derive(Debug)]
pub struct Rotated {
    /// The key's name.
    pub name: String,
    /// The new key.
    pub key: Secret,
    /// Until when the key that asked keeps working (none: it stopped at once).
    pub previous_key_valid_until: Option<OffsetDateTime>,
}

impl Serialize for Rotated {
    /// `{"name": …, "key": …, "previous_key_valid_until": RFC 3339 or null}`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let until = self.previous_key_valid_until.and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        });
        let mut out = s.serialize_struct("Rotated", 3)?;
        out.serialize_field("name", &self.name)?;
        out.serialize_field("key", self.key.expose())?;
        out.serialize_field("previous_key_valid_until", &until)?;
        out.end()
    }
}

/// Why a key may not rotate itself now.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// The key comes from a config section: its value lives in a file, not in the store.
    #[error("a key set in the configuration cannot rotate itself; change it where it is set")]
    Configured,
    /// The key rotated itself less than the minimum interval ago.
    #[error("the key rotated itself a moment ago; retry after the Retry-After delay")]
    TooSoon {
        /// Seconds until it may rotate itself again (at least 1).
        retry_after_secs: u32,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RotateError {
    /// The HTTP status of the refusal: 403, 429, or 503 (404 for a key deleted meanwhile).
    pub fn status(&self) -> u16 {
        match self {
            RotateError::Configured => 403,
            RotateError::TooSoon { .. } => 429,
            RotateError::Store(StoreError::NotFound(_)) => 404,
            RotateError::Store(StoreError::Unavailable(_)) => 503,
            RotateError::Store(_) => 409,
        }
    }
}

/// The audit action of a key rotating itself.
pub const SELF_ROTATE_ACTION: &str = "rotate";

/// Self-rotation: mount it (Rocket: managed state and `apikey_rocket::rotation::routes()`;
/// axum: `apikey_axum::rotation::route`) to let holders rotate their own key.
#[derive(Clone)]
pub struct SelfRotation {
    manager: KeyManager,
    grace: Duration,
    every: Duration,
}

impl SelfRotation {
    /// Rotation on `store`, with the grace period and minimum interval of `config`
    /// (`self_rotation_grace`, 24h; `self_rotation_every`, 1h).
    pub fn new(store: SharedStore, config: &ApiKeyConfig) -> Self {
        SelfRotation {
            manager: KeyManager::new(store, config),
            grace: config.settings.self_rotation_grace,
            every: config.settings.self_rotation_every,
        }
    }

    /// The actor a key's own rotation is recorded as: `key:<name>`.
    pub fn actor_of(identity: &Identity) -> Actor {
        Actor::escaped(&format!("key:{}", identity.key_name()))
    }

    /// Rotates the key of `caller` (verified by `verifier` on this request): a new secret, the
    /// old one in grace. Refused for a key set in a config section, and within
    /// `self_rotation_every` of the key's last rotation of itself.
    pub async fn rotate(
        &self,
        verifier: &Verifier,
        caller: &Identity,
    ) -> Result<Rotated, RotateError> {
        let name = caller.key_name();
        if verifier.is_configured(caller.tech_name()) {
            log::info!("API key {name:?} may not rotate itself: it is set in a config section");
            return Err(RotateError::Configured);
        }
        let actor = Self::actor_of(caller);
        let now = OffsetDateTime::now_utc();
        let window = time::Duration::try_from(self.every).unwrap_or(time::Duration::MAX);
        let trail = self
            .manager
            .audit(&AuditFilter {
                name: Some(name.to_owned()),
                since: Some(now.saturating_sub(window)),
            })
            .await?;
        let last = trail
            .iter()
            .filter(|a| a.action == SELF_ROTATE_ACTION && a.actor == actor.as_str())
            .map(|a| a.at)
            .max();
        if let Some(last) = last {
            let wait = (last + window - now).whole_seconds().max(1);
            log::info!("API key {name:?} may not rotate itself again for {wait} s");
            return Err(RotateError::TooSoon {
                retry_after_secs: u32::try_from(wait).unwrap_or(u32::MAX),
            });
        }
        let keys = self.manager.clone().with_actor(actor);
        let (_, key) = keys.rotate(name, self.grace).await?;
        let until = (!self.grace.is_zero())
            .then(|| time::Duration::try_from(self.grace).ok())
            .flatten()
            .and_then(|g| now.checked_add(g));
        log::info!("API key {name:?} rotated itself");
        Ok(Rotated {
            name: name.to_owned(),
            key,
            previous_key_valid_until: until,
        })
    }
}

impl std::fmt::Debug for SelfRotation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfRotation")
            .field("grace", &self.grace)
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}
