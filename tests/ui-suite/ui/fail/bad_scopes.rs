use apikey_rocket::route;

#[route(POST, "/orders", scopes = ["orders:"])]
fn empty_part() {}

#[route(POST, "/orders", scopes = ["orders write"])]
fn space() {}

#[route(POST, "/orders", scopes = ["orders:*"])]
fn wildcard() {}

#[route(POST, "/orders", scopes = ["orders:write", 7])]
fn not_a_string() {}

fn main() {}
