//! Checks across arguments and against the function; every error is spanned at its token.

use proc_macro2::Span;
use syn::{FnArg, Pat, Signature};

use crate::exports;
use crate::model::{Args, Auth, Route, Spanned};

fn combine(errors: Vec<syn::Error>) -> syn::Result<()> {
    let mut iter = errors.into_iter();
    match iter.next() {
        None => Ok(()),
        Some(mut first) => {
            first.extend(iter);
            Err(first)
        }
    }
}

/// Checks the arguments against each other and against the function; reports every error
/// (those met while parsing too) at once.
pub fn validate(mut args: Args, sig: &Signature) -> syn::Result<Route> {
    let mut errors = std::mem::take(&mut args.errors);

    if let Some(p) = &args.path {
        if !p.value().starts_with('/') {
            errors.push(syn::Error::new(
                p.span(),
                "the route path must start with `/`",
            ));
        }
    }
    let auth = args.auth.unwrap_or(Spanned {
        value: Auth::ApiKey,
        span: Span::call_site(),
    });
    if let Some(groups) = &args.groups {
        if matches!(auth.value, Auth::None | Auth::Guard(_)) {
            errors.push(syn::Error::new(
                groups.span,
                "`groups` needs auth = \"api_key\" or \"public\": only API keys have groups",
            ));
        }
    }
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => errors.push(syn::Error::new_spanned(
                r,
                "a route handler cannot take `self`; make it a free function",
            )),
            FnArg::Typed(t) => {
                if let Pat::Ident(id) = &*t.pat {
                    if id.ident == exports::guard_param() {
                        errors.push(syn::Error::new_spanned(
                            &id.ident,
                            "this parameter name is reserved by #[route]",
                        ));
                    }
                }
            }
        }
    }
    if sig.asyncness.is_none() && sig.constness.is_some() {
        errors.push(syn::Error::new_spanned(
            sig.constness,
            "a route handler cannot be a `const fn`",
        ));
    }
    let Some(path) = args.path else {
        errors.insert(
            0,
            syn::Error::new(
                Span::call_site(),
                "missing route path: write #[route(\"/path\", auth = \"api_key\")]",
            ),
        );
        return Err(combine(errors).unwrap_err());
    };
    combine(errors)?;
    Ok(Route {
        method: args.method.map_or_else(|| "GET".to_owned(), |m| m.value),
        path,
        auth: auth.value,
        groups: args.groups.map(|g| g.value).unwrap_or_default(),
        data: args.data,
        format: args.format,
        rank: args.rank,
    })
}
