//! API keys for HTTP services, independent of any web framework.
//!
//! - [`KeyFormat`]: generated keys `<prefix>_<secret><checksum>` and the checks that reject
//!   malformed values before any lookup.
//! - [`Hasher`] / [`Digest`]: only SHA-256 (or HMAC-SHA256 with a pepper) digests are stored.
//! - [`KeyStore`]: where keys live ([`MemoryStore`], SQLite and PostgreSQL).
//! - [`config`]: `[apikey]` settings and `[api_key_<tech_name>]` sections (figment).
//! - [`Verifier`]: a header value in, a [`Caller`] or an [`AuthError`] out.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
mod cache;
pub mod config;
mod digest;
mod filter;
mod key;
mod limit;
mod model;
mod secret;
mod slug;
pub mod store;
mod task;
mod usage;
mod verify;

#[cfg(feature = "conformance")]
#[doc(hidden)]
pub mod conformance;

pub use admin::{CreateKey, KeyManager};
pub use cache::{NEGATIVE_CAPACITY, POSITIVE_CAPACITY};
pub use config::{ApiKeyConfig, ConfigError, Settings};
pub use digest::{Digest, Hasher};
pub use filter::FilterStats;
pub use key::{valid_prefix, GeneratedKey, KeyFormat, Malformed, Shape, MAX_KEY_LEN};
pub use limit::RateLimit;
pub use model::{check_groups, normalize_groups, Caller, Change, KeyRecord, Match, NewKey};
pub use secret::Secret;
pub use slug::slugify;
pub use store::{ChangeFeed, ChangeListener, KeyStore, MemoryStore, SharedStore, StoreError};
pub use verify::{AuthError, SetupError, SharedVerifier, Verifier};

/// Builds everything a service needs from configuration: opens the store named by
/// `database_url` (migrating it) and the verifier over it.
pub async fn setup(config: ApiKeyConfig) -> Result<SharedVerifier, SetupError> {
    let store = store::open(&config.settings.database_url).await?;
    Ok(std::sync::Arc::new(Verifier::new(config, store).await?))
}
