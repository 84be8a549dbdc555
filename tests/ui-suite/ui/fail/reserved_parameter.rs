use apikey_rocket::route;

#[route("/x")]
fn handler(__apikey_guard: u8) {}

fn main() {}
