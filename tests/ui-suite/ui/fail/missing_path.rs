use apikey_rocket::route;

#[route(auth = "api_key")]
fn handler() {}

fn main() {}
