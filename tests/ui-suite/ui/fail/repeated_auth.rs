use apikey_rocket::route;

#[route("/x", auth = "api_key", auth = "public")]
fn handler() {}

fn main() {}
