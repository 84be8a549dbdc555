//! `cargo run -p my-service`: the demo on the embedded SQLite store.
#![forbid(unsafe_code)]

use std::process::ExitCode;

#[rocket::main]
async fn main() -> ExitCode {
    let (rocket, demo_key) = match my_service::app(rocket::build()).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("my-service: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(key) = demo_key {
        let config = rocket
            .figment()
            .extract::<rocket::Config>()
            .unwrap_or_default();
        // Shown once: only its digest is stored.
        println!(
            "Created the demo API key (shown once, store it now):\n\n    {}\n",
            key.expose()
        );
        println!(
            "Try it:\n\n    curl -H 'API-KEY: {}' http://{}:{}/my_service\n",
            key.expose(),
            config.address,
            config.port
        );
    }
    match rocket.launch().await {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("my-service: {e}");
            ExitCode::FAILURE
        }
    }
}
