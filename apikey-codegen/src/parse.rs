//! Reading `#[route(...)]` arguments into [`Args`] and the function into [`LazyFn`], with every
//! error at its token. A bad argument does not stop the reading: its error is kept and the next
//! argument is read, so one compilation reports every mistake.

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{bracketed, Attribute, Ident, LitStr, Token};

use crate::model::{Args, Auth, LazyFn, Spanned, METHODS};

const NAMED: &str = "`method`, `auth`, `groups`, `scopes`, `data`, `format` or `rank`";

fn set_once<T>(slot: &mut Option<T>, value: T, key: &Ident) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new(
            key.span(),
            format!("`{key}` set multiple times"),
        ));
    }
    *slot = Some(value);
    Ok(())
}

fn method_name(text: &str, span: Span) -> syn::Result<String> {
    let upper = text.to_ascii_uppercase();
    if METHODS.contains(&upper.as_str()) {
        Ok(upper)
    } else {
        Err(syn::Error::new(
            span,
            format!(
                "unknown HTTP method `{text}`; expected one of {}",
                METHODS.join(", ")
            ),
        ))
    }
}

fn set_method(args: &mut Args, value: String, span: Span) -> syn::Result<()> {
    if args.method.is_some() {
        return Err(syn::Error::new(
            span,
            "the method is set twice: give it once, either first (`POST, \"/path\"`) or as \
             `method = \"POST\"`",
        ));
    }
    args.method = Some(Spanned { value, span });
    Ok(())
}

fn parse_auth(input: ParseStream) -> syn::Result<Spanned<Auth>> {
    if input.peek(LitStr) {
        let lit: LitStr = input.parse()?;
        let value = match lit.value().as_str() {
            "api_key" => Auth::ApiKey,
            "public" => Auth::Public,
            "none" => Auth::None,
            other => {
                return Err(syn::Error::new(
                    lit.span(),
                    format!(
                        "unknown auth `{other}`; expected \"api_key\", \"public\", \"none\" \
                         or a path to a request guard type (auth = my::Guard)"
                    ),
                ))
            }
        };
        return Ok(Spanned {
            value,
            span: lit.span(),
        });
    }
    if input.peek(Ident) || input.peek(Token![::]) || input.peek(Token![crate]) {
        let path: syn::Path = input.parse()?;
        let span = syn::spanned::Spanned::span(&path);
        return Ok(Spanned {
            value: Auth::Guard(path),
            span,
        });
    }
    Err(input.error("expected \"api_key\", \"public\", \"none\" or a path to a request guard type"))
}

/// A list of names: `groups = ["billing"]` or `scopes = ["orders:write"]` (`what` is
/// "group" or "scope").
fn parse_names(input: ParseStream, what: &str) -> syn::Result<Spanned<Vec<LitStr>>> {
    if !input.peek(syn::token::Bracket) {
        let example = if what == "group" {
            "groups = [\"billing\"]"
        } else {
            "scopes = [\"orders:write\"]"
        };
        return Err(input.error(format!("expected a list of {what} names: {example}")));
    }
    let content;
    let bracket = bracketed!(content in input);
    let span = bracket.span.join();
    let items = Punctuated::<syn::Lit, Token![,]>::parse_terminated(&content)?;
    let mut names = Vec::new();
    for item in items {
        match item {
            syn::Lit::Str(s) if !s.value().trim().is_empty() => names.push(s),
            syn::Lit::Str(s) => {
                return Err(syn::Error::new(
                    s.span(),
                    format!("a {what} name cannot be empty"),
                ))
            }
            other => {
                return Err(syn::Error::new(
                    other.span(),
                    format!("a {what} name must be a string literal"),
                ))
            }
        }
    }
    if names.is_empty() {
        let leave = if what == "group" {
            "leave it out to allow every key"
        } else {
            "leave it out to need none"
        };
        return Err(syn::Error::new(
            span,
            format!("`{what}s` needs at least one {what}; {leave}"),
        ));
    }
    Ok(Spanned { value: names, span })
}

/// Reads one argument (a path, a method, or `key = value`) into `args`.
fn argument(args: &mut Args, input: ParseStream) -> syn::Result<()> {
    if input.peek(LitStr) {
        let lit: LitStr = input.parse()?;
        if args.path.is_some() {
            return Err(syn::Error::new(lit.span(), "the route path is given twice"));
        }
        args.path = Some(lit);
    } else if input.peek(Ident) && input.peek2(Token![=]) {
        let key: Ident = input.parse()?;
        input.parse::<Token![=]>()?;
        match key.to_string().as_str() {
            "method" => {
                let lit: LitStr = input.parse()?;
                let m = method_name(&lit.value(), lit.span())?;
                set_method(args, m, lit.span())?;
            }
            "auth" => {
                let auth = parse_auth(input)?;
                set_once(&mut args.auth, auth, &key)?;
            }
            "groups" => {
                let groups = parse_names(input, "group")?;
                set_once(&mut args.groups, groups, &key)?;
            }
            "scopes" => {
                let scopes = parse_names(input, "scope")?;
                set_once(&mut args.scopes, scopes, &key)?;
            }
            "data" => set_once(&mut args.data, input.parse()?, &key)?,
            "format" => set_once(&mut args.format, input.parse()?, &key)?,
            "rank" => set_once(&mut args.rank, input.parse()?, &key)?,
            other => {
                return Err(syn::Error::new(
                    key.span(),
                    format!("unknown argument `{other}`; expected {NAMED}"),
                ))
            }
        }
    } else if input.peek(Ident) {
        let ident: Ident = input.parse()?;
        let m = method_name(&ident.to_string(), ident.span())?;
        set_method(args, m, ident.span())?;
    } else {
        return Err(input.error(format!(
            "expected the route path (\"/path\"), a method (GET, POST, …) or {NAMED}"
        )));
    }
    Ok(())
}

impl Parse for Args {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut args = Args::default();
        while !input.is_empty() {
            if let Err(e) = argument(&mut args, input) {
                args.errors.push(e);
                // Skip the rest of the bad argument, up to the next top-level comma.
                while !input.is_empty() && !input.peek(Token![,]) {
                    input.parse::<proc_macro2::TokenTree>()?;
                }
            }
            if !input.is_empty() {
                if let Err(e) = input.parse::<Token![,]>() {
                    args.errors.push(e);
                    return Ok(args);
                }
            }
        }
        Ok(args)
    }
}

impl Parse for LazyFn {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        let sig = input.parse()?;
        let content;
        let brace = syn::braced!(content in input);
        let mut group = proc_macro2::Group::new(proc_macro2::Delimiter::Brace, content.parse()?);
        group.set_span(brace.span.join());
        let body = proc_macro2::TokenTree::Group(group).into();
        Ok(LazyFn {
            attrs,
            vis,
            sig,
            body,
        })
    }
}
