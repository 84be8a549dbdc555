//! The axum demo, built here so that the end-to-end suite can run it as a real process.
#![forbid(unsafe_code)]

#[tokio::main]
async fn main() -> std::process::ExitCode {
    axum_service::serve().await
}
