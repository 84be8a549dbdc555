//! The verification of one request, done at most once whatever asks for it (the route layer,
//! the extractors), its outcome kept in the request's extensions.

use std::cell::Cell;
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;

use apikey_core::config::DEFAULT_HEADER;
use apikey_core::http::Answers;
use apikey_core::limits::Budget;
use apikey_core::AuthError;
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

tokio::task_local! {
    /// What this request's response announces (set by its verification).
    pub(crate) static ANNOUNCED: Cell<Announced>;
}

/// What the layer puts in each request: the state, and the outcome of verifying the
/// request's key once something asked (one entry of the request's extensions for both).
#[derive(Clone)]
pub(crate) struct InRequest {
    pub(crate) state: ApiKeyState,
    outcome: OnceLock<Result<Caller, AuthError>>,
}

impl InRequest {
    pub(crate) fn new(state: ApiKeyState) -> Self {
        InRequest {
            state,
            outcome: OnceLock::new(),
        }
    }
}

/// Verifies the request's key once; later calls return the kept outcome.
pub(crate) async fn verified(
    headers: &HeaderMap,
    extensions: &Extensions,
) -> Result<Caller, AuthError> {
    let Some(keys) = extensions.get::<InRequest>() else {
        log::error!(
            "apikey: a route needs an API key but the ApiKeyLayer is not installed: add \
             `.layer(apikey_axum::ApiKeyLayer::new(state))`; refusing the request"
        );
        return Err(AuthError::Unavailable);
    };
    if let Some(outcome) = keys.outcome.get() {
        return outcome.clone();
    }
    let outcome = check(&keys.state, headers, &|| {
        client_addr(&keys.state, headers, extensions)
    })
    .await;
    // Two extractors of one request never run at once: the first outcome is the one kept.
    keys.outcome.get_or_init(|| outcome).clone()
}

fn text(value: &HeaderValue) -> Option<&str> {
    std::str::from_utf8(value.as_bytes()).ok()
}

/// The client's address of a request, as apikey establishes it (the state's rule when the
/// layer is installed; the peer otherwise).
pub(crate) fn request_client(headers: &HeaderMap, extensions: &Extensions) -> Option<IpAddr> {
    match extensions.get::<InRequest>() {
        Some(keys) => client_addr(&keys.state, headers, extensions),
        None => extensions
            .get::<ClientAddr>()
            .map(|ClientAddr(ip)| *ip)
            .or_else(|| {
                extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|ConnectInfo(peer)| peer.ip())
            }),
    }
}

/// The client's address: a [`ClientAddr`] the app set itself, else the peer of the
/// connection (the app is served with `into_make_service_with_connect_info`), or what the
/// peer reports when it is inside `trusted_proxies`.
pub(crate) fn client_addr(
    state: &ApiKeyState,
    headers: &HeaderMap,
    extensions: &Extensions,
) -> Option<IpAddr> {
    if let Some(ClientAddr(ip)) = extensions.get::<ClientAddr>() {
        return Some(*ip);
    }
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    let rule = state.0.verifier.client_ip();
    rule.resolve(
        peer,
        headers
            .get_all(rule.header().name())
            .iter()
            .filter_map(text),
    )
}

async fn check(
    state: &ApiKeyState,
    headers: &HeaderMap,
    client: &(dyn Fn() -> Option<IpAddr> + Sync),
) -> Result<Caller, AuthError> {
    let inner = &state.0;
    let keys = headers.get_all(&inner.header);
    // axum hands on values that are not UTF-8 (Rocket drops them): such a key is not valid.
    if keys.iter().any(|v| text(v).is_none()) {
        return Err(inner.verifier.refuse_unreadable());
    }
    let authorization = headers.get_all(AUTHORIZATION).iter().filter_map(text);
    let verified = inner
        .verifier
        .verify_request(keys.iter().filter_map(text), authorization, client)
        .await?;
    if verified.sunset.is_some() || !verified.limits.is_empty() {
        let announced = Announced {
            sunset: verified.sunset,
            limits: verified.limits,
        };
        // Outside the layer (no scope) there is no response to announce it on.
        let _ = ANNOUNCED.try_with(|slot| slot.set(announced));
    }
    Ok(Caller(verified.identity))
}

/// The answer to `err` for this request.
pub(crate) fn refusal(extensions: &Extensions, err: AuthError) -> Refused {
    match extensions.get::<InRequest>() {
        Some(keys) => Refused(keys.state.prepared(err)),
        None => Refused(Answers::new(DEFAULT_HEADER, false).refusal(err)),
    }
}

/// Counts a valid key refused by a route's groups (it spends a quota unit, as a request).
pub(crate) fn note_forbidden(extensions: &Extensions, caller: &Caller, groups: &[String]) {
    log::info!(
        "API key {:?} refused: not in the route's groups {:?}",
        caller.key_name(),
        groups
    );
    if let Some(keys) = extensions.get::<InRequest>() {
        keys.state.0.verifier.note_forbidden(&caller.0);
    }
}
