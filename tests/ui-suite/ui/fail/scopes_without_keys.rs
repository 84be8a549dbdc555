use apikey_rocket::route;

#[route("/x", auth = "none", scopes = ["orders:read"])]
fn handler() {}

fn main() {}
