//! Every path the generated code names, in one place. They all go through the hidden
//! `apikey_rocket::__private` module, so users never depend on internals.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::Ident;

use crate::model::LazyFn;

/// The hidden module of `apikey_rocket` the generated code goes through.
pub fn private() -> TokenStream {
    quote!(::apikey_rocket::__private)
}

/// Rocket's method attribute (`get`, `post`, …), re-exported by apikey_rocket.
pub fn rocket_attr(method: &str) -> TokenStream {
    let p = private();
    let m = Ident::new(method, Span::call_site());
    quote!(#p::rocket::#m)
}

/// The guard of `auth = "api_key"`.
pub fn required_guard() -> TokenStream {
    let p = private();
    quote!(#p::ApiKeyGuard)
}

/// The guard of `auth = "public"`.
pub fn public_guard() -> TokenStream {
    let p = private();
    quote!(#p::PublicGuard)
}

/// The group policy of a route without `groups`.
pub fn no_groups() -> TokenStream {
    let p = private();
    quote!(#p::AnyGroup)
}

/// The trait a route's group policy implements.
pub fn policy_trait() -> TokenStream {
    let p = private();
    quote!(#p::Policy)
}

/// The check that `auth = path` names a request guard.
pub fn assert_guard() -> TokenStream {
    let p = private();
    quote!(#p::assert_request_guard)
}

/// Name of the injected guard parameter.
pub fn guard_param() -> Ident {
    Ident::new("__apikey_guard", Span::call_site())
}

/// For a route whose attribute is in error: the struct `routes![handler]` instantiates, with
/// the `into_route` it calls, so that only the attribute's own errors are reported. Nothing
/// when the item is not a free function (no name to stand in for, or a method, where no
/// struct can go).
pub fn stand_in(item: &TokenStream) -> TokenStream {
    let Ok(func) = syn::parse2::<LazyFn>(item.clone()) else {
        return TokenStream::new();
    };
    if func.sig.receiver().is_some() {
        return TokenStream::new();
    }
    let p = private();
    let vis = &func.vis;
    let name = &func.sig.ident;
    quote! {
        #[doc(hidden)]
        #[allow(nonstandard_style, dead_code)]
        #vis struct #name {}

        #[allow(nonstandard_style, dead_code)]
        impl #name {
            #[doc(hidden)]
            pub fn into_route(self) -> #p::rocket::Route {
                ::core::unreachable!("a #[route] in error is never compiled")
            }
        }
    }
}
