use apikey_rocket::route;

#[route("/x", auth = "apikey")]
fn handler() {}

fn main() {}
