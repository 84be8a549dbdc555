use apikey_rocket::route;

#[route("/x", auth = 42)]
fn handler() {}

fn main() {}
