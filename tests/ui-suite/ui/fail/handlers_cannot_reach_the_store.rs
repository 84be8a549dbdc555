// Odoo's `test_user_not_allowed`: request code cannot administer keys. The managed state
// verifies keys but exposes no store, and neither does the verifier.
use apikey_rocket::core::Verifier;
use apikey_rocket::{route, ApiKeyState};
use rocket::State;

#[route("/x", auth = "api_key")]
fn handler(keys: &State<ApiKeyState>) -> String {
    format!("{:?}", keys.store())
}

fn through_the_verifier(verifier: &Verifier) -> String {
    format!("{:?}", verifier.store())
}

fn main() {}
