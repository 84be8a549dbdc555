//! `apikey`: administer API keys in the store the services use.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    apikey_cli::main()
}
