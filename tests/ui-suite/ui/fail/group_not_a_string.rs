use apikey_rocket::route;

#[route("/x", groups = ["billing", 7])]
fn handler() {}

fn main() {}
