//! Code generation: a validated route and the user's function in, Rocket's route out.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned as _;
use syn::{FnArg, ItemFn};

use crate::args::{Args, Auth};
use crate::exports;
use crate::validate::{validate, Route};

pub fn route(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let func: ItemFn = syn::parse2(item).map_err(|e| {
        syn::Error::new(
            e.span(),
            "#[route] goes on a function: #[route(\"/path\", auth = \"api_key\")] fn handler() …",
        )
    })?;
    let args: Args = syn::parse2(attr)?;
    let route = validate(args, &func)?;
    Ok(expand(route, func))
}

/// Pure codegen: Rocket's method attribute with the user's arguments, and the guard for
/// `auth` injected as the first parameter (Rocket runs guards in order, so an unauthenticated
/// request is refused before any other guard or the body is looked at).
pub fn expand(route: Route, mut func: ItemFn) -> TokenStream {
    let attr = exports::rocket_attr(&route.method.to_ascii_lowercase());
    let path = &route.path;
    let mut rocket_args = vec![quote!(#path)];
    if let Some(data) = &route.data {
        rocket_args.push(quote!(data = #data));
    }
    if let Some(format) = &route.format {
        rocket_args.push(quote!(format = #format));
    }
    if let Some(rank) = &route.rank {
        rocket_args.push(quote!(rank = #rank));
    }

    let vis = &func.vis;
    let mut extra = TokenStream::new();
    let policy = if route.groups.is_empty() {
        exports::no_groups()
    } else {
        let name = format_ident!("__apikey_policy_{}", func.sig.ident);
        let groups = &route.groups;
        let policy_trait = exports::policy_trait();
        extra.extend(quote! {
            #[doc(hidden)]
            #[allow(non_camel_case_types)]
            #vis struct #name;
            impl #policy_trait for #name {
                const GROUPS: &'static [&'static str] = &[#(#groups),*];
            }
        });
        quote!(#name)
    };

    let guard_ty = match &route.auth {
        Auth::ApiKey => {
            let g = exports::required_guard();
            Some(quote!(#g<#policy>))
        }
        Auth::Public => {
            let g = exports::public_guard();
            Some(quote!(#g<#policy>))
        }
        Auth::None => None,
        Auth::Guard(path) => {
            let assert = exports::assert_guard();
            // Spanned at the user's path, so a type that is not a guard is reported there.
            extra.extend(quote_spanned! {path.span()=>
                const _: fn() = #assert::<#path>;
            });
            Some(quote!(#path))
        }
    };
    if let Some(ty) = guard_ty {
        let name = exports::guard_param();
        let param: FnArg = syn::parse_quote!(#name: #ty);
        func.sig.inputs.insert(0, param);
    }

    quote! {
        #[#attr(#(#rocket_args),*)]
        #func
        #extra
    }
}
