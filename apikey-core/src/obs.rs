//! Where apikey's events go: through `tracing` with the feature `tracing` (axum services read
//! their logs through `tracing` subscribers), through `log` otherwise. The macros take what
//! `log`'s take; no event ever carries a key. The adapters use the same one
//! (`apikey_core::__event!`), so the choice is made once, by this crate's feature.
#![allow(unused_macros, unused_imports)]

#[doc(hidden)]
#[cfg(feature = "tracing")]
pub use tracing as backend;

#[doc(hidden)]
#[cfg(not(feature = "tracing"))]
pub use log as backend;

/// One event at `level` (`error`, `warning`, `info`, `debug`) with `log`'s arguments.
#[doc(hidden)]
#[macro_export]
macro_rules! __event {
    (warning, $($arg:tt)+) => { $crate::obs::backend::warn!($($arg)+) };
    ($level:ident, $($arg:tt)+) => { $crate::obs::backend::$level!($($arg)+) };
}

macro_rules! error {
    ($($arg:tt)+) => { $crate::__event!(error, $($arg)+) };
}

macro_rules! warning {
    ($($arg:tt)+) => { $crate::__event!(warning, $($arg)+) };
}

macro_rules! info {
    ($($arg:tt)+) => { $crate::__event!(info, $($arg)+) };
}

macro_rules! debug {
    ($($arg:tt)+) => { $crate::__event!(debug, $($arg)+) };
}

pub(crate) use {debug, error, info, warning};
