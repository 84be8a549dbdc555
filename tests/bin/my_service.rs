//! The Rocket demo, built here so that the end-to-end suite can run it as a real process.
#![forbid(unsafe_code)]

#[rocket::main]
async fn main() -> std::process::ExitCode {
    my_service::serve().await
}
