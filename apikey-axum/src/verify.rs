//! The verification of one request, done at most once whatever asks for it (the route layer,
//! the extractors), its outcome kept in the request's extensions.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};

use apikey_core::config::DEFAULT_HEADER;
use apikey_core::http::Answers;
use apikey_core::limits::Budget;
use apikey_core::verify::{Checked, Header, Later, RequestFacts};
use apikey_core::{AuthError, KeyDigest};
use axum::extract::ConnectInfo;
use http::header::AUTHORIZATION;
use http::{Extensions, HeaderMap, HeaderValue};
use time::OffsetDateTime;

use crate::caller::Caller;
use crate::client::ClientAddr;
use crate::refused::Refused;
use crate::state::ApiKeyState;

/// What the response tells the client of its valid key: when it stops working, if soon
/// (`Sunset`), and its limits (`RateLimit-Policy`, `RateLimit`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Announced {
    pub(crate) sunset: Option<OffsetDateTime>,
    pub(crate) limits: Budget,
}

/// What apikey puts in each request: the state, and the outcome of verifying the request's
/// key. One entry of the request's extensions; nothing goes through a task-local.
#[derive(Clone)]
pub(crate) enum InRequest {
    /// Put by the [`ApiKeyLayer`](crate::ApiKeyLayer) (or a route that does not verify): the
    /// key is verified once something asks, and the slot is shared with the response future,
    /// which reads what to announce whatever task verified the key.
    Shared(Arc<Slot>),
    /// Put by a route carrying the state, its key verified already (what the response
    /// announces is added by that route).
    Settled {
        state: ApiKeyState,
        outcome: Result<Caller, AuthError>,
        secret: Option<KeyDigest>,
    },
}

pub(crate) struct Slot {
    state: ApiKeyState,
    outcome: OnceLock<Result<Caller, AuthError>>,
    /// The digest of the secret a valid key presented.
    secret: OnceLock<KeyDigest>,
    /// What the response announces of a valid key, when it has something to announce.
    announced: OnceLock<Announced>,
}

impl Slot {
    pub(crate) fn new(state: ApiKeyState) -> Self {
        Slot {
            state,
            outcome: OnceLock::new(),
            secret: OnceLock::new(),
            announced: OnceLock::new(),
        }
    }

    /// What the response announces of the request's key (nothing when it was not verified, not
    /// valid, or has nothing to announce).
    pub(crate) fn announced(&self) -> Option<Announced> {
        self.announced.get().copied()
    }
}

impl InRequest {
    pub(crate) fn new(state: ApiKeyState) -> Self {
        InRequest::Shared(Arc::new(Slot::new(state)))
    }

    /// The verification state.
    pub(crate) fn state(&self) -> &ApiKeyState {
        match self {
            InRequest::Shared(slot) => &slot.state,
            InRequest::Settled { state, .. } => state,
        }
    }

    fn secret(&self) -> Option<KeyDigest> {
        match self {
            InRequest::Shared(slot) => slot.secret.get().copied(),
            InRequest::Settled { secret, .. } => *secret,
        }
    }
}

/// The digest of the secret the request's valid key presented, once it was verified.
pub(crate) fn presented_secret(extensions: &Extensions) -> Option<KeyDigest> {
    extensions.get::<InRequest>()?.secret()
}

/// An axum request as the verifier reads it: its headers (the key header by the name parsed
/// once), what the app said of the client (`ClientAddr`) and the connection's peer.
struct Facts<'a> {
    state: &'a ApiKeyState,
    headers: &'a HeaderMap,
    extensions: &'a Extensions,
}

impl RequestFacts for Facts<'_> {
    fn header(&self, header: Header<'_>) -> impl Iterator<Item = Option<&str>> {
        let values = match header {
            Header::Key(_) => self.headers.get_all(&self.state.0.header),
            Header::Authorization => self.headers.get_all(AUTHORIZATION),
            Header::Forwarding(h) => self.headers.get_all(h.name()),
        };
        values.into_iter().map(text)
    }

    fn peer(&self) -> Option<IpAddr> {
        peer(self.extensions)
    }

    fn client_override(&self) -> Option<IpAddr> {
        app_set(self.extensions)
    }
}

/// The connection's peer (the app is served with `into_make_service_with_connect_info`).
fn peer(extensions: &Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip())
}

/// The client's address as the app set it itself ([`ClientAddr`]).
fn app_set(extensions: &Extensions) -> Option<IpAddr> {
    extensions.get::<ClientAddr>().map(|ClientAddr(ip)| *ip)
}

/// Verifies the request's key once; later calls return the kept outcome. What is known
/// already (a route verified the key, or an extractor before) is answered without the
/// verification's future, which is boxed: a handler's own future stays small.
pub(crate) async fn verified(
    headers: &HeaderMap,
    extensions: &Extensions,
) -> Result<Caller, AuthError> {
    let Some(keys) = extensions.get::<InRequest>() else {
        apikey_core::__event!(
            error,
            "apikey: a route needs an API key but the ApiKeyLayer is not installed: add \
             `.layer(apikey_axum::ApiKeyLayer::new(state))`; refusing the request"
        );
        return Err(AuthError::Unavailable);
    };
    let slot = match keys {
        InRequest::Settled { outcome, .. } => return outcome.clone(),
        InRequest::Shared(slot) => slot,
    };
    match slot.outcome.get() {
        Some(outcome) => outcome.clone(),
        None => Box::pin(verify_into(slot, headers, extensions)).await,
    }
}

