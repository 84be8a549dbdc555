//! Code generation: a validated route and the user's function in, Rocket's route out.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned as _;
use syn::FnArg;

use crate::exports;
use crate::model::{Args, Auth, LazyFn, Route};
use crate::validate::validate;

/// Most nesting (groups plus `<`) accepted in the attribute or the signature. syn's parsers
/// recurse once per level, and a debug build spends about 36 KiB of stack per level of `<`:
/// past some 200 levels they overflow the 8 MiB the compiler runs macros on, taking the
/// compiler down with them (found by fuzzing). No real signature comes near this.
const MAX_NESTING: usize = 128;

/// Whether `tokens` (outside a function body) nest deeper than [`MAX_NESTING`]. Iterative, so
/// that the check cannot overflow the stack itself.
pub(crate) fn too_deep(tokens: &TokenStream) -> bool {
    let mut stack: Vec<(proc_macro2::token_stream::IntoIter, usize)> =
        vec![(tokens.clone().into_iter(), 0)];
    let mut angles = 0usize;
    while let Some((iter, depth)) = stack.last_mut() {
        let depth = *depth;
        match iter.next() {
            None => {
                stack.pop();
            }
            Some(proc_macro2::TokenTree::Group(g)) => {
                // The function body is never parsed, so its nesting does not matter.
                let is_body = depth == 0 && g.delimiter() == proc_macro2::Delimiter::Brace;
                if !is_body {
                    if depth + 1 + angles > MAX_NESTING {
                        return true;
                    }
                    stack.push((g.stream().into_iter(), depth + 1));
                }
            }
            Some(proc_macro2::TokenTree::Punct(p)) if p.as_char() == '<' => {
                angles += 1;
                if depth + angles > MAX_NESTING {
                    return true;
                }
            }
            Some(_) => {}
        }
    }
    false
}

/// Checks the arguments and the function, then generates the route.
pub fn route(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    for tokens in [&attr, &item] {
        if too_deep(tokens) {
            return Err(syn::Error::new(
                proc_macro2::Span::call_site(),
                format!("#[route]: more than {MAX_NESTING} levels of nesting in the signature or arguments"),
            ));
        }
    }
    let func: LazyFn = syn::parse2(item).map_err(|e| {
        syn::Error::new(
            e.span(),
            "#[route] goes on a function: #[route(\"/path\", auth = \"api_key\")] fn handler() …",
        )
    })?;
    let args: Args = syn::parse2(attr)?;
    let route = validate(args, &func.sig)?;
    Ok(expand(route, func))
}

/// Pure codegen: Rocket's method attribute with the user's arguments, and the guard for
/// `auth` injected as the first parameter (Rocket runs guards in order, so an unauthenticated
/// request is refused before any other guard or the body is looked at).
fn expand(route: Route, mut func: LazyFn) -> TokenStream {
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
    let policy = if route.groups.is_empty() && route.scopes.is_empty() {
        exports::no_groups()
    } else {
        let name = format_ident!("__apikey_policy_{}", func.sig.ident);
        let groups = &route.groups;
        let scopes = &route.scopes;
        let policy_trait = exports::policy_trait();
        extra.extend(quote! {
            #[doc(hidden)]
            #[allow(non_camel_case_types)]
            #vis struct #name;
            impl #policy_trait for #name {
                const GROUPS: &'static [&'static str] = &[#(#groups),*];
                const SCOPES: &'static [&'static str] = &[#(#scopes),*];
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

    extra.extend(declaration(&route, &func));
    let LazyFn {
        attrs,
        vis,
        sig,
        body,
    } = func;
    quote! {
        #[#attr(#(#rocket_args),*)]
        #(#attrs)*
        #vis #sig #body
        #extra
    }
}

/// The route's registration in the route inventory: its handler, method, path, auth mode,
/// groups and custom guard, for `apikey_rocket::route_inventory` and the OpenAPI addon.
fn declaration(route: &Route, func: &LazyFn) -> TokenStream {
    let p = exports::private();
    let name = func.sig.ident.to_string();
    let method = &route.method;
    let path = &route.path;
    let groups = &route.groups;
    let scopes = &route.scopes;
    let (auth, guard) = match &route.auth {
        Auth::ApiKey => (quote!(ApiKey), quote!(::core::option::Option::None)),
        Auth::Public => (quote!(Public), quote!(::core::option::Option::None)),
        Auth::None => (quote!(None), quote!(::core::option::Option::None)),
        Auth::Guard(path) => {
            let written: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
            let written = written.join("::");
            (
                quote!(Custom),
                quote!(::core::option::Option::Some(#written)),
            )
        }
    };
    quote! {
        #p::inventory::submit! {
            #p::Declared {
                name: #name,
                method: #method,
                path: #path,
                auth: #p::RouteAuth::#auth,
                groups: &[#(#groups),*],
                scopes: &[#(#scopes),*],
                guard: #guard,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn bodies_are_not_parsed() {
        // Found by fuzzing: syn's expression parser overflowed the stack on a deeply nested
        // body. Bodies are now passed through as tokens.
        let body = format!("fn handler() {{ {} () }}", "|| ".repeat(50_000));
        let item = TokenStream::from_str(&body).unwrap();
        let attr = TokenStream::from_str(r#""/x", auth = "api_key""#).unwrap();
        let out = route(attr, item).unwrap().to_string();
        assert!(out.contains("__apikey_guard"));
    }

    #[test]
    fn absurd_nesting_is_an_error_not_a_crash() {
        // Found by fuzzing: syn's type parser overflowed the stack on deeply nested generics.
        let deep_generics = format!(
            "fn handler(x: {}u8{}) {{}}",
            "Vec<".repeat(5_000),
            ">".repeat(5_000)
        );
        let deep_parens = format!(
            "fn handler(x: {}u8{}) {{}}",
            "(".repeat(5_000),
            ")".repeat(5_000)
        );
        let attr = TokenStream::from_str(r#""/x""#).unwrap();
        for item in [deep_generics, deep_parens] {
            let err = route(attr.clone(), TokenStream::from_str(&item).unwrap()).unwrap_err();
            assert!(err.to_string().contains("levels of nesting"));
        }
        let deep_attr = TokenStream::from_str(&format!(
            "\"/x\", auth = a::{}b{}",
            "<a::".repeat(5_000),
            ">".repeat(5_000)
        ))
        .unwrap();
        let item = TokenStream::from_str("fn handler() {}").unwrap();
        assert!(route(deep_attr, item).is_err());
        let fine = TokenStream::from_str("fn handler(x: Vec<Option<Result<u8, ()>>>) {}").unwrap();
        assert!(route(attr, fine).is_ok());
    }

    #[test]
    fn errors_point_at_tokens() {
        let attr = TokenStream::from_str(r#""/x", auth = "nope""#).unwrap();
        let item = TokenStream::from_str("fn handler() {}").unwrap();
        let err = route(attr, item).unwrap_err();
        assert!(err.to_string().contains("unknown auth `nope`"));
    }
}
