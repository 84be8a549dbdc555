//! Route layers: who may call a route, declared where the route is.

use std::sync::Arc;
use std::task::{Context, Poll};

use apikey_core::http::RouteAuth;
use apikey_core::AuthError;
use axum::response::{IntoResponse, Response};
use http::Request;
use tower_layer::Layer;
use tower_service::Service;

use std::future::Future;
use std::pin::Pin;
use std::task::ready;

use apikey_core::verify::Later;

use crate::layer::{preflight, After, Preflight};
use crate::refused::Refused;
use crate::service::{ready, Answer};
use crate::state::ApiKeyState;
use crate::verify::{
    authorize, keyless, refusal, verified, verify_carried_later, verify_carried_now, Announced,
    InRequest, Settled,
};

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
    scopes: Arc<[String]>,
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
            scopes: Arc::from([]),
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

    /// Only keys holding every one of `scopes` (a key's `orders:*` covers `orders:write`, its
    /// `*` every scope); a key without one gets 403 "missing scope".
    ///
    /// # Panics
    ///
    /// On a scope that is not one (`orders:`, `orders write`) or holds a wildcard (a route
    /// names the permission it needs): a mistake in the program, as axum's own route paths.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let scopes: Vec<String> = scopes.into_iter().map(Into::into).collect();
        for scope in &scopes {
            if let Err(why) = apikey_core::model::check_required_scope(scope) {
                panic!("Auth::scopes: {why}");
            }
        }
        self.scopes = scopes.into();
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

    /// The scopes a key must hold (all of them); empty: none.
    pub fn scope_names(&self) -> &[String] {
        &self.scopes
    }

    /// Whether the route asks more of a valid key than being valid (groups or scopes).
    pub(crate) fn restricts(&self) -> bool {
        !self.groups.is_empty() || !self.scopes.is_empty()
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
    type Future = AuthFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // A route of an `ApiRouter` carries the state (unless a layer put it in the request):
        // what is decided without waiting goes on without a boxed future.
        if let Some(state) = &self.auth.state {
            if req.extensions().get::<InRequest>().is_none() {
                return match pass(&self.auth, state, &req) {
                    Pass::Refused(res) => AuthFuture::ready(res),
                    Pass::On(on) => {
                        let after = on.into_request(&mut req);
                        AuthFuture::inner(self.inner.call(req), after)
                    }
                    Pass::Later(later) => {
                        let inner = ready(&mut self.inner);
                        let (auth, state) = (self.auth.clone(), state.clone());
                        AuthFuture::boxed(Box::pin(later_pass(auth, state, later, inner, req)))
                    }
                };
            }
        }
        let mut inner = ready(&mut self.inner);
        let auth = self.auth.clone();
        AuthFuture::boxed(Box::pin(async move {
            if auth.mode == RouteAuth::None {
                return inner.call(req).await;
            }
            let refused = match verified(req.headers(), req.extensions()).await {
                Ok(caller) => authorize(
                    req.extensions(),
                    &caller,
                    auth.group_names(),
                    auth.scope_names(),
                ),
                Err(AuthError::Missing) if auth.mode == RouteAuth::Public => None,
                Err(e) => Some(e),
            };
            match refused {
                Some(e) => Ok(refusal(req.extensions(), e).into_response()),
                None => inner.call(req).await,
            }
        }))
    }
}

pin_project_lite::pin_project! {
    /// The response of an [`AuthService`]: at once (a refusal), the route's own (its key
    /// decided without waiting), or after a wait (a store lookup, shared limits).
    pub struct AuthFuture<F, E> {
        #[pin]
        state: State<F, E>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, E> {
        // A refusal, decided at once.
        Ready { res: Option<Response> },
        // The route's response, and what to add to it.
        Inner { #[pin] inner: F, after: Option<After> },
        // Verification had to wait.
        Boxed { fut: Answer<E> },
    }
}

impl<F, E> AuthFuture<F, E> {
    fn ready(res: Response) -> Self {
        AuthFuture {
            state: State::Ready { res: Some(res) },
        }
    }

    fn inner(inner: F, after: After) -> Self {
        AuthFuture {
            state: State::Inner {
                inner,
                after: Some(after),
            },
        }
    }

    fn boxed(fut: Answer<E>) -> Self {
        AuthFuture {
            state: State::Boxed { fut },
        }
    }
}

impl<F, E> Future for AuthFuture<F, E>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Ready { res } => {
                Poll::Ready(Ok(res.take().expect("polled after completion")))
            }
            StateProj::Inner { inner, after } => {
                let mut res = ready!(inner.poll(cx))?;
                if let Some(after) = after.take() {
                    after.apply(&mut res);
                }
                Poll::Ready(Ok(res))
            }
            StateProj::Boxed { fut } => fut.as_mut().poll(cx),
        }
    }
}

