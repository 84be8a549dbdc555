//! The client's address of a request: the TCP peer's, unless the peer is a proxy the service
//! trusts (`trusted_proxies`), whose forwarding header (`client_ip_header`) then says who the
//! client is. What nginx's `set_real_ip_from` and Kong's `trusted_ips` do.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

use super::allow_ip::canonical;
use super::AllowIp;

/// The header a trusted proxy reports the client's address in (`client_ip_header`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (the default).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    Forwarded,
    /// `X-Real-IP: client`.
    XRealIp,
}

impl ForwardHeader {
    /// The header's name, as HTTP libraries look it up (lower case).
    pub fn name(self) -> &'static str {
        match self {
            ForwardHeader::XForwardedFor => "x-forwarded-for",
            ForwardHeader::Forwarded => "forwarded",
            ForwardHeader::XRealIp => "x-real-ip",
        }
    }
}

impl FromStr for ForwardHeader {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(ForwardHeader::XForwardedFor),
            "forwarded" => Ok(ForwardHeader::Forwarded),
            "x-real-ip" => Ok(ForwardHeader::XRealIp),
            _ => Err("expected X-Forwarded-For, Forwarded or X-Real-IP".into()),
        }
    }
}

impl fmt::Display for ForwardHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ForwardHeader::XForwardedFor => "X-Forwarded-For",
            ForwardHeader::Forwarded => "Forwarded",
            ForwardHeader::XRealIp => "X-Real-IP",
        })
    }
}

impl<'de> Deserialize<'de> for ForwardHeader {
    /// One of the three names, in any case. The error never repeats the value.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// How the client's address of a request is established: the TCP peer's, unless the peer is
/// inside `trusted_proxies`; then the right-most address of the forwarding header that is not
/// itself a trusted proxy (each proxy appends the address it saw, so what a client writes
/// itself stays on the left, never read). A forwarding header from any other peer changes
/// nothing. An entry that is not an address (`unknown`, an obfuscated `Forwarded` node,
/// garbage) where the client should be makes the address unknown: keys bound to networks are
/// then refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientIp {
    trusted: AllowIp,
    header: ForwardHeader,
}

/// One hop of a forwarding header.
enum Hop {
    Addr(IpAddr),
    Unknown,
}

impl ClientIp {
    /// The rule of `trusted_proxies` (empty: no proxy is trusted) and `client_ip_header`.
    pub fn new(trusted: AllowIp, header: ForwardHeader) -> Self {
        ClientIp { trusted, header }
    }

    /// The header a trusted proxy's report is read from.
    pub fn header(&self) -> ForwardHeader {
        self.header
    }

    /// Whether any proxy is trusted (else the forwarding header is never read).
    pub fn trusts_proxies(&self) -> bool {
        !self.trusted.is_empty()
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        !self.trusted.is_empty() && self.trusted.allows(ip)
    }

    /// The client's address of a request from `peer` (the TCP peer; `None`: unknown), whose
    /// forwarding header (see [`header`](Self::header)) has `values`, in the order they came.
    /// The values are read only when the peer is a trusted proxy.
    pub fn resolve<'a, I>(&self, peer: Option<IpAddr>, values: I) -> Option<IpAddr>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let peer = canonical(peer?);
        if !self.trusted(peer) {
            return Some(peer);
        }
        let mut hops: Vec<Hop> = Vec::new();
        for value in values {
            match self.header {
                ForwardHeader::Forwarded => hops.extend(value.split(',').map(forwarded_for)),
                _ => hops.extend(value.split(',').map(plain_hop)),
            }
        }
        let mut leftmost = None;
        for hop in hops.iter().rev() {
            match hop {
                Hop::Addr(ip) if self.trusted(*ip) => leftmost = Some(*ip),
                Hop::Addr(ip) => return Some(*ip),
                Hop::Unknown => return None,
            }
        }
        // No header (a request the proxy made itself), or proxies all the way: the left-most.
        Some(leftmost.unwrap_or(peer))
    }

    /// What failed logins from `ip` are counted under: the address itself for IPv4, its /64
    /// for IPv6 (one host usually holds a whole /64, and would walk around a per-address
    /// count).
    pub fn counted_as(ip: IpAddr) -> IpAddr {
        match canonical(ip) {
            IpAddr::V6(v6) => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(bits))
            }
            v4 => v4,
        }
    }
}

/// An address as `X-Forwarded-For` and `X-Real-IP` write it: `1.2.3.4`, `1.2.3.4:5678`,
/// `2001:db8::1`, `[2001:db8::1]` or `[2001:db8::1]:5678`, perhaps quoted.
fn plain_hop(text: &str) -> Hop {
    parse_node(text.trim().trim_matches('"')).map_or(Hop::Unknown, |ip| Hop::Addr(canonical(ip)))
}

