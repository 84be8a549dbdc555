//! The `#[route]` attribute of apikey. Use it through `apikey_rocket::route`.
//!
//! `#[route("/path", auth = "api_key")]` becomes Rocket's own `#[get("/path")]` on the same
//! function with an authentication guard put first among its parameters, so `routes!` and
//! `uri!` keep working.
#![forbid(unsafe_code)]

mod args;
mod expand;
mod exports;
mod validate;

use proc_macro::TokenStream;

/// Declares a Rocket route guarded by an API key. See the `apikey_rocket` docs.
#[proc_macro_attribute]
pub fn route(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item2: proc_macro2::TokenStream = item.clone().into();
    expand::route(attr.into(), item.into())
        .unwrap_or_else(|err| fallback(err, item2))
        .into()
}

/// On error: the error, plus the user's item untouched so the rest of the crate still
/// type-checks and editors keep working (one error instead of a cascade).
fn fallback(err: syn::Error, item: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    let err = err.into_compile_error();
    quote::quote!(#err #item)
}