/// What a route carrying the state decided of a request.
enum Pass {
    Refused(Response),
    On(On),
    Later(Later),
}

/// A request going on to its route: the slot to put in it, and what its response is to get.
struct On {
    slot: InRequest,
    announced: Option<Announced>,
    preflight: Option<(Preflight, ApiKeyState)>,
}

impl On {
    fn into_request<B>(self, req: &mut Request<B>) -> After {
        let shared = match &self.slot {
            InRequest::Shared(slot) => Some(slot.clone()),
            InRequest::Settled { .. } => None,
        };
        req.extensions_mut().insert(self.slot);
        After::new(shared, self.announced, self.preflight)
    }
}

/// The decision of a route carrying `state`, as far as it goes without waiting.
fn pass<B>(auth: &Auth, state: &ApiKeyState, req: &Request<B>) -> Pass {
    if let Some(preflight) = preflight(req) {
        // A CORS preflight needs no key: the route's own answer, with the key header allowed.
        return Pass::On(On {
            slot: InRequest::new(state.clone()),
            announced: None,
            preflight: Some((preflight, state.clone())),
        });
    }
    if auth.mode == RouteAuth::None {
        return Pass::On(On {
            slot: InRequest::new(state.clone()),
            announced: None,
            preflight: None,
        });
    }
    match verify_carried_now(state, req.headers(), req.extensions()) {
        Ok(outcome) => match decided(auth, state, outcome) {
            Ok(on) => Pass::On(on),
            Err(e) => Pass::Refused(Refused(state.prepared(e)).into_response()),
        },
        Err(later) => Pass::Later(later),
    }
}

/// A verification's outcome on a route of `auth`: on to the route, or refused (a key outside
/// the route's groups counted as such).
fn decided(
    auth: &Auth,
    state: &ApiKeyState,
    outcome: Result<Settled, AuthError>,
) -> Result<On, AuthError> {
    match outcome {
        Ok(settled) => {
            if auth.restricts() {
                state.verifier().authorize(
                    &settled.caller.0,
                    auth.group_names(),
                    auth.scope_names(),
                )?;
            }
            Ok(On {
                announced: settled.announced,
                slot: settled.into_slot(state.clone()),
                preflight: None,
            })
        }
        Err(AuthError::Missing) if auth.mode == RouteAuth::Public => Ok(On {
            slot: keyless(state.clone()),
            announced: None,
            preflight: None,
        }),
        Err(e) => Err(e),
    }
}

/// A request whose verification had to wait: finished, then on to the route or refused.
async fn later_pass<S, B>(
    auth: Auth,
    state: ApiKeyState,
    later: Later,
    mut inner: S,
    mut req: Request<B>,
) -> Result<Response, S::Error>
where
    S: Service<Request<B>, Response = Response>,
{
    let outcome = verify_carried_later(&state, later, req.headers(), req.extensions()).await;
    match decided(&auth, &state, outcome) {
        Err(e) => Ok(Refused(state.prepared(e)).into_response()),
        Ok(on) => {
            let after = on.into_request(&mut req);
            let mut res = inner.call(req).await?;
            after.apply(&mut res);
            Ok(res)
        }
    }
}
#[cfg(test)]
mod tests {
    /// What a handler's future holds of apikey: the extractor's, which must not carry the
    /// verification's whole future (boxed when it has to wait), nor the route's future a
    /// rare announcement or preflight.
    #[test]
    fn futures_stay_small() {
        let (headers, extensions) = (http::HeaderMap::new(), http::Extensions::new());
        let extractor = crate::verify::verified(&headers, &extensions);
        assert!(
            std::mem::size_of_val(&extractor) <= 64,
            "{}",
            std::mem::size_of_val(&extractor)
        );
        assert!(std::mem::size_of::<crate::layer::After>() <= 16);
    }
}
