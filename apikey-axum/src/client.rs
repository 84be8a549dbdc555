//! The client's address, for keys bound to networks.

use std::net::IpAddr;

/// The address a request comes from, when the app establishes it itself: put it in the
/// request's extensions (a middleware in front of the [`ApiKeyLayer`](crate::ApiKeyLayer)) and
/// apikey takes it as it is. Without it, the connection's peer is used when the app is served
/// with `into_make_service_with_connect_info::<SocketAddr>()`, and behind a proxy the
/// `trusted_proxies` and `client_ip_header` settings say whose forwarding header to believe
/// (the usual way: nothing to write); with neither, a key bound to networks is refused (403),
/// never let in.
///
/// Set it only from what a client cannot choose: a forwarding header read from any peer lets
/// a client claim any address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);
