//! What became of a request: the reason kept inside the verifier (for logs and metrics) and
//! the [`AuthError`] shown outside, which tells no wrong key from another.

use super::AuthError;

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

/// Why the verifier refused a key, as it knows it; [`Refusal::error`] is what callers see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Malformed,
    Unknown,
    Revoked,
    Expired,
    Unavailable,
    RateLimited {
        retry_after_secs: u32,
    },
    Quota {
        retry_after_secs: u32,
    },
    /// A valid key from outside its allowlist.
    Address,
}

impl Refusal {
    /// The error shown outside: every kind of wrong key is the same [`AuthError::Invalid`].
    pub(crate) fn error(self) -> AuthError {
        match self {
            Refusal::Malformed | Refusal::Unknown | Refusal::Revoked | Refusal::Expired => {
                AuthError::Invalid
            }
            Refusal::Unavailable => AuthError::Unavailable,
            Refusal::RateLimited { retry_after_secs } => {
                AuthError::RateLimited { retry_after_secs }
            }
            Refusal::Quota { retry_after_secs } => AuthError::QuotaExhausted { retry_after_secs },
            Refusal::Address => AuthError::AddressNotAllowed,
        }
    }

    pub(crate) fn outcome(self) -> RequestOutcome {
        match self {
            Refusal::Malformed => RequestOutcome::Malformed,
            Refusal::Unknown => RequestOutcome::Unknown,
            Refusal::Revoked => RequestOutcome::Revoked,
            Refusal::Expired => RequestOutcome::Expired,
            Refusal::Unavailable => RequestOutcome::Unavailable,
            Refusal::RateLimited { .. } => RequestOutcome::RateLimited,
            Refusal::Quota { .. } => RequestOutcome::Quota,
            Refusal::Address => RequestOutcome::AddressRefused,
        }
    }
}
