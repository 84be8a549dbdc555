//! `cargo run -p my-service`: the demo on the embedded SQLite store.
#![forbid(unsafe_code)]

use std::process::ExitCode;

#[rocket::main]
async fn main() -> ExitCode {
    let (rocket, seeded) = match my_service::app(rocket::build()).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("my-service: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(keys) = seeded {
        let config = rocket
            .figment()
            .extract::<rocket::Config>()
            .unwrap_or_default();
        let origin = format!("http://{}:{}", config.address, config.port);
        // Shown once: only their digests are stored.
        println!(
            "Created the demo API key (shown once, store it now):\n\n    {}\n",
            keys.demo.expose()
        );
        println!(
            "Try it:\n\n    curl -H 'API-KEY: {}' {origin}/my_service\n",
            keys.demo.expose()
        );
        println!(
            "Created an admin key (shown once, store it now):\n\n    {}\n\n\
             Manage keys in a browser at {origin}/admin/ (log in with the admin key).\n",
            keys.admin.expose()
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
