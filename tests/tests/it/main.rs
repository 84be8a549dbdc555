//! The integration tests, one binary (it links everything once): each module is one area.
//! `no_leaks` and `feed` read every log line of their process and `ui` drives trybuild, so
//! they stay binaries of their own.

use apikey_tests::demo::{Demo, Framework};

/// `my-service`, the Rocket demo, as built for the suites.
pub(crate) const ROCKET: Demo = Demo {
    bin: env!("CARGO_BIN_EXE_my-service-under-test"),
    framework: Framework::Rocket,
};

/// `axum-service`, the axum demo, as built for the suites.
pub(crate) const AXUM: Demo = Demo {
    bin: env!("CARGO_BIN_EXE_axum-service-under-test"),
    framework: Framework::Axum,
};

/// Each check (a function of a [`Demo`]) as two tests, `rocket::<check>` and `axum::<check>`.
macro_rules! on_both_demos {
    ($($check:ident),* $(,)?) => {
        mod rocket {
            $( #[test] fn $check() { super::$check(crate::ROCKET) } )*
        }
        mod axum {
            $( #[test] fn $check() { super::$check(crate::AXUM) } )*
        }
    };
}

mod access;
mod admin;
mod admin_demos;
mod admin_sessions;
mod browser;
mod cache;
mod changes;
mod cli;
mod cli_ops;
mod cli_usage;
mod conformance;
mod demo;
mod demos;
mod fail_closed;
mod filter;
mod hostile;
mod inventory;
mod manage_demos;
mod names;
mod odoo;
mod odoo_import;
mod openapi;
mod pools;
mod races;
mod requests;
mod scale_out;
mod scopes;
mod settings_doc;
mod shared_limits;
mod sunset_bearer;
mod third_party;
mod tls;
mod usage_counts;
