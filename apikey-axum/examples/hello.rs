//! The smallest service on apikey-axum: `cargo run -p apikey-axum --example hello`, then
//! `apikey create robot --user robot` and `curl -H 'API-KEY: …' 127.0.0.1:8000/hello`.
//! Builds with only the feature it uses: `--no-default-features --features sqlite`.
#![forbid(unsafe_code)]

use apikey_axum::{ApiKeyLayer, ApiKeyState, Caller};
use axum::routing::get;
use axum::Router;

async fn hello(caller: Caller) -> String {
    format!("hello {}", caller.user())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let keys = ApiKeyState::from_config().await?;
    let app = Router::new()
        .route("/hello", get(hello))
        .layer(ApiKeyLayer::new(keys.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    keys.verifier().shutdown().await?;
    Ok(())
}
