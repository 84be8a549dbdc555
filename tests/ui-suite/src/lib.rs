//! The trybuild UI suite of `#[route]` (`tests/ui.rs`, cases under `ui/`): kept in a crate of
//! its own so that trybuild's copy of the dependencies is only what the cases use.
#![forbid(unsafe_code)]
