//! The code generation behind apikey's `#[route]` attribute, on `proc_macro2` tokens.
//!
//! `#[route("/path", auth = "api_key")]` becomes Rocket's own `#[get("/path")]` on the same
//! function with an authentication guard put first among its parameters, so `routes!` and
//! `uri!` keep working. A plain library so that it can be unit-tested and fuzzed; use it
//! through `apikey_rocket::route`, its API is not stable.
//!
//! - `model`: the arguments, the checked route and the function.
//! - `parse`: tokens to arguments (every error kept), and the function with its body unparsed.
//! - `validate`: checks across arguments and against the signature.
//! - `expand`: the generated route; `exports`: every path the generated code names.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod expand;
mod exports;
mod model;
mod parse;
mod validate;

use proc_macro2::TokenStream;
use quote::quote;

/// The route for `#[route(attr)] item`, or every error found in it.
pub fn try_route(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    expand::route(attr, item)
}

/// What `#[route(attr)] item` expands to. On error: the errors, the user's function untouched
/// and a stand-in for Rocket's route struct, so the rest of the crate still type-checks
/// (`routes![handler]` included) and the errors of the attribute are the only ones reported.
pub fn route(attr: TokenStream, item: TokenStream) -> TokenStream {
    match expand::route(attr, item.clone()) {
        Ok(tokens) => tokens,
        Err(err) => {
            let err = err.into_compile_error();
            let stand_in = exports::stand_in(&item);
            quote!(#err #item #stand_in)
        }
    }
}
