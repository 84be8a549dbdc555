use apikey_rocket::route;

#[route(GET, POST, "/x")]
fn handler() {}

fn main() {}