fn parse_node(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let port_ok = after.is_empty()
            || after
                .strip_prefix(':')
                .is_some_and(|p| p.parse::<u16>().is_ok());
        return port_ok
            .then(|| inside.parse::<Ipv6Addr>().ok().map(IpAddr::V6))
            .flatten();
    }
    let (host, port) = text.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// The `for=` node of one `Forwarded` element (RFC 7239): `for=192.0.2.1`,
/// `for="[2001:db8::1]:4711"`; `unknown`, an obfuscated node (`_hidden`) or an element without
/// `for` is an unknown hop.
fn forwarded_for(element: &str) -> Hop {
    let node = element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| value.trim().trim_matches('"'))
    });
    match node {
        Some(node) => parse_node(node).map_or(Hop::Unknown, |ip| Hop::Addr(canonical(ip))),
        None => Hop::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn rule(trusted: &[&str], header: ForwardHeader) -> ClientIp {
        ClientIp::new(AllowIp::parse(trusted).unwrap(), header)
    }

    #[test]
    fn untrusted_peers_are_the_client_whatever_they_send() {
        let none = ClientIp::default();
        let spoof = ["10.1.2.3"];
        assert_eq!(
            none.resolve(Some(ip("127.0.0.1")), spoof),
            Some(ip("127.0.0.1"))
        );
        let some = rule(&["10.0.0.0/8"], ForwardHeader::XRealIp);
        assert_eq!(
            some.resolve(Some(ip("127.0.0.1")), spoof),
            Some(ip("127.0.0.1"))
        );
        assert_eq!(some.resolve(None, spoof), None);
    }

    #[test]
    fn the_rightmost_untrusted_hop_of_a_trusted_peer() {
        let r = rule(&["127.0.0.0/8", "10.0.0.0/8"], ForwardHeader::XForwardedFor);
        let peer = Some(ip("127.0.0.1"));
        // The client's own claim stays on the left; the proxies appended the rest.
        assert_eq!(
            r.resolve(peer, ["6.6.6.6, 203.0.113.7, 10.0.0.2"]),
            Some(ip("203.0.113.7"))
        );
        // Several header lines are one list, in order.
        assert_eq!(
            r.resolve(peer, ["6.6.6.6", "203.0.113.7", "10.0.0.2"]),
            Some(ip("203.0.113.7"))
        );
        assert_eq!(
            r.resolve(peer, ["10.0.0.9, 10.0.0.2"]),
            Some(ip("10.0.0.9"))
        );
        assert_eq!(r.resolve(peer, Vec::<&str>::new()), peer);
        assert_eq!(r.resolve(peer, ["garbage, 10.0.0.2"]), None);
        assert_eq!(
            r.resolve(peer, ["garbage, 203.0.113.7"]),
            Some(ip("203.0.113.7"))
        );
        assert_eq!(
            r.resolve(peer, ["[2001:db8::7]:443, 203.0.113.7:1234"]),
            Some(ip("203.0.113.7"))
        );
        assert_eq!(
            r.resolve(peer, ["[2001:db8::7]:443"]),
            Some(ip("2001:db8::7"))
        );
        // A v4-mapped peer is the v4 address.
        assert_eq!(
            r.resolve(Some(ip("::ffff:127.0.0.1")), ["198.51.100.1"]),
            Some(ip("198.51.100.1"))
        );
    }

    #[test]
    fn forwarded_for_nodes() {
        let r = rule(&["127.0.0.1/32"], ForwardHeader::Forwarded);
        let peer = Some(ip("127.0.0.1"));
        assert_eq!(
            r.resolve(
                peer,
                [r#"for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https"#]
            ),
            Some(ip("2001:db8:cafe::17"))
        );
        assert_eq!(
            r.resolve(peer, ["For=192.0.2.60;by=203.0.113.43"]),
            Some(ip("192.0.2.60"))
        );
        assert_eq!(r.resolve(peer, ["for=unknown"]), None);
        assert_eq!(r.resolve(peer, ["for=_hidden"]), None);
        assert_eq!(r.resolve(peer, ["proto=https"]), None);
    }

    #[test]
    fn logins_are_counted_per_v6_64() {
        assert_eq!(ClientIp::counted_as(ip("192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(
            ClientIp::counted_as(ip("2001:db8:1:2:aaaa::1")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            ClientIp::counted_as(ip("2001:db8:1:2:ffff::9")),
            ClientIp::counted_as(ip("2001:db8:1:2::1"))
        );
        assert_eq!(
            ClientIp::counted_as(ip("::ffff:192.0.2.1")),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn header_names() {
        assert_eq!("x-real-ip".parse(), Ok(ForwardHeader::XRealIp));
        assert_eq!(" Forwarded ".parse(), Ok(ForwardHeader::Forwarded));
        assert!("X-Client-IP".parse::<ForwardHeader>().is_err());
    }
}
