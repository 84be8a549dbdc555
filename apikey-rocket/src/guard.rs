//! Request guards: the verification of one request, done once and shared by every guard.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU8, Ordering};

use apikey_core::http::Keys;
use apikey_core::limits::Budget;
use apikey_core::{AuthError, KeyDigest};
use rocket::request::{FromRequest, Outcome};
use rocket::{Ignite, Request, Rocket, Sentinel};
use time::OffsetDateTime;

use crate::caller::Caller;
use crate::facts::Facts;
use crate::problem::status_of;
use crate::state::ApiKeyState;

/// What apikey knows of this request, in one request-local entry: the outcome of verifying its
/// key (computed at most once), when a valid key stops working if soon (the response's
/// `Sunset`), and whether a guard of ours refused it (for the catchers).
pub(crate) struct Verified {
    /// `None` until something asks (a catcher or the response hook of a request no guard of
    /// ours saw).
    outcome: Option<Result<Caller, AuthError>>,
    /// The digest of the secret a valid key presented.
    secret: Option<KeyDigest>,
    sunset: Option<OffsetDateTime>,
    /// The key's limits, for the `RateLimit-Policy` and `RateLimit` fields.
    limits: Budget,
    refused: AtomicU8,
    /// The state that verified the key (two pointers): what the catcher answers the refusal
    /// with, without looking Rocket's state up again.
    keys: Option<Keys>,
}

/// Values of [`Verified::refused`].
const NOT_REFUSED: u8 = 0;
const REFUSED: u8 = 1;
const FORBIDDEN: u8 = 2;
const MISSING_SCOPE: u8 = 3;

impl Verified {
    fn not_asked() -> Self {
        Self::failed(None, None)
    }

    fn failed(outcome: Option<Result<Caller, AuthError>>, keys: Option<Keys>) -> Self {
        Verified {
            outcome,
            secret: None,
            sunset: None,
            limits: Budget::default(),
            refused: AtomicU8::new(NOT_REFUSED),
            keys,
        }
    }

    fn valid(v: apikey_core::Verified, keys: Keys) -> Self {
        Verified {
            outcome: Some(Ok(Caller(v.identity))),
            secret: Some(v.secret),
            sunset: v.sunset,
            limits: v.limits,
            refused: AtomicU8::new(NOT_REFUSED),
            keys: Some(keys),
        }
    }

    /// The state that verified this request's key (`None` when no guard of ours ran).
    pub(crate) fn keys(&self) -> Option<&Keys> {
        self.keys.as_ref()
    }

    /// The outcome of verifying the request's key.
    pub(crate) fn outcome(&self) -> &Result<Caller, AuthError> {
        self.outcome
            .as_ref()
            .unwrap_or(&Err(AuthError::Unavailable))
    }

    /// Notes that a route of ours refused the request with `err` (for the catchers, which
    /// then answer it as every refusal is answered); returns its status.
    pub(crate) fn refuse(&self, err: AuthError) -> rocket::http::Status {
        let code = match err {
            AuthError::Forbidden => FORBIDDEN,
            AuthError::MissingScope => MISSING_SCOPE,
            _ => REFUSED,
        };
        self.refused.store(code, Ordering::Relaxed);
        status_of(err)
    }

    /// This request's entry (one that says "not asked" when no guard of ours ran).
    pub(crate) fn of<'r>(req: &'r Request<'_>) -> &'r Verified {
        req.local_cache(Verified::not_asked)
    }

    /// Why a guard of ours refused this request, if one did.
    pub(crate) fn refusal(&self) -> Option<AuthError> {
        match (self.refused.load(Ordering::Relaxed), &self.outcome) {
            (FORBIDDEN, _) => Some(AuthError::Forbidden),
            (MISSING_SCOPE, _) => Some(AuthError::MissingScope),
            (REFUSED, Some(Err(e))) => Some(*e),
            _ => None,
        }
    }

    /// The digest of the secret this request's valid key presented.
    pub(crate) fn secret(&self) -> Option<&KeyDigest> {
        self.secret.as_ref()
    }

    /// When this request's key stops working, if soon.
    pub(crate) fn sunset(&self) -> Option<OffsetDateTime> {
        self.sunset
    }

    /// This request's key's limits (empty when it has none).
    pub(crate) fn limits(&self) -> &Budget {
        &self.limits
    }
}

