//! `cargo run -p my-service`: the demo on the embedded SQLite store.
#![forbid(unsafe_code)]

#[rocket::main]
async fn main() -> std::process::ExitCode {
    my_service::serve().await
}
