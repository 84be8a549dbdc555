//! `cargo run -p axum-service`: the demo on axum, on the embedded SQLite store, at
//! 127.0.0.1:8000 (`HOST` and `PORT` override it).
#![forbid(unsafe_code)]

#[tokio::main]
async fn main() -> std::process::ExitCode {
    axum_service::serve().await
}
