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

#[doc(hidden)]
pub use validate::required_scope;

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
            // The stand-in parses the signature: not one nested past what syn survives.
            let stand_in = if expand::too_deep(&item) {
                TokenStream::new()
            } else {
                exports::stand_in(&item)
            };
            quote!(#err #item #stand_in)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    /// What the compiler sees for absurdly nested signatures (found by fuzzing `route_args`):
    /// one error, no stack overflow in the stand-in that follows it either.
    #[test]
    fn the_expansion_of_absurd_nesting_is_an_error_not_a_crash() {
        // What `#[route("/x")]` on a handler taking `depth` nested `Vec<…>` expands to.
        let expand = |depth: usize| {
            let item = format!(
                "fn handler(x: {}u8{}) {{}}",
                "Vec<".repeat(depth),
                ">".repeat(depth)
            );
            route(
                TokenStream::from_str(r#""/x""#).unwrap(),
                TokenStream::from_str(&item).unwrap(),
            )
            .to_string()
        };
        let run = move || {
            let out = expand(1_300);
            assert!(out.contains("levels of nesting"), "{out}");
            // Just under the bound, syn parses it on this stack.
            let out = expand(120);
            assert!(!out.contains("compile_error"), "{out}");
        };
        // rustc runs macros on its main thread, 8 MiB; a debug build of syn spends tens of
        // kilobytes of it per level of `<`.
        std::thread::Builder::new()
            .stack_size(8 << 20)
            .spawn(run)
            .unwrap()
            .join()
            .unwrap();
    }
}
