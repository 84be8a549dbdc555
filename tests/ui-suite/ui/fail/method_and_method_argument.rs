use apikey_rocket::route;

#[route(POST, "/x", method = "PUT")]
fn handler() {}

fn main() {}
