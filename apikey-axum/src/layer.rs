//! The layer: carries the verification state to every request, and adds to responses what
//! apikey adds to answers it did not make (`Sunset`, the key header in CORS preflights).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use apikey_core::http::{http_date, preflight_allow_headers, ratelimit_fields};
use axum::body::Body;
use axum::response::Response;
use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use crate::state::ApiKeyState;
use crate::verify::{Announced, InRequest, Slot};

const SUNSET_HEADER: HeaderName = HeaderName::from_static("sunset");
const POLICY_HEADER: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT_HEADER: HeaderName = HeaderName::from_static("ratelimit");

/// The apikey layer. Install it once, outermost: `router.layer(ApiKeyLayer::new(state))`.
/// It verifies nothing by itself: the [`Caller`](crate::Caller) extractor and
/// [`Auth`](crate::Auth) route layers do, at most once per request.
#[derive(Debug, Clone)]
pub struct ApiKeyLayer {
    state: ApiKeyState,
}

impl ApiKeyLayer {
    /// The layer for `state`.
    pub fn new(state: ApiKeyState) -> Self {
        ApiKeyLayer { state }
    }
}

impl<S> Layer<S> for ApiKeyLayer {
    type Service = ApiKeyService<S>;

    fn layer(&self, inner: S) -> ApiKeyService<S> {
        ApiKeyService {
            inner,
            state: self.state.clone(),
        }
    }
}

/// The service [`ApiKeyLayer`] wraps around a router or route.
#[derive(Debug, Clone)]
pub struct ApiKeyService<S> {
    inner: S,
    state: ApiKeyState,
}

impl<S, B> Service<Request<B>> for ApiKeyService<S>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ApiKeyFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // Only a preflight's answer needs the state after the call.
        let preflight = preflight(&req).map(|p| (p, self.state.clone()));
        let slot = Arc::new(Slot::new(self.state.clone()));
        req.extensions_mut().insert(InRequest::Shared(slot.clone()));
        // The service that was driven to readiness serves this request (tower's rule).
        ApiKeyFuture {
            inner: self.inner.call(req),
            after: Some(After::new(Some(slot), None, preflight)),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response of [`ApiKeyService`]: the inner service's, with `Sunset`, the `RateLimit`
    /// fields and a preflight's allowed headers added.
    pub struct ApiKeyFuture<F> {
        #[pin]
        inner: F,
        after: Option<After>,
    }
}

impl<F, E> Future for ApiKeyFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = ready!(this.inner.poll(cx))?;
        if let Some(after) = this.after.take() {
            after.apply(&mut res);
        }
        Poll::Ready(Ok(res))
    }
}

/// What apikey adds to a response once the route made it: what the request's key announces
/// (`Sunset`, the `RateLimit` fields; known already, or read from the slot the handler may have
/// verified through), and a preflight's allowed headers. The layer's future and a route carrying
/// the state both apply it. Two words: what is rare (an announcement, a preflight) is boxed, so
/// the future of the common request (a valid key with nothing to announce) stays small.
pub(crate) struct After {
    /// The slot shared with the handler, which may verify the key itself.
    shared: Option<Arc<Slot>>,
    rare: Option<Box<Rare>>,
}

struct Rare {
    /// What the key announces, when the route verified it.
    announced: Option<Announced>,
    preflight: Option<(Preflight, ApiKeyState)>,
}

impl After {
    pub(crate) fn new(
        shared: Option<Arc<Slot>>,
        announced: Option<Announced>,
        preflight: Option<(Preflight, ApiKeyState)>,
    ) -> Self {
        let rare = (announced.is_some() || preflight.is_some()).then(|| {
            Box::new(Rare {
                announced,
                preflight,
            })
        });
        After { shared, rare }
    }

    pub(crate) fn apply(self, res: &mut Response) {
        let (announced, preflight) = match self.rare {
            Some(rare) => (rare.announced, rare.preflight),
            None => (None, None),
        };
        if let Some(announced) = announced.or_else(|| self.shared.and_then(|s| s.announced())) {
            announce(announced, res.headers_mut());
        }
        if let Some((preflight, state)) = preflight {
            allow_key_header(&state, preflight, res);
        }
    }
}

/// Adds `Sunset` when the request's key ends soon, and its limits when it has some.
fn announce(announced: Announced, headers: &mut HeaderMap) {
    let text = |s: &str| HeaderValue::from_str(s).ok();
    if let Some(date) = announced.sunset.and_then(http_date) {
        if let Some(value) = text(&date) {
            headers.insert(SUNSET_HEADER, value);
        }
    }
    if let Some((policy, left)) = ratelimit_fields(&announced.limits) {
        if let Some(value) = text(&policy) {
            headers.insert(POLICY_HEADER, value);
        }
        if let Some(value) = left.as_deref().and_then(text) {
            headers.insert(RATELIMIT_HEADER, value);
        }
    }
}

/// A CORS preflight's request: the method and headers the browser asks for.
pub(crate) struct Preflight {
    method: HeaderValue,
    headers: Option<HeaderValue>,
}

pub(crate) fn preflight<B>(req: &Request<B>) -> Option<Preflight> {
    if req.method() != Method::OPTIONS {
        return None;
    }
    let method = req.headers().get(ACCESS_CONTROL_REQUEST_METHOD)?.clone();
    let headers = req.headers().get(ACCESS_CONTROL_REQUEST_HEADERS).cloned();
    Some(Preflight { method, headers })
}

/// CORS preflights never need a key (browsers send them without one): a preflight no route
/// answered gets `204`, and every preflight answer lists the key header in
/// `Access-Control-Allow-Headers`. Origins are left to a CORS layer, if any.
pub(crate) fn allow_key_header(state: &ApiKeyState, preflight: Preflight, res: &mut Response) {
    if matches!(
        res.status(),
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
    ) {
        let mut answer = Response::new(Body::empty());
        *answer.status_mut() = StatusCode::NO_CONTENT;
        answer
            .headers_mut()
            .insert(ACCESS_CONTROL_ALLOW_METHODS, preflight.method);
        *res = answer;
    }
    // What the route's own CORS answer allows, else what the browser asked for.
    let base = res
        .headers()
        .get(ACCESS_CONTROL_ALLOW_HEADERS)
        .or(preflight.headers.as_ref())
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let value = preflight_allow_headers(base.as_deref(), state.header(), state.accepts_bearer());
    if let Ok(value) = HeaderValue::from_str(&value) {
        res.headers_mut()
            .insert(ACCESS_CONTROL_ALLOW_HEADERS, value);
    }
}
