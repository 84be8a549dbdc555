use apikey_rocket::route;

#[route(FETCH, "/x")]
fn handler() {}

fn main() {}
