//! Why limits could not be set up or asked.

use std::time::Duration;

use crate::store::StoreError;

/// Why limits could not be set up, or a shared backend could not be asked. A backend that
/// fails on the request path is not an error there: limits fall back to per instance.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitsError {
    /// A setting that cannot work (`limits_url`, `limits_ca`): a configuration error, not an
    /// outage.
    #[error("{0}")]
    Config(String),
    /// The shared backend is not connected (yet, or any more).
    #[error("not connected")]
    NotConnected,
    /// A call got no answer within its time limit.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The backend refused the call or the link failed (Redis is named by its server, never
    /// with a password).
    #[error("{0}")]
    Backend(String),
    /// The key store, where quotas are counted without Redis.
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[cfg(feature = "redis")]
impl From<redis::RedisError> for LimitsError {
    fn from(e: redis::RedisError) -> Self {
        LimitsError::Backend(e.to_string())
    }
}
