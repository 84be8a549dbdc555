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
use crate::refused::Refused;
use crate::service::{ready, Answer};
use crate::state::ApiKeyState;
use crate::verify::{keyless, note_forbidden, refusal, verified, verify_carried, InRequest};

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

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let mut inner = ready(&mut self.inner);
        let auth = self.auth.clone();
        // A route of an `ApiRouter` carries the state (unless a layer put it in the request).
        if let Some(state) = &self.auth.state {
            if req.extensions().get::<InRequest>().is_none() {
                let state = state.clone();
                return Box::pin(carried(auth, state, inner, req));
            }
        }
        Box::pin(async move {
            if auth.mode == RouteAuth::None {
                return inner.call(req).await;
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
                None => inner.call(req).await,
            }
        })
    }
}

/// A request on a route carrying `state`: verified here (a refusal allocates nothing), then on
/// to the route with its slot, and what the response announces added to it.
async fn carried<S, B>(
    auth: Auth,
    state: ApiKeyState,
    mut inner: S,
    mut req: Request<B>,
) -> Result<Response, S::Error>
where
    S: Service<Request<B>, Response = Response>,
{
    if let Some(preflight) = preflight(&req) {
        // A CORS preflight needs no key: the route's own answer, with the key header allowed.
        req.extensions_mut().insert(InRequest::new(state.clone()));
        let mut res = inner.call(req).await?;
        allow_key_header(&state, preflight, &mut res);
        return Ok(res);
    }
    let mut announced = None;
    let slot = match auth.mode {
        RouteAuth::None => InRequest::new(state),
        _ => match verify_carried(&state, req.headers(), req.extensions()).await {
            Ok(settled) if settled.caller.in_any(&auth.groups) => {
                announced = settled.announced;
                settled.slot(state)
            }
            Ok(settled) => {
                apikey_core::__event!(
                    info,
                    "API key {:?} refused: not in the route's groups {:?}",
                    settled.caller.key_name(),
                    auth.groups
                );
                state.verifier().note_forbidden(&settled.caller.0);
                return Ok(Refused(state.prepared(AuthError::Forbidden)).into_response());
            }
            Err(AuthError::Missing) if auth.mode == RouteAuth::Public => keyless(state),
            Err(e) => return Ok(Refused(state.prepared(e)).into_response()),
        },
    };
    // A route that verified nothing shares its slot with the handler, which may verify.
    let shared = matches!(slot, InRequest::Shared(_)).then(|| slot.clone());
    req.extensions_mut().insert(slot);
    let mut res = inner.call(req).await?;
    if let Some(announced) = announced.or_else(|| shared.and_then(|s| s.announced())) {
        announce(announced, res.headers_mut());
    }
    Ok(res)
}
