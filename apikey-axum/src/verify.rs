//! The verification of one request, done at most once whatever asks for it (the route layer,
//! the extractors), its outcome kept in the request's extensions.

use std::cell::Cell;

use apikey_core::config::DEFAULT_HEADER;
use apikey_core::http::Answers;
use apikey_core::AuthError;
use http::header::AUTHORIZATION;
use http::{Extensions, HeaderMap, HeaderValue};
use time::OffsetDateTime;

use crate::caller::Caller;
use crate::refused::Refused;
use crate::state::ApiKeyState;

tokio::task_local! {
    /// When this request's (valid) key stops working, if soon: the `Sunset` of the response.
    pub(crate) static SUNSET: Cell<Option<OffsetDateTime>>;
}

/// This request's outcome, once computed.
#[derive(Clone)]
struct Verified(Result<Caller, AuthError>);

/// Verifies the request's key once; later calls return the kept outcome.
pub(crate) async fn verified(
    headers: &HeaderMap,
    extensions: &mut Extensions,
) -> Result<Caller, AuthError> {
    if let Some(Verified(outcome)) = extensions.get::<Verified>() {
        return outcome.clone();
    }
    let outcome = match extensions.get::<ApiKeyState>() {
        Some(state) => check(state, headers).await,
        None => {
            log::error!(
                "apikey: a route needs an API key but the ApiKeyLayer is not installed: add \
                 `.layer(apikey_axum::ApiKeyLayer::new(state))`; refusing the request"
            );
            Err(AuthError::Unavailable)
        }
    };
    extensions.insert(Verified(outcome.clone()));
    outcome
}

fn text(value: &HeaderValue) -> Option<&str> {
    std::str::from_utf8(value.as_bytes()).ok()
}

async fn check(state: &ApiKeyState, headers: &HeaderMap) -> Result<Caller, AuthError> {
    let inner = &state.0;
    let keys = headers.get_all(&inner.header);
    // axum hands on values that are not UTF-8 (Rocket drops them): such a key is not valid.
    if keys.iter().any(|v| text(v).is_none()) {
        return Err(inner.verifier.refuse_unreadable());
    }
    let authorization = headers.get_all(AUTHORIZATION).iter().filter_map(text);
    let verified = inner
        .verifier
        .verify_request(keys.iter().filter_map(text), authorization)
        .await?;
    if verified.sunset.is_some() {
        // Outside the layer (no scope) there is no response to announce it on.
        let _ = SUNSET.try_with(|slot| slot.set(verified.sunset));
    }
    Ok(Caller(verified.identity))
}

/// The answer to `err` for this request.
pub(crate) fn refusal(extensions: &Extensions, err: AuthError) -> Refused {
    match extensions.get::<ApiKeyState>() {
        Some(state) => Refused(state.prepared(err)),
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
    if let Some(state) = extensions.get::<ApiKeyState>() {
        state.0.verifier.note_forbidden(&caller.0);
    }
}
