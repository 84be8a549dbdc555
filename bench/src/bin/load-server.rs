//! The demo plus three no-auth baselines for `bench/load/load.sh` and `bench/instr`:
//! `/bench/noauth` answers exactly what `/my_service` answers (same JSON, same size),
//! `/bench/noauth_401` answers the very bytes of apikey's invalid-key 401 (status, headers,
//! body) from a handler, without looking at any key, and `/bench/guard_401` is Rocket's cheapest
//! refusal: a trivial guard that always fails with 401, answered by a catcher (scoped to
//! `/bench`) with those same bytes — what a refusal costs in Rocket before apikey does anything.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use apikey_rocket::core::AuthError;
use apikey_rocket::route;
use apikey_rocket::{ApiKeyState, Prepared};
use rocket::http::Status;
use rocket::request::{self, FromRequest};
use rocket::serde::json::Json;
use rocket::State;
use rocket::{routes, Request};

/// What `/my_service` answers for the demo key, as the handler builds it: a struct, its fields
/// in the handler's order (the same bytes, serialized the same way).
#[derive(rocket::serde::Serialize)]
#[serde(crate = "rocket::serde")]
struct Hello {
    user: &'static str,
    key: &'static str,
}

#[route("/noauth", auth = "none")]
fn noauth() -> Json<Hello> {
    Json(Hello {
        user: "demo",
        key: "demo",
    })
}

#[route("/noauth_401", auth = "none")]
fn noauth_401(keys: &State<ApiKeyState>) -> Prepared {
    keys.answer(AuthError::INVALID)
}

/// A guard that refuses every request with 401, doing nothing else.
struct AlwaysRefused;

#[rocket::async_trait]
impl<'r> FromRequest<'r> for AlwaysRefused {
    type Error = ();

    async fn from_request(_: &'r Request<'_>) -> request::Outcome<Self, ()> {
        request::Outcome::Error((Status::Unauthorized, ()))
    }
}

#[rocket::get("/guard_401")]
fn guard_401(_refused: AlwaysRefused) -> &'static str {
    "never"
}

/// The 401 catcher of `/bench`: apikey's invalid-key bytes, prepared once at start.
#[rocket::catch(401)]
fn bench_401(req: &Request<'_>) -> Option<Prepared> {
    let keys = req.rocket().state::<ApiKeyState>()?;
    Some(keys.answer(AuthError::INVALID))
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
        .mount("/bench", routes![noauth, noauth_401, guard_401])
        .register("/bench", rocket::catchers![bench_401])
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
