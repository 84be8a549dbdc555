//! `POST …/rotate`: a key rotates itself (opt-in). Mount [`routes`] where it should live and
//! manage a [`SelfRotation`]:
//!
//! ```no_run
//! # use apikey_rocket::{core, ApiKey};
//! # #[rocket::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = apikey_rocket::load_config(&rocket::Config::figment())?;
//! let store = core::open(&config.settings).await?;
//! let rotation = core::admin::SelfRotation::new(store.clone(), &config);
//! let _ = rocket::build()
//!     .attach(ApiKey::with_store(store))
//!     .manage(rotation)
//!     .mount("/apikey", apikey_rocket::rotation::routes())
//!     .launch()
//!     .await?;
//! # Ok(())
//! # }
//! ```
//!
//! The answer is `{"name", "key", "previous_key_valid_until"}` with `Cache-Control: no-store`;
//! a key set in a config section gets 403, a second rotation within `self_rotation_every` 429
//! with `Retry-After`.

use apikey_core::admin::{Rotated, SelfRotation};
use apikey_core::http;
use rocket::http::Header;
use rocket::request::{self, FromRequest};
use rocket::response::{self, Responder};
use rocket::serde::json::Json;
use rocket::{Request, Route, State};

use crate::{route, ApiKeyState, Caller, Prepared};

/// The self-rotation route (`POST /rotate` under where it is mounted).
pub fn routes() -> Vec<Route> {
    rocket::routes![rotate]
}

/// What the route answers: the new key, or a problem.
/// The digest of the secret the request presented (verified already by the `Caller` guard):
/// the store checks that it is the key's current one.
#[doc(hidden)]
pub struct Presented(Option<apikey_core::KeyDigest>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Presented {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, Self::Error> {
        request::Outcome::Success(Presented(crate::guard::Verified::of(req).secret().copied()))
    }
}

#[doc(hidden)]
pub enum Answer {
    Rotated(Rotated),
    Refused(Prepared),
}

impl<'r> Responder<'r, 'static> for Answer {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        match self {
            Answer::Rotated(rotated) => {
                let mut res = Json(rotated).respond_to(req)?;
                // The body holds a key: no cache may keep it.
                res.set_header(Header::new("Cache-Control", "no-store"));
                Ok(res)
            }
            Answer::Refused(problem) => problem.respond_to(req),
        }
    }
}

/// Rotates the calling key: the new key once, the old one in grace.
#[route(POST, "/rotate", auth = "api_key")]
async fn rotate(
    caller: &Caller,
    rotation: Option<&State<SelfRotation>>,
    keys: &State<ApiKeyState>,
    presented: Presented,
) -> Answer {
    let Some(rotation) = rotation else {
        apikey_core::__event!(
            error,
            "apikey: the rotation route needs `.manage(SelfRotation::new(…))`"
        );
        let problem = http::Problem::new(503, "Key rotation is not set up on this service.");
        return Answer::Refused(problem.prepare().into());
    };
    let Some(presented) = presented.0 else {
        // The `Caller` guard verified this request: its entry holds the secret.
        let problem = http::Problem::new(503, "Key rotation is not set up on this service.");
        return Answer::Refused(problem.prepare().into());
    };
    match rotation
        .rotate(keys.verifier(), &caller.0, &presented)
        .await
    {
        Ok(rotated) => Answer::Rotated(rotated),
        Err(e) => Answer::Refused(http::Problem::for_rotation(&e).into()),
    }
}
