//! What `#[route]` is made of: its arguments as written ([`Args`]), the route they describe
//! once checked ([`Route`]), and the function it goes on ([`LazyFn`]).

use proc_macro2::{Span, TokenStream};
use syn::{Attribute, LitInt, LitStr, Signature, Visibility};

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
    /// The value.
    pub value: T,
    /// Where it was written.
    pub span: Span,
}

/// The arguments as parsed, before cross-argument checks, with every error met on the way
/// (parsing goes on after a bad argument, so all of them are reported at once).
#[derive(Default)]
pub struct Args {
    /// `GET` or `method = "GET"`.
    pub method: Option<Spanned<String>>,
    /// `"/path"`.
    pub path: Option<LitStr>,
    /// `auth = …`.
    pub auth: Option<Spanned<Auth>>,
    /// `groups = […]`.
    pub groups: Option<Spanned<Vec<LitStr>>>,
    /// `scopes = […]`.
    pub scopes: Option<Spanned<Vec<LitStr>>>,
    /// Rocket's `data = "<param>"`.
    pub data: Option<LitStr>,
    /// Rocket's `format = "…"`.
    pub format: Option<LitStr>,
    /// Rocket's `rank = n`.
    pub rank: Option<LitInt>,
    /// The errors of the arguments that could not be read.
    pub errors: Vec<syn::Error>,
}

/// A route that passed every check: what code generation turns into Rocket's route.
pub struct Route {
    /// The method, upper case.
    pub method: String,
    /// The path.
    pub path: LitStr,
    /// Who may call it.
    pub auth: Auth,
    /// Groups allowed (empty: every key).
    pub groups: Vec<LitStr>,
    /// Scopes needed, all of them (empty: none).
    pub scopes: Vec<LitStr>,
    /// Rocket's `data`.
    pub data: Option<LitStr>,
    /// Rocket's `format`.
    pub format: Option<LitStr>,
    /// Rocket's `rank`.
    pub rank: Option<LitInt>,
}

/// A function whose body is kept as tokens: only the signature matters here, and parsing a
/// body (which rustc has already parsed) could only fail or, deeply nested, exhaust the stack.
pub struct LazyFn {
    /// Its attributes.
    pub attrs: Vec<Attribute>,
    /// Its visibility.
    pub vis: Visibility,
    /// Its signature.
    pub sig: Signature,
    /// Its body, braces included.
    pub body: TokenStream,
}
