//! The `apikey` command as a library: [`main`] runs it with the process' arguments, so a
//! service can ship the same administration commands in a binary of its own.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::io::{self, Write};
use std::process::ExitCode;

use apikey_core::model::escape_unsafe;
use clap::Parser;

mod args;
mod commands;
mod failure;
mod output;

use failure::Failure;

/// Runs `apikey` with the process' arguments and environment; returns its exit code (0 done,
/// 1 refused or not found, 2 bad configuration or store unavailable).
pub fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let actor = match cli.check_names() {
        Ok(actor) => actor,
        Err(message) => {
            eprintln!("apikey: {}", escape_unsafe(&message));
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("apikey: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(commands::run(cli, actor));
    let _ = io::stdout().flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message, code)) => {
            if !message.is_empty() {
                eprintln!("apikey: {}", escape_unsafe(&message));
            }
            ExitCode::from(code)
        }
    }
}
