//! Every path the generated code names, in one place. They all go through the hidden
//! `apikey_rocket::__private` module, so users never depend on internals.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::Ident;

pub fn private() -> TokenStream {
    quote!(::apikey_rocket::__private)
}

/// Rocket's method attribute (`get`, `post`, …), re-exported by apikey_rocket.
pub fn rocket_attr(method: &str) -> TokenStream {
    let p = private();
    let m = Ident::new(method, Span::call_site());
    quote!(#p::rocket::#m)
}

pub fn required_guard() -> TokenStream {
    let p = private();
    quote!(#p::ApiKeyGuard)
}

pub fn public_guard() -> TokenStream {
    let p = private();
    quote!(#p::PublicGuard)
}

pub fn no_groups() -> TokenStream {
    let p = private();
    quote!(#p::AnyGroup)
}

pub fn policy_trait() -> TokenStream {
    let p = private();
    quote!(#p::Policy)
}

pub fn assert_guard() -> TokenStream {
    let p = private();
    quote!(#p::assert_request_guard)
}

/// Name of the injected guard parameter.
pub fn guard_param() -> Ident {
    Ident::new("__apikey_guard", Span::call_site())
}
