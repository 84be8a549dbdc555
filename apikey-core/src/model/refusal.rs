//! Why a request is refused: one type from the verifier's first check to the adapters' answers,
//! with the reason inside. What callers see of an invalid key stays one answer.

/// Why a presented key is not valid. Kept for logs and metrics only: every reason gets the very
/// same answer, so responses are no oracle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvalidKey {
    /// A value that cannot be a key (our prefix with a bad checksum, control characters, …), or
    /// several key values.
    Malformed,
    /// A well-formed key the store does not hold (or a secret replaced by a config section).
    Unknown,
    /// A stored key that is revoked, or whose user is disabled.
    Revoked,
    /// A stored key that expired, or a rotated-out secret whose grace ended.
    Expired,
}

/// Why a request is not let in. Carries nothing of the presented value; every kind of wrong
/// key is [`AuthError::Invalid`] with its reason inside, and all of them print, compare and
/// answer alike (the reason is for logs and metrics: [`AuthError::invalid_reason`]).
#[derive(Debug, Clone, Copy, Eq, thiserror::Error)]
pub enum AuthError {
    /// No key was sent (header absent or empty). → 401
    #[error("an API key is required")]
    Missing,
    /// The key is not valid: unknown, wrong, malformed, revoked, expired, of a disabled user,
    /// or sent more than once. → 401, one body whatever the reason.
    #[error("the API key is not valid")]
    Invalid(InvalidKey),
    /// The key is valid but not in a group this route allows. → 403
    #[error("the API key is not allowed to use this resource")]
    Forbidden,
    /// The key is valid but lacks a scope this route needs. → 403 with its own problem detail
    #[error("the API key lacks a scope this resource needs")]
    MissingScope,
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

impl AuthError {
    /// An invalid key, as callers see it (the reason does not matter to them): for answers
    /// and comparisons.
    pub const INVALID: AuthError = AuthError::Invalid(InvalidKey::Unknown);

    /// Why the key was invalid, for an [`Invalid`](Self::Invalid) refusal.
    pub fn invalid_reason(&self) -> Option<InvalidKey> {
        match self {
            AuthError::Invalid(why) => Some(*why),
            _ => None,
        }
    }
}

impl PartialEq for AuthError {
    /// As callers see them: every [`Invalid`](Self::Invalid) equals every other, whatever its
    /// reason.
    fn eq(&self, other: &Self) -> bool {
        use AuthError::*;
        match (self, other) {
            (Invalid(_), Invalid(_)) => true,
            (Missing, Missing)
            | (Forbidden, Forbidden)
            | (MissingScope, MissingScope)
            | (AddressNotAllowed, AddressNotAllowed)
            | (Unavailable, Unavailable) => true,
            (
                RateLimited {
                    retry_after_secs: a,
                },
                RateLimited {
                    retry_after_secs: b,
                },
            )
            | (
                QuotaExhausted {
                    retry_after_secs: a,
                },
                QuotaExhausted {
                    retry_after_secs: b,
                },
            ) => a == b,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_invalid_key_looks_the_same_from_outside() {
        let reasons = [
            InvalidKey::Malformed,
            InvalidKey::Unknown,
            InvalidKey::Revoked,
            InvalidKey::Expired,
        ];
        for a in reasons {
            for b in reasons {
                assert_eq!(AuthError::Invalid(a), AuthError::Invalid(b));
                assert_eq!(
                    AuthError::Invalid(a).to_string(),
                    AuthError::Invalid(b).to_string()
                );
            }
            assert_eq!(AuthError::Invalid(a).invalid_reason(), Some(a));
            assert_ne!(AuthError::Invalid(a), AuthError::Missing);
        }
        assert_ne!(
            AuthError::RateLimited {
                retry_after_secs: 1
            },
            AuthError::QuotaExhausted {
                retry_after_secs: 1
            }
        );
    }
}
