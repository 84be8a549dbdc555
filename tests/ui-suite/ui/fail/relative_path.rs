use apikey_rocket::route;

#[route("x", auth = "api_key")]
fn handler() {}

fn main() {}
