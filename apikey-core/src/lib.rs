//! API keys for HTTP services, independent of any web framework.
//!
//! - [`key`]: generated keys `<prefix>_<secret><checksum>`, the checks that reject malformed
//!   values before any lookup, and the SHA-256 (or HMAC-SHA256 with a pepper) digests that are
//!   stored instead of keys.
//! - [`model`]: what stores keep ([`KeyRecord`]), who a verified key speaks for
//!   ([`Identity`]), and typed values ([`Groups`], [`RateLimit`]) parsed once where they enter.
//! - [`store`]: where keys live. [`KeyLookup`] is what the request path needs, [`KeyStore`]
//!   adds administration; [`MemoryStore`], SQLite and PostgreSQL implement both, and
//!   [`open`] picks one from the settings.
//! - [`config`]: `[apikey]` settings and `[api_key_<tech_name>]` sections (figment).
//! - [`verify`]: [`Verifier`], a header value in, an [`Identity`] or an [`AuthError`] out.
//! - [`limits`]: rate limits and quotas, per instance or shared through Redis, and request
//!   counts per key and day.
//! - [`admin`]: [`KeyManager`], the one path for every change to stored keys.
//! - [`http`]: what adapters answer and add, as bytes: problem+json refusals, `Sunset`, CORS
//!   preflights, and (feature `openapi`) the security of each operation in an OpenAPI document.
//!
//! `ARCHITECTURE.md` at the repository's root walks through the layers.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod admin;
pub mod clock;
pub mod config;
pub mod http;
pub mod key;
pub mod limits;
pub mod model;
#[doc(hidden)]
pub mod obs;
pub mod store;
mod task;
pub mod verify;

#[cfg(feature = "conformance")]
#[doc(hidden)]
pub mod conformance;

pub use admin::{CreateKey, KeyManager};
pub use config::{ApiKeyConfig, ConfigError, Settings};
pub use key::{KeyDigest, KeyFormat, KeyHasher, Secret};
pub use model::{
    parse_duration, Actor, AllowIp, AuditFilter, AuditRecord, GroupEdit, Groups, Identity,
    Imported, ImportedKey, IpNet, KeyChange, KeyEdit, KeyFilter, KeyRecord, Match, Meta, MetaEdit,
    NewKey, NewSecret, Quota, RateLimit, ScopeEdit, Scopes, UsageDay,
};
pub use store::{
    open, Change, ChangeFeed, KeyLookup, KeyMetering, KeyStore, MemoryStore, SharedLookup,
    SharedStore, StoreError, StoreResult, UsableDigest,
};
pub use verify::{
    AuthError, Credential, InvalidKey, KeyRequest, Readiness, RequestFacts, SetupError, Verified,
    Verifier,
};
