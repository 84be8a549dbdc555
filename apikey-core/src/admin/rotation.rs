//! Holders rotating their own key: the request is authenticated by the key itself, the new key
//! is returned once, and the old one keeps working for a grace period. What adapters mount at
//! `POST /apikey/rotate` (opt-in).

use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use super::KeyManager;
use crate::config::ApiKeyConfig;
use crate::key::{KeyDigest, Secret};
use crate::model::{Actor, Identity, OwnRotation, RotationRefusal};
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
    /// The secret that asked is in its rotation grace: only the key's current secret may
    /// rotate it (else whoever holds an old secret could take the key over).
    #[error("a secret in its rotation grace cannot rotate the key")]
    InGrace,
    /// The key was rotated (by anyone) less than the minimum interval ago.
    #[error("the key rotated itself a moment ago; retry after the Retry-After delay")]
    TooSoon {
        /// Seconds until it may rotate itself again (at least 1).
        retry_after_secs: u32,
    },
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for RotateError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::RotationRefused(RotationRefusal::SecretInGrace) => RotateError::InGrace,
            StoreError::RotationRefused(RotationRefusal::TooSoon { retry_after_secs }) => {
                RotateError::TooSoon { retry_after_secs }
            }
            other => RotateError::Store(other),
        }
    }
}

impl RotateError {
    /// The HTTP status of the refusal: 403, 429, or 503 (404 for a key deleted meanwhile).
    pub fn status(&self) -> u16 {
        match self {
            RotateError::Configured | RotateError::InGrace => 403,
            RotateError::TooSoon { .. } => 429,
            RotateError::Store(StoreError::NotFound(_)) => 404,
            RotateError::Store(StoreError::Unavailable(_)) => 503,
            RotateError::Store(_) => 409,
        }
    }
}

/// The audit action of a key rotating itself.
pub const SELF_ROTATE_ACTION: &str = "rotate";

/// The audit action of a rotation refused because the secret that asked is in its grace.
pub const REFUSED_ACTION: &str = "rotate-refused";

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

    /// Rotates the key of `caller` (verified by `verifier` on this request, with the secret
    /// whose digest is `presented`: [`Verified::secret`](crate::Verified::secret)): a new
    /// secret, the old one in grace. Refused for a key set in a config
    /// section, for a secret that is itself in its rotation grace (403; only the current
    /// secret may rotate the key), and within `self_rotation_every` of the key's last
    /// rotation, whoever made it (429). Both rules are decided by the store under the key's
    /// lock, so of concurrent rotations of one key exactly one is made.
    pub async fn rotate(
        &self,
        verifier: &Verifier,
        caller: &Identity,
        presented: &KeyDigest,
    ) -> Result<Rotated, RotateError> {
        let name = caller.key_name();
        if verifier.is_configured(caller.tech_name()) {
            crate::obs::info!(
                "API key {name:?} may not rotate itself: it is set in a config section"
            );
            return Err(RotateError::Configured);
        }
        let rule = OwnRotation {
            presented: *presented,
            every: self.every,
        };
        let keys = self.manager.clone().with_actor(Self::actor_of(caller));
        let now = OffsetDateTime::now_utc();
        let rotated = keys.rotate_own(name, self.grace, rule).await;
        let key = match rotated {
            Ok((_, key)) => key,
            Err(e) => {
                let e = RotateError::from(e);
                match &e {
                    RotateError::InGrace => {
                        crate::obs::warning!(
                            "API key {name:?} refused a rotation asked by a secret in its grace"
                        );
                        // Audited: a thief holding an old secret shows up in the trail.
                        keys.note(REFUSED_ACTION, name, &e.to_string()).await?;
                    }
                    RotateError::TooSoon { retry_after_secs } => crate::obs::info!(
                        "API key {name:?} may not rotate itself again for {retry_after_secs} s"
                    ),
                    _ => {}
                }
                return Err(e);
            }
        };
        let until = (!self.grace.is_zero())
            .then(|| time::Duration::try_from(self.grace).ok())
            .flatten()
            .and_then(|g| now.checked_add(g));
        crate::obs::info!("API key {name:?} rotated itself");
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
