//! How a command fails: a message for stderr and an exit code.

use apikey_core::StoreError;

/// An error that ends the command: message to stderr, exit code.
pub struct Failure(pub String, pub u8);

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure(e.to_string(), 1)
    }
}
