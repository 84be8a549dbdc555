//! A Rocket request as the verifier reads it: its headers (Rocket drops values that are not
//! UTF-8 before any guard runs) and its TCP peer.

use std::net::IpAddr;

use apikey_core::verify::{Header, RequestFacts};
use rocket::Request;

/// The facts of a Rocket request.
pub(crate) struct Facts<'a, 'r>(pub(crate) &'a Request<'r>);

impl RequestFacts for Facts<'_, '_> {
    fn header(&self, header: Header<'_>) -> impl Iterator<Item = Option<&str>> {
        self.0.headers().get(header.name()).map(Some)
    }

    fn peer(&self) -> Option<IpAddr> {
        self.0.remote().map(|a| a.ip())
    }
}
