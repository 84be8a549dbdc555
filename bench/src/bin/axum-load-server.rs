//! The axum demo plus the two no-auth baselines of `load-server`: `/bench/noauth` answers exactly
//! what `/my_service` answers (same JSON, same size) and `/bench/noauth_401` the very bytes of
//! apikey's invalid-key 401, without looking at any key. The baselines are mounted outside the
//! apikey layer, so the difference is all apikey costs on axum.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use apikey_axum::core::AuthError;
use apikey_axum::Refused;
use axum::routing::get;
use axum::{Json, Router};

#[tokio::main]
async fn main() -> ExitCode {
    let config = match apikey_axum::load_config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("axum-load-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (demo, keys, seeded) = match axum_service::app(config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("axum-load-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(seeded) = seeded {
        println!("{}", seeded.demo.expose());
    }
    let refusal: Refused = keys.answer(AuthError::INVALID);
    let bench = Router::new()
        .route("/bench/noauth", get(|| async { Json(hello()) }))
        .route("/bench/noauth_401", get(move || async move { refusal }));
    let port = std::env::var("PORT").unwrap_or_else(|_| "8000".into());
    let listener = match tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("axum-load-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    // As the demo serves: with the peer's address in each request (for keys bound to networks).
    let app = bench
        .merge(demo.into_router())
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    match axum::serve(listener, app).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("axum-load-server: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What `/my_service` answers for the demo key, as the handler builds it (a struct).
#[derive(serde::Serialize)]
struct Hello {
    user: &'static str,
    key: &'static str,
}

fn hello() -> Hello {
    Hello {
        user: "demo",
        key: "demo",
    }
}
