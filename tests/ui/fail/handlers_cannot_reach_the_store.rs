// Odoo's `test_user_not_allowed`: request code cannot administer keys. The managed state
// verifies keys but exposes no store.
use apikey_rocket::{route, ApiKeys};
use rocket::State;

#[route("/x", auth = "api_key")]
fn handler(keys: &State<ApiKeys>) -> String {
    format!("{:?}", keys.store())
}

fn main() {}
