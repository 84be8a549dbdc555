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

fn main() {
    let _ = routes![jwt, jwt_post];
}