/// Verifies the request's key once; later calls return the kept entry.
pub(crate) async fn verified<'r>(req: &'r Request<'_>) -> &'r Verified {
    req.local_cache_async(async {
        match req.rocket().state::<ApiKeyState>() {
            Some(keys) => {
                // The client's address is asked only of keys bound to networks: the
                // peer, or what a trusted proxy reports (never Rocket's `ip_header`).
                match keys.verifier().verify_request(&Facts(req)).await {
                    Ok(v) => Verified::valid(v, keys.keys.clone()),
                    Err(e) => Verified::failed(Some(Err(e)), Some(keys.keys.clone())),
                }
            }
            None => {
                apikey_core::__event!(
                    error,
                    "apikey: the ApiKey fairing is not attached; refusing the request"
                );
                Verified::failed(Some(Err(AuthError::Unavailable)), None)
            }
        }
    })
    .await
}

/// Refuses the request with `err`: the verification's own outcome, or `Forbidden`.
fn refuse<T>(entry: &Verified, err: AuthError) -> Outcome<T, AuthError> {
    Outcome::Error((entry.refuse(err), err))
}

fn needs_fairing(rocket: &Rocket<Ignite>) -> bool {
    if rocket.state::<ApiKeyState>().is_none() {
        apikey_core::__event!(
            error,
            "a route needs an API key but the apikey fairing is not attached: \
             add `.attach(apikey_rocket::ApiKey::fairing())`"
        );
        return true;
    }
    false
}

/// The groups a route allows and the scopes it needs; generated by `#[route(groups = [...],
/// scopes = [...])]`.
#[doc(hidden)]
pub trait Policy: Send + Sync + 'static {
    /// Groups allowed (any of them); empty allows every valid key.
    const GROUPS: &'static [&'static str];
    /// Scopes needed (all of them); empty needs none.
    const SCOPES: &'static [&'static str] = &[];
}

/// The policy of routes without `groups` or `scopes`.
#[doc(hidden)]
pub struct AnyGroup;

impl Policy for AnyGroup {
    const GROUPS: &'static [&'static str] = &[];
}

/// Guard of `auth = "api_key"` routes: a valid key in the route's groups, with its scopes.
#[doc(hidden)]
pub struct ApiKeyGuard<P>(PhantomData<P>);

/// Guard of `auth = "public"` routes: no key, or a valid key in the route's groups, with its
/// scopes.
#[doc(hidden)]
pub struct PublicGuard<P>(PhantomData<P>);

fn check_groups<'r, P: Policy>(
    entry: &'r Verified,
    caller: &'r Caller,
) -> Outcome<&'r Caller, AuthError> {
    if P::GROUPS.is_empty() && P::SCOPES.is_empty() {
        return Outcome::Success(caller);
    }
    let decided = match entry.keys() {
        Some(keys) => keys.verifier().authorize(&caller.0, P::GROUPS, P::SCOPES),
        None => Err(AuthError::Unavailable),
    };
    match decided {
        Ok(()) => Outcome::Success(caller),
        Err(e) => refuse(entry, e),
    }
}

#[rocket::async_trait]
impl<'r, P: Policy> FromRequest<'r> for ApiKeyGuard<P> {
    type Error = AuthError;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, AuthError> {
        let entry = verified(req).await;
        match entry.outcome() {
            Ok(caller) => check_groups::<P>(entry, caller).map(|_| ApiKeyGuard(PhantomData)),
            Err(e) => refuse(entry, *e),
        }
    }
}

#[rocket::async_trait]
impl<'r, P: Policy> FromRequest<'r> for PublicGuard<P> {
    type Error = AuthError;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, AuthError> {
        let entry = verified(req).await;
        match entry.outcome() {
            Ok(caller) => check_groups::<P>(entry, caller).map(|_| PublicGuard(PhantomData)),
            Err(AuthError::Missing) => Outcome::Success(PublicGuard(PhantomData)),
            Err(e) => refuse(entry, *e),
        }
    }
}

/// The caller of a route: `&Caller` requires a valid key, `Option<&Caller>` is `None` when the
/// key is missing or refused. Verification happens once per request, whatever asks for it.
#[rocket::async_trait]
impl<'r> FromRequest<'r> for &'r Caller {
    type Error = AuthError;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, AuthError> {
        let entry = verified(req).await;
        match entry.outcome() {
            Ok(caller) => Outcome::Success(caller),
            Err(e) => refuse(entry, *e),
        }
    }
}

impl<P> Sentinel for ApiKeyGuard<P> {
    fn abort(rocket: &Rocket<Ignite>) -> bool {
        needs_fairing(rocket)
    }
}

impl<P> Sentinel for PublicGuard<P> {
    fn abort(rocket: &Rocket<Ignite>) -> bool {
        needs_fairing(rocket)
    }
}

impl Sentinel for Caller {
    fn abort(rocket: &Rocket<Ignite>) -> bool {
        needs_fairing(rocket)
    }
}

/// Compile-time check that a custom `auth = path::Type` is a request guard.
#[doc(hidden)]
pub fn assert_request_guard<T>()
where
    T: for<'r> FromRequest<'r>,
{
}
