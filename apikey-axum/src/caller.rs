//! The caller handed to handlers.

use std::ops::Deref;

use serde::Serialize;

/// The authenticated caller of a request: take `Caller` (key required) or `Option<Caller>`
/// (key optional; a bad one is still refused) in a handler. Dereferences to
/// [`apikey_core::Identity`]: `user()`, `key_name()`, `groups()`. Cloning it copies a pointer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Caller(pub(crate) apikey_core::Identity);

impl Caller {
    /// The framework-independent identity.
    pub fn into_inner(self) -> apikey_core::Identity {
        self.0
    }
}

impl Deref for Caller {
    type Target = apikey_core::Identity;

    fn deref(&self) -> &apikey_core::Identity {
        &self.0
    }
}
