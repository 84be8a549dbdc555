//! The demo plus two no-auth baselines for `bench/load/load.sh`: `/bench/noauth` answers exactly
//! what `/my_service` answers (same JSON, same size), and `/bench/noauth_401` answers the very
//! bytes of apikey's invalid-key 401 (status, headers, body), without looking at any key.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use apikey_rocket::core::AuthError;
use apikey_rocket::route;
use apikey_rocket::{ApiKeyState, Prepared};
use rocket::routes;
use rocket::serde::json::{json, Value};
use rocket::State;

#[route("/noauth", auth = "none")]
fn noauth() -> Value {
    json!({"user": "demo", "key": "demo"})
}

#[route("/noauth_401", auth = "none")]
fn noauth_401(keys: &State<ApiKeyState>) -> Prepared {
    keys.answer(AuthError::INVALID)
}

#[rocket::main]
async fn main() -> ExitCode {
    let (rocket, key) = match my_service::app(rocket::build()).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("load-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(keys) = key {
        println!("{}", keys.demo.expose());
    }
    match rocket
        .mount("/bench", routes![noauth, noauth_401])
        .launch()
        .await
    {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("load-server: {e}");
            ExitCode::FAILURE
        }
    }
}
