//! What became of a request, as metrics count it: [`RequestOutcome`], one label per refusal
//! reason (the reason [`AuthError`] carries inside) and `valid`.

use crate::model::{AuthError, InvalidKey};

/// What became of one request, as `apikey_requests_total{outcome}` counts it (feature
/// `metrics`). `forbidden` is counted for a valid key that the route then refused with 403,
/// on top of the `valid` its verification counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestOutcome {
    /// A valid key: the request goes on.
    Valid,
    /// No key was sent.
    Missing,
    /// A value that cannot be a key (our prefix with a bad checksum, control characters, …),
    /// or several key values.
    Malformed,
    /// A well-formed key that the store does not hold (or a secret replaced by a section).
    Unknown,
    /// A stored key that is revoked, or whose user is disabled.
    Revoked,
    /// A stored key that expired, or a rotated-out secret whose grace ended.
    Expired,
    /// A valid key outside the route's groups (403).
    Forbidden,
    /// Over its rate limit (429).
    RateLimited,
    /// Its quota used up (429).
    Quota,
    /// The store could not answer (503).
    Unavailable,
    /// A valid key used from an address outside its allowlist (403).
    AddressRefused,
}

impl RequestOutcome {
    /// Every outcome, in label order.
    pub const ALL: [RequestOutcome; 11] = [
        RequestOutcome::Valid,
        RequestOutcome::Missing,
        RequestOutcome::Malformed,
        RequestOutcome::Unknown,
        RequestOutcome::Revoked,
        RequestOutcome::Expired,
        RequestOutcome::Forbidden,
        RequestOutcome::RateLimited,
        RequestOutcome::Quota,
        RequestOutcome::Unavailable,
        RequestOutcome::AddressRefused,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            RequestOutcome::Valid => "valid",
            RequestOutcome::Missing => "missing",
            RequestOutcome::Malformed => "malformed",
            RequestOutcome::Unknown => "unknown",
            RequestOutcome::Revoked => "revoked",
            RequestOutcome::Expired => "expired",
            RequestOutcome::Forbidden => "forbidden",
            RequestOutcome::RateLimited => "rate_limited",
            RequestOutcome::Quota => "quota",
            RequestOutcome::Unavailable => "unavailable",
            RequestOutcome::AddressRefused => "address_refused",
        }
    }

    /// The position in [`ALL`](Self::ALL).
    #[cfg(feature = "metrics")]
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl RequestOutcome {
    /// The outcome a refusal is counted as.
    pub fn of(err: &AuthError) -> Self {
        match err {
            AuthError::Missing => RequestOutcome::Missing,
            AuthError::Invalid(InvalidKey::Malformed) => RequestOutcome::Malformed,
            AuthError::Invalid(InvalidKey::Unknown) => RequestOutcome::Unknown,
            AuthError::Invalid(InvalidKey::Revoked) => RequestOutcome::Revoked,
            AuthError::Invalid(InvalidKey::Expired) => RequestOutcome::Expired,
            AuthError::Forbidden | AuthError::MissingScope => RequestOutcome::Forbidden,
            AuthError::AddressNotAllowed => RequestOutcome::AddressRefused,
            AuthError::Unavailable => RequestOutcome::Unavailable,
            AuthError::RateLimited { .. } => RequestOutcome::RateLimited,
            AuthError::QuotaExhausted { .. } => RequestOutcome::Quota,
        }
    }
}
