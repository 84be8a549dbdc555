//! Why a verifier cannot be built.

use crate::config::ConfigError;
use crate::store::StoreError;

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
