//! The helpers, by what they help with.

pub mod admin_page;
pub mod cli;
pub mod cluster;
pub mod demo;
pub mod http;
pub mod logs;
pub mod probe;
pub mod proxy;
pub mod redis;
pub mod stores;
pub mod tls;
