use apikey_rocket::route;

#[route("/x")]
struct Handler;

fn main() {}
