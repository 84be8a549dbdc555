use apikey_rocket::route;

#[route("/x", scopes = [])]
fn handler() {}

fn main() {}
