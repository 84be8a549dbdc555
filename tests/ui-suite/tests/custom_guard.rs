//! `auth = <a request guard type>` compiles, by a path relative to the module or to the crate
//! (a compile-pass case, run as an ordinary test so that the trybuild suite needs only
//! `cargo check`).

use apikey_rocket::route;
use rocket::request::{FromRequest, Outcome, Request};
use rocket::routes;

mod auth {
    pub struct Jwt;
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for auth::Jwt {
    type Error = ();
    async fn from_request(_req: &'r Request<'_>) -> Outcome<Self, ()> {
        Outcome::Success(auth::Jwt)
    }
}

#[route("/jwt", auth = auth::Jwt)]
fn jwt() -> &'static str {
    "ok"
}

#[route(POST, "/jwt", auth = crate::auth::Jwt)]
fn jwt_post() -> &'static str {
    "ok"
}

#[test]
fn the_routes_mount() {
    let _ = routes![jwt, jwt_post];
}
