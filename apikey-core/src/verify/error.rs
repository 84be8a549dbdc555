//! Why a request is refused, and why a verifier cannot be built.

use crate::config::ConfigError;
use crate::store::StoreError;

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
    /// The key is valid but bound to networks the client's address is not in (or the
    /// address is unknown). → 403
    #[error("the API key may not be used from this address")]
    AddressNotAllowed,
    /// The key store could not be asked. → 503, never the handler.
    #[error("the API key store is unavailable")]
    Unavailable,
    /// The key is over its rate limit; retry after this many seconds. → 429
    #[error("the API key is over its rate limit")]
    RateLimited {
        /// Seconds until a request would be accepted again (at least 1).
        retry_after_secs: u32,
    },
    /// The key has used up its quota for the current period; it is refilled after this many
    /// seconds. → 429 with its own problem detail
    #[error("the API key has used up its quota")]
    QuotaExhausted {
        /// Seconds until the quota is refilled (at least 1).
        retry_after_secs: u32,
    },
}

/// A failure to build a [`Verifier`](crate::Verifier).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The configuration is not usable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store could not be opened or asked.
    #[error(transparent)]
    Store(#[from] StoreError),
}
