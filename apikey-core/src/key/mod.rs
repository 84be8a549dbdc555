//! The key itself: its format and early checks, the secret wrapper that never prints, the
//! digest that is stored instead of it, and the slug that names its config section.

mod digest;
mod format;
mod secret;
mod slug;

pub(crate) use digest::hex;
pub use digest::{KeyDigest, KeyHasher};
pub use format::{GeneratedKey, KeyFormat, Malformed, Shape, MAX_KEY_LEN};
pub use secret::Secret;
pub use slug::slugify;
