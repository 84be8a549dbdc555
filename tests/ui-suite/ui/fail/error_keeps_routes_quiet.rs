// A route in error is reported once, at its attribute: the `routes!` that mounts it, and the
// code that calls the handler, still compile.
use apikey_rocket::{route, ApiKey, Caller};

#[route("/x", auth = "api_keys")]
fn handler(caller: &Caller) -> String {
    caller.user().to_owned()
}

fn main() {
    let _ = rocket::build()
        .attach(ApiKey::fairing())
        .mount("/", rocket::routes![handler]);
}
