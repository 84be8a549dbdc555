//! A Rocket request as the verifier reads it: its headers (Rocket drops values that are not
//! UTF-8 before any guard runs) and its TCP peer.

use std::borrow::Cow;
use std::net::IpAddr;

use apikey_core::verify::{Header, RequestFacts};
use rocket::Request;

use crate::state::ApiKeyState;

/// The facts of a Rocket request.
pub(crate) struct Facts<'a, 'r>(pub(crate) &'a Request<'r>);

impl RequestFacts for Facts<'_, '_> {
    fn header(&self, header: Header<'_>) -> impl Iterator<Item = Option<&str>> {
        // A walk over the request's few headers, names compared without case (`UncasedStr`),
        // costs less than `HeaderMap::get`, which hashes the name case-folded with SipHash.
        // The values come in the same order (a name's values are kept together, as sent).
        let name = header.name();
        self.0
            .headers()
            .iter()
            .filter(move |h| h.name() == name)
            // `iter` lends each value from the map (a borrowed `Cow`); an owned one cannot
            // come from it, and would be refused as unreadable rather than let through.
            .map(|h| match h.value {
                Cow::Borrowed(value) => Some(value),
                Cow::Owned(_) => None,
            })
    }

    fn peer(&self) -> Option<IpAddr> {
        self.0.remote().map(|a| a.ip())
    }
}

impl ApiKeyState {
    /// The client's address of `req`: the TCP peer's, unless the peer is inside
    /// `trusted_proxies`, then what its `client_ip_header` reports (the right-most address that
    /// is not a trusted proxy). Rocket's own `ip_header` is not trusted: a client can set it.
    /// Allowlists and the admin page's login limits read the address from here.
    pub fn client_ip(&self, req: &Request<'_>) -> Option<IpAddr> {
        self.verifier().client_of(&Facts(req))
    }
}

/// The client's address of `req` as apikey establishes it (`trusted_proxies`), or its peer's
/// when the fairing is not attached: what the admin page's login limits and the leak-report
/// endpoint count refusals under.
pub(crate) fn client_ip(req: &Request<'_>) -> Option<IpAddr> {
    match req.rocket().state::<ApiKeyState>() {
        Some(keys) => keys.client_ip(req),
        None => Facts(req).peer(),
    }
}
