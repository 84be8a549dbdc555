//! Helpers shared by the integration tests: stores under test, a store probe, Rocket clients
//! and what they send and read, and clusters of service instances.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod support;

/// The README's Rust snippets, compiled (and, where they need no server, run) as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeSnippets;

/// The demos as real processes, for the end-to-end suite.
pub mod demo {
    pub use crate::support::demo::*;
}

pub use support::admin_page::{
    admin_page, admin_page_on, form_field, login, login_response, page_get, page_post,
    store_with_admin_key,
};
pub use support::cli::{json_output, run_apikey};
pub use support::cluster::{filter_ready, percentile, Cluster};
pub use support::http::{
    admin, api_key, client, create_key, demo_client, get, problem, rocket_with, spec, Problem,
};
pub use support::logs::{captured_logs, CapturedLogs};
pub use support::probe::{Parked, Probe};
pub use support::proxy::{authority, through, BlackHoleProxy};
pub use support::redis::{redis_url, unique_prefix, RedisProxy, REDIS_ENV};
pub use support::stores::{
    drop_schema, memory, postgres, postgres_url, sqlite_file, sqlite_memory, unique_schema,
    PgDatabase, SharedDb, POSTGRES_ENV,
};
pub use support::tls::{TestPki, TlsPostgres, TlsRedis, REQUIRE_TLS_ENV};
