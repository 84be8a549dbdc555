use apikey_rocket::route;

#[route("/x", groups = [])]
fn handler() {}

fn main() {}
