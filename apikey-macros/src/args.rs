//! Parsing `#[route(...)]` arguments into [`Args`], with an error at the offending token.

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{bracketed, Ident, LitInt, LitStr, Token};

/// The HTTP methods Rocket routes on.
pub const METHODS: &[&str] = &["GET", "PUT", "POST", "DELETE", "HEAD", "PATCH", "OPTIONS"];

/// What `auth = …` says.
pub enum Auth {
    /// `"api_key"`: a valid key is required.
    ApiKey,
    /// `"public"`: a key is optional; a bad one is still refused.
    Public,
    /// `"none"`: no check.
    None,
    /// A path to a request guard type: a custom auth method.
    Guard(syn::Path),
}

/// A value with the span of the token it came from.
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

/// The parsed arguments, before cross-argument checks.
#[derive(Default)]
pub struct Args {
    pub method: Option<Spanned<String>>,
    pub path: Option<LitStr>,
    pub auth: Option<Spanned<Auth>>,
    pub groups: Option<Spanned<Vec<LitStr>>>,
    pub data: Option<LitStr>,
    pub format: Option<LitStr>,
    pub rank: Option<LitInt>,
}

const NAMED: &str = "`method`, `auth`, `groups`, `data`, `format` or `rank`";

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

fn parse_groups(input: ParseStream) -> syn::Result<Spanned<Vec<LitStr>>> {
    if !input.peek(syn::token::Bracket) {
        return Err(input.error("expected a list of group names: groups = [\"billing\"]"));
    }
    let content;
    let bracket = bracketed!(content in input);
    let span = bracket.span.join();
    let items = Punctuated::<syn::Lit, Token![,]>::parse_terminated(&content)?;
    let mut groups = Vec::new();
    for item in items {
        match item {
            syn::Lit::Str(s) if !s.value().trim().is_empty() => groups.push(s),
            syn::Lit::Str(s) => {
                return Err(syn::Error::new(s.span(), "a group name cannot be empty"))
            }
            other => {
                return Err(syn::Error::new(
                    other.span(),
                    "a group name must be a string literal",
                ))
            }
        }
    }
    if groups.is_empty() {
        return Err(syn::Error::new(
            span,
            "`groups` needs at least one group; leave it out to allow every key",
        ));
    }
    Ok(Spanned {
        value: groups,
        span,
    })
}

impl Parse for Args {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut args = Args::default();
        while !input.is_empty() {
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
                        set_method(&mut args, m, lit.span())?;
                    }
                    "auth" => {
                        let auth = parse_auth(input)?;
                        set_once(&mut args.auth, auth, &key)?;
                    }
                    "groups" => {
                        let groups = parse_groups(input)?;
                        set_once(&mut args.groups, groups, &key)?;
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
                set_method(&mut args, m, ident.span())?;
            } else {
                return Err(input.error(format!(
                    "expected the route path (\"/path\"), a method (GET, POST, …) or {NAMED}"
                )));
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(args)
    }
}
