//! The `apikey` command, for the end-to-end tests of this package.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    apikey_cli::main()
}
