//! What a request presents to the verifier, as an adapter reads it from its framework: the one
//! way into verification ([`Verifier::verify_request`](super::Verifier::verify_request)).

use std::net::IpAddr;

use crate::model::ForwardHeader;

/// A header the verifier reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header<'a> {
    /// The key header (`header`, `API-KEY` by default), by name.
    Key(&'a str),
    /// `Authorization` (read only with `accept_bearer`).
    Authorization,
    /// A proxy's forwarding header (read only when the peer is in `trusted_proxies`).
    Forwarding(ForwardHeader),
}

impl<'a> Header<'a> {
    /// The header's name.
    pub fn name(&self) -> &'a str {
        match *self {
            Header::Key(name) => name,
            Header::Authorization => "authorization",
            Header::Forwarding(h) => h.name(),
        }
    }
}

/// The facts of one request: its headers and its peer. Adapters implement it over their
/// framework's request (Rocket's `Request`, axum's headers and extensions); [`KeyRequest`] is
/// a request holding just one key, for tools and tests.
pub trait RequestFacts {
    /// The values of `header` (its name matched case-insensitively), in the order they came;
    /// `None` for a value that is not UTF-8 (such a key value is refused as invalid).
    fn header(&self, header: Header<'_>) -> impl Iterator<Item = Option<&str>>;

    /// The TCP peer's address (`None`: the framework cannot tell).
    fn peer(&self) -> Option<IpAddr>;

    /// The client's address when the application established it itself (axum's
    /// `ClientAddr`), taken as it is; `None` (the default): the peer's, or what a trusted
    /// proxy reports.
    fn client_override(&self) -> Option<IpAddr> {
        None
    }
}

/// A request that presents one key in the key header, from `client` (or from nowhere known):
/// what a tool checking a key (`apikey verify`) or a test hands to the verifier.
#[derive(Debug, Clone, Copy)]
pub struct KeyRequest<'a> {
    key: &'a str,
    client: Option<IpAddr>,
}

impl<'a> KeyRequest<'a> {
    /// A request with `key` as its key header's one value, from no known address (a key bound
    /// to networks is refused).
    pub fn new(key: &'a str) -> Self {
        KeyRequest { key, client: None }
    }

    /// The same request, from `client` (`None`: unknown).
    pub fn from(self, client: Option<IpAddr>) -> Self {
        KeyRequest { client, ..self }
    }
}

impl RequestFacts for KeyRequest<'_> {
    fn header(&self, header: Header<'_>) -> impl Iterator<Item = Option<&str>> {
        matches!(header, Header::Key(_))
            .then_some(Some(self.key))
            .into_iter()
    }

    fn peer(&self) -> Option<IpAddr> {
        self.client
    }
}
