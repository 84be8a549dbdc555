//! Every form `#[route]` takes compiles, and the routes mount (a compile-pass case, run as an
//! ordinary test so that the trybuild suite needs only `cargo check`).

use apikey_rocket::{route, Caller};
use rocket::{routes, uri};

#[route("/required", auth = "api_key")]
fn required(caller: &Caller) -> String {
    caller.user().to_owned()
}

#[route("/default")]
fn default_auth() {}

#[route("/public", auth = "public")]
fn public(caller: Option<&Caller>) -> String {
    caller.map_or_else(String::new, |c| c.user().to_owned())
}

#[route("/none", auth = "none")]
fn none() {}

#[route(POST, "/billing", auth = "api_key", groups = ["billing", "admin"])]
fn billing(caller: &Caller) -> String {
    caller.key_name().to_owned()
}

#[route("/upload", method = "put", data = "<body>", format = "json", rank = 3)]
async fn upload(body: String, _caller: &Caller) -> String {
    body
}

#[route("/items/<id>", auth = "public", groups = ["readers"])]
pub fn item(id: u32) -> String {
    id.to_string()
}

#[route(DELETE, "/items/<id>")]
pub(crate) fn delete_item(id: u32) -> String {
    id.to_string()
}

#[route(POST, "/orders", scopes = ["orders:write", "invoices:read"])]
fn orders(caller: &Caller) -> Option<String> {
    caller.meta("plan").map(str::to_owned)
}

#[route("/reports", auth = "public", groups = ["finance"], scopes = ["reports.v2:read-all"])]
fn reports() {}

#[test]
fn the_routes_mount() {
    let _ = routes![
        required,
        default_auth,
        public,
        none,
        billing,
        upload,
        item,
        delete_item,
        orders,
        reports
    ];
    let _ = uri!(item(3));
}
