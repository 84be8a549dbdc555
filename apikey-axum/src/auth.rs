//! Route layers: who may call a route, declared where the route is.

use std::sync::Arc;
use std::task::{Context, Poll};

use apikey_core::http::RouteAuth;
use apikey_core::AuthError;
use axum::response::{IntoResponse, Response};
use http::Request;
use tower_layer::Layer;
use tower_service::Service;

use crate::service::{ready, Answer};
use crate::verify::{note_forbidden, refusal, verified};

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
