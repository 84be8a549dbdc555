//! The `#[route]` attribute of apikey. Use it through `apikey_rocket::route`; the code
//! generation itself lives in `apikey-codegen`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use proc_macro::TokenStream;

/// Declares a Rocket route guarded by an API key. See the `apikey_rocket` docs.
#[proc_macro_attribute]
pub fn route(attr: TokenStream, item: TokenStream) -> TokenStream {
    apikey_codegen::route(attr.into(), item.into()).into()
}
