//! What the layer's and the route layer's services share: their boxed future, and tower's rule
//! for the inner service.

use std::future::Future;
use std::pin::Pin;

use axum::response::Response;

/// What both services' futures resolve to.
pub(crate) type Answer<E> = Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>;

/// The inner service that was driven to readiness, to serve this request; a clone takes its
/// place for the next one (tower's rule: `call` may only follow a ready `poll_ready`).
pub(crate) fn ready<S: Clone>(slot: &mut S) -> S {
    let clone = slot.clone();
    std::mem::replace(slot, clone)
}
