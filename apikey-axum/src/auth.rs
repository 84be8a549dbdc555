//! Route layers: who may call a route, declared where the route is.

use std::sync::Arc;
use std::task::{Context, Poll};

use apikey_core::http::RouteAuth;
use apikey_core::AuthError;
use axum::response::{IntoResponse, Response};
use http::Request;
use tower_layer::Layer;
use tower_service::Service;

use crate::layer::{allow_key_header, announce, preflight};
use crate::service::{ready, Answer};
use crate::state::ApiKeyState;
use crate::verify::{note_forbidden, refusal, verified, InRequest};

/// Who may call a route, as a route layer:
/// `get(handler).route_layer(Auth::api_key().groups(["billing"]))`.
///
/// - [`Auth::api_key`]: a valid key is required (as `auth = "api_key"` in apikey-rocket);
/// - [`Auth::public`]: no key, or a valid one (`auth = "public"`);
/// - [`Auth::none`]: declared open (`auth = "none"`): nothing is checked;
/// - [`Auth::groups`]: and the key must be in one of these groups (403 otherwise).
///
/// The key is verified once per request: the handler's [`Caller`](crate::Caller) or
/// `Option<Caller>` then reads the same outcome.
#[derive(Debug, Clone)]
pub struct Auth {
    mode: RouteAuth,
    groups: Arc<[String]>,
    /// Set by [`ApiRouter`](crate::ApiRouter): the route carries the state itself (what the
    /// [`ApiKeyLayer`](crate::ApiKeyLayer) does for a whole router), so a request passes one
    /// apikey service, not two.
    state: Option<ApiKeyState>,
}

impl Auth {
    /// A valid key is required.
    pub fn api_key() -> Self {
        Self::of(RouteAuth::ApiKey)
    }

    /// A key is optional; a bad one is refused.
    pub fn public() -> Self {
        Self::of(RouteAuth::Public)
    }

    /// Declared open: no key is looked at.
    pub fn none() -> Self {
        Self::of(RouteAuth::None)
    }

    fn of(mode: RouteAuth) -> Self {
        Auth {
            mode,
            groups: Arc::from([]),
            state: None,
        }
    }

    /// Only keys in one of `groups` (any of them).
    pub fn groups<I, G>(mut self, groups: I) -> Self
    where
        I: IntoIterator<Item = G>,
        G: Into<String>,
    {
        self.groups = groups.into_iter().map(Into::into).collect();
        self
    }

    /// How the route is guarded.
    pub fn mode(&self) -> RouteAuth {
        self.mode
    }

    /// The groups a key must be in (any of them); empty: every valid key.
    pub fn group_names(&self) -> &[String] {
        &self.groups
    }

    /// This rule, the route carrying `state` itself (no `ApiKeyLayer` needed around it).
    pub(crate) fn carrying(mut self, state: &ApiKeyState) -> Self {
        self.state = Some(state.clone());
        self
    }
}

impl<S> Layer<S> for Auth {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService {
            inner,
            auth: self.clone(),
        }
    }
}

/// The service an [`Auth`] route layer wraps around a route.
#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    auth: Auth,
}

impl<S, B> Service<Request<B>> for AuthService<S>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Answer<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let mut inner = ready(&mut self.inner);
        let auth = self.auth.clone();
        // A route of an `ApiRouter` puts the state in the request (unless a layer did).
        let carried = match &self.auth.state {
            Some(state) if req.extensions().get::<InRequest>().is_none() => {
                let slot = InRequest::new(state.clone());
                req.extensions_mut().insert(slot.clone());
                Some((slot, preflight(&req)))
            }
            _ => None,
        };
        if let Some((slot, Some(preflight))) = carried {
            // A CORS preflight needs no key: the route's own answer, or 204.
            return Box::pin(async move {
                let mut res = inner.call(req).await?;
                allow_key_header(&slot.state, preflight, &mut res);
                Ok(res)
            });
        }
        Box::pin(async move {
            if auth.mode == RouteAuth::None {
                let mut res = inner.call(req).await?;
                announce_carried(carried, &mut res);
                return Ok(res);
            }
            let refused = match verified(req.headers(), req.extensions()).await {
                Ok(caller) if caller.in_any(&auth.groups) => None,
                Ok(caller) => {
                    note_forbidden(req.extensions(), &caller, &auth.groups);
                    Some(AuthError::Forbidden)
                }
                Err(AuthError::Missing) if auth.mode == RouteAuth::Public => None,
                Err(e) => Some(e),
            };
            match refused {
                Some(e) => Ok(refusal(req.extensions(), e).into_response()),
                None => {
                    let mut res = inner.call(req).await?;
                    announce_carried(carried, &mut res);
                    Ok(res)
                }
            }
        })
    }
}

/// Adds to a response what its request's slot says to announce, when the route carried it.
fn announce_carried<P>(carried: Option<(InRequest, P)>, res: &mut Response) {
    if let Some(announced) = carried.and_then(|(slot, _)| slot.announced()) {
        announce(announced, res.headers_mut());
    }
}
