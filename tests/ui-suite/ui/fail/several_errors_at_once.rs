// Every mistake in the arguments is reported in one compilation, not one per attempt.
use apikey_rocket::{route, Caller};

#[route("/x", auth = "keys", colour = "blue", method = "FETCH", groups = [])]
fn handler(caller: &Caller) -> String {
    caller.user().to_owned()
}

fn main() {}
