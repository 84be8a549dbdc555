use apikey_rocket::route;

struct NotAGuard;

#[route("/x", auth = NotAGuard)]
fn handler() {}

fn main() {}
