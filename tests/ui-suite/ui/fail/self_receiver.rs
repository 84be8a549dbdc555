use apikey_rocket::route;

struct Service;

impl Service {
    #[route("/x", auth = "api_key")]
    fn handler(&self) {}
}

fn main() {}
