//! The client's address, for keys bound to networks.

use std::net::IpAddr;

/// The address a request comes from, as the app establishes it: put it in the request's
/// extensions (a middleware in front of the [`ApiKeyLayer`](crate::ApiKeyLayer)) when the
/// service runs behind a proxy that reports the client's address in a header. Without it, the
/// connection's peer is used when the app is served with
/// `into_make_service_with_connect_info::<SocketAddr>()`; with neither, a key bound to networks
/// is refused (403), never let in.
///
/// Set it only from a header your proxy writes itself (overwriting what the client sent):
/// a client that can choose it can claim any address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);
