//! Running the `apikey` command as a real process, as the CLI tests do.

use std::path::Path;
use std::process::{Command, Output};

/// Runs the `apikey` binary `bin` on the store `url`, in `dir`, with `env` (and none of the
/// caller's own `APIKEY_*` settings that would change the outcome); returns its output.
pub fn run_apikey(bin: &str, dir: &Path, url: &str, env: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(bin)
        .current_dir(dir)
        .env_remove("APIKEY_CONFIG")
        .env_remove("APIKEY_DATABASE_URL")
        .env_remove("APIKEY_ACTOR")
        .env_remove("APIKEY_LIMITS_URL")
        .envs(env.iter().copied())
        .args(["--database-url", url])
        .args(args)
        .output()
        .expect("run apikey")
}

/// The JSON document a successful `--json` command printed.
pub fn json_output(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}
