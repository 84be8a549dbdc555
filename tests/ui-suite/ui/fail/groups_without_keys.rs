use apikey_rocket::route;

#[route("/x", auth = "none", groups = ["billing"])]
fn handler() {}

fn main() {}
