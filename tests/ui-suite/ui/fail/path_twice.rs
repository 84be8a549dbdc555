use apikey_rocket::route;

#[route("/x", "/y")]
fn handler() {}

fn main() {}
