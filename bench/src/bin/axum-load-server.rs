//! The axum demo plus the two no-auth baselines of `load-server`: `/bench/noauth` answers exactly
//! what `/my_service` answers (same JSON, same size) and `/bench/noauth_401` the very bytes of
//! apikey's invalid-key 401, without looking at any key. The baselines are mounted outside the
//! apikey layer, so the difference is all apikey costs on axum.
//!
//! Beside them, `/bench/peer`: the check a team writes by hand without apikey, measured the same
//! way: tower-http's `ValidateRequestHeaderLayer` with a custom validator taking the SHA-256 of
//! the `API-KEY` header and looking it up in a `HashMap` of digests, answering a valid key as
//! `/my_service` does and anything else with the same 401 bytes.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use sha2::{Digest, Sha256};
use tower_http::validate_request::{ValidateRequest, ValidateRequestHeaderLayer};

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
    let mut digests = HashMap::new();
    if let Some(seeded) = seeded {
        println!("{}", seeded.demo.expose());
        let digest: [u8; 32] = Sha256::digest(seeded.demo.expose().as_bytes()).into();
        digests.insert(digest, Who("demo", "demo"));
    }
    let refusal: Refused = keys.answer(AuthError::INVALID);
    let peer = HandRolled {
        keys: Arc::new(digests),
        refusal: refusal.clone(),
    };
    let bench = Router::new()
        .route("/bench/noauth", get(|| async { Json(hello()) }))
        .route("/bench/noauth_401", get(move || async move { refusal }))
        .route(
            "/bench/peer",
            get(peer_hello).route_layer(ValidateRequestHeaderLayer::custom(peer)),
        );
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

/// Who a hand-rolled key speaks for: user and key name.
#[derive(Debug, Clone, Copy)]
struct Who(&'static str, &'static str);

/// The hand-rolled check: digests of the valid keys, and the 401 to send otherwise.
#[derive(Clone)]
struct HandRolled {
    keys: Arc<HashMap<[u8; 32], Who>>,
    refusal: Refused,
}

impl ValidateRequest<Body> for HandRolled {
    type ResponseBody = Body;

    fn validate(&mut self, req: &mut Request) -> Result<(), Response> {
        let who = req
            .headers()
            .get("api-key")
            .map(|value| -> [u8; 32] { Sha256::digest(value.as_bytes()).into() })
            .and_then(|digest| self.keys.get(&digest).copied());
        match who {
            Some(who) => {
                req.extensions_mut().insert(who);
                Ok(())
            }
            None => Err(self.refusal.clone().into_response()),
        }
    }
}

async fn peer_hello(Extension(who): Extension<Who>) -> Json<Hello> {
    Json(Hello {
        user: who.0,
        key: who.1,
    })
}