/// Verifies the request's key into the layer's slot.
async fn verify_into(
    slot: &Slot,
    headers: &HeaderMap,
    extensions: &Extensions,
) -> Result<Caller, AuthError> {
    let facts = Facts {
        state: &slot.state,
        headers,
        extensions,
    };
    let outcome = match slot.state.verifier().verify_request(&facts).await {
        Ok(verified) => {
            let _ = slot.secret.set(verified.secret);
            if verified.sunset.is_some() || !verified.limits.is_empty() {
                let _ = slot.announced.set(Announced {
                    sunset: verified.sunset,
                    limits: verified.limits,
                });
            }
            Ok(Caller(verified.identity))
        }
        Err(e) => Err(e),
    };
    // Two extractors of one request never run at once: the first outcome is the one kept.
    slot.outcome.get_or_init(|| outcome).clone()
}

/// A key verified by a route carrying the state: who called, the digest of the secret it
/// presented, and what the response is to announce.
pub(crate) struct Settled {
    pub(crate) caller: Caller,
    secret: KeyDigest,
    pub(crate) announced: Option<Announced>,
}

impl Settled {
    /// The slot to put in the request going on to the handler.
    pub(crate) fn into_slot(self, state: ApiKeyState) -> InRequest {
        InRequest::Settled {
            state,
            outcome: Ok(self.caller),
            secret: Some(self.secret),
        }
    }
}

/// The slot of a request without a key on a public route (`Option<Caller>` is `None`).
pub(crate) fn keyless(state: ApiKeyState) -> InRequest {
    InRequest::Settled {
        state,
        outcome: Err(AuthError::Missing),
        secret: None,
    }
}

/// Verifies a request by `state` where no layer put a slot in it (a route of an `ApiRouter`),
/// as far as it goes without waiting: nothing is allocated for a refusal.
pub(crate) fn verify_carried_now(
    state: &ApiKeyState,
    headers: &HeaderMap,
    extensions: &Extensions,
) -> Result<Result<Settled, AuthError>, Later> {
    let facts = Facts {
        state,
        headers,
        extensions,
    };
    match state.verifier().verify_request_now(&facts) {
        Checked::Done(result) => Ok(result.map(settle)),
        Checked::Later(later) => Err(later),
    }
}

/// Finishes what [`verify_carried_now`] left for later.
pub(crate) async fn verify_carried_later(
    state: &ApiKeyState,
    later: Later,
    headers: &HeaderMap,
    extensions: &Extensions,
) -> Result<Settled, AuthError> {
    let facts = Facts {
        state,
        headers,
        extensions,
    };
    state
        .verifier()
        .verify_request_later(later, &facts)
        .await
        .map(settle)
}

fn settle(v: apikey_core::Verified) -> Settled {
    let announced = (v.sunset.is_some() || !v.limits.is_empty()).then_some(Announced {
        sunset: v.sunset,
        limits: v.limits,
    });
    Settled {
        caller: Caller(v.identity),
        secret: v.secret,
        announced,
    }
}

fn text(value: &HeaderValue) -> Option<&str> {
    std::str::from_utf8(value.as_bytes()).ok()
}

/// The client's address of a request, as apikey establishes it (the state's rule when the
/// layer is installed; what the app set, or the peer, otherwise).
pub(crate) fn request_client(headers: &HeaderMap, extensions: &Extensions) -> Option<IpAddr> {
    match extensions.get::<InRequest>() {
        Some(keys) => keys.state().verifier().client_of(&Facts {
            state: keys.state(),
            headers,
            extensions,
        }),
        None => app_set(extensions).or_else(|| peer(extensions)),
    }
}

/// The client's address of a request by `state`'s rule, whether or not the layer is installed.
#[cfg(feature = "admin")]
pub(crate) fn client_by(
    state: &ApiKeyState,
    headers: &HeaderMap,
    extensions: &Extensions,
) -> Option<IpAddr> {
    state.verifier().client_of(&Facts {
        state,
        headers,
        extensions,
    })
}

/// The answer to `err` for this request.
pub(crate) fn refusal(extensions: &Extensions, err: AuthError) -> Refused {
    match extensions.get::<InRequest>() {
        Some(keys) => Refused(keys.state().prepared(err)),
        None => Refused(Answers::new(DEFAULT_HEADER, false).refusal(err)),
    }
}

/// Why a valid key may not use a route allowing `groups` and needing `scopes` (outside its
/// groups, missing a scope), if it may not: the core decides, logs and counts it as the key's
/// 403.
pub(crate) fn authorize(
    extensions: &Extensions,
    caller: &Caller,
    groups: &[String],
    scopes: &[String],
) -> Option<AuthError> {
    if groups.is_empty() && scopes.is_empty() {
        return None;
    }
    match extensions.get::<InRequest>() {
        Some(keys) => keys
            .state()
            .verifier()
            .authorize(&caller.0, groups, scopes)
            .err(),
        None => Some(AuthError::Unavailable),
    }
}
