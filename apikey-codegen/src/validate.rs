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
    if let Some(scopes) = &args.scopes {
        if matches!(auth.value, Auth::None | Auth::Guard(_)) {
            errors.push(syn::Error::new(
                scopes.span,
                "`scopes` needs auth = \"api_key\" or \"public\": only API keys have scopes",
            ));
        }
        for scope in &scopes.value {
            if let Err(why) = required_scope(&scope.value()) {
                errors.push(syn::Error::new(scope.span(), why));
            }
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
        scopes: args.scopes.map(|s| s.value).unwrap_or_default(),
        data: args.data,
        format: args.format,
        rank: args.rank,
    })
}

/// Checks a scope a route needs: parts of ASCII letters, digits, `_`, `-` and `.` separated by
/// `:`, no wildcard (a route names the permission it needs; `orders:*` belongs on keys). The
/// rule `apikey_core::model::check_required_scope` applies at run time; the two are checked to
/// agree by the workspace's tests.
pub fn required_scope(scope: &str) -> Result<(), String> {
    const MAX: usize = 128;
    if scope.len() > MAX {
        return Err(format!("a scope is at most {MAX} bytes long"));
    }
    for part in scope.split(':') {
        if part == "*" {
            return Err(
                "a route needs a scope by its full name: `*` covers scopes only on keys".into(),
            );
        }
        if part.is_empty() {
            return Err(format!(
                "`{scope}` is not a scope: an empty part between `:` (write e.g. \"orders:write\")"
            ));
        }
        if let Some(c) = part
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        {
            return Err(format!(
                "`{}` is not allowed in a scope: use letters, digits, `_`, `-`, `.`, and `:` \
                 between parts (e.g. \"orders:write\")",
                c.escape_default()
            ));
        }
    }
    Ok(())
}
