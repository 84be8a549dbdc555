use apikey_rocket::route;

#[route("/x", auth = "api_key", colour = "red")]
fn handler() {}

fn main() {}
