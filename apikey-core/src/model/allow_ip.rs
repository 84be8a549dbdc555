//! Network allowlists: `10.0.0.0/8`, `2001:db8::/32`, or one address. A key with a list is
//! accepted only from a client address inside one of its networks.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One network: an address and a prefix length (`10.0.0.0/8`; a bare address is the network
/// of that address alone). Bits past the prefix are cleared, so `10.1.2.3/8` reads as
/// `10.0.0.0/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// What a network looks like, for messages.
    pub const EXPECTED: &'static str =
        "must be an IPv4 or IPv6 network, e.g. 10.0.0.0/8, 192.0.2.7 or 2001:db8::/32";

    /// Whether `ip` is inside this network. An IPv4 address written as IPv6
    /// (`::ffff:10.1.2.3`, as dual-stack sockets report it) is taken as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u128::from(u32::from(ip)), self.prefix, 32) == u128::from(u32::from(net))
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(u128::from(ip), self.prefix, 128) == u128::from(net)
            }
            _ => false,
        }
    }
}

/// `ip` with an IPv4-mapped IPv6 address turned into the IPv4 address it carries.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The first `prefix` of `width` bits of `bits`.
fn masked(bits: u128, prefix: u8, width: u32) -> u128 {
    let host = width - u32::from(prefix);
    if host >= 128 {
        0
    } else {
        bits >> host << host
    }
}

impl FromStr for IpNet {
    type Err = String;

    /// `10.0.0.0/8`, `192.0.2.7` (a single address), `2001:db8::/32`, `::1`.
    ///
    /// ```
    /// use apikey_core::IpNet;
    /// let net: IpNet = "10.0.0.0/8".parse().unwrap();
    /// assert!(net.contains("10.200.1.2".parse().unwrap()));
    /// assert!(!net.contains("11.0.0.1".parse().unwrap()));
    /// assert_eq!("10.9.8.7/8".parse::<IpNet>().unwrap().to_string(), "10.0.0.0/8");
    /// assert!("10.0.0.0/33".parse::<IpNet>().is_err());
    /// ```
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a network; write e.g. 10.0.0.0/8 or 2001:db8::/32");
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text.trim(), None),
        };
        let addr = canonical(IpAddr::from_str(addr).map_err(|_| bad())?);
        let width: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= width)
                .ok_or_else(bad)?,
            Some(_) => return Err(bad()),
        };
        let addr = match addr {
            IpAddr::V4(v4) => {
                let bits = masked(u128::from(u32::from(v4)), prefix, 32);
                IpAddr::V4(u32::try_from(bits).unwrap_or(0).into())
            }
            IpAddr::V6(v6) => IpAddr::V6(masked(u128::from(v6), prefix, 128).into()),
        };
        Ok(IpNet { addr, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for IpNet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpNet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The networks a key is accepted from; empty: from anywhere. Kept sorted and without
/// duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AllowIp(Vec<IpNet>);

impl AllowIp {
    /// The empty list: from anywhere.
    pub const ANYWHERE: AllowIp = AllowIp(Vec::new());

    /// The list of these networks, sorted, duplicates dropped.
    pub fn new(nets: impl IntoIterator<Item = IpNet>) -> Self {
        let mut nets: Vec<IpNet> = nets.into_iter().collect();
        nets.sort();
        nets.dedup();
        AllowIp(nets)
    }

    /// Parses each network (see [`IpNet`]).
    pub fn parse<S: AsRef<str>>(texts: &[S]) -> Result<Self, String> {
        let nets = texts
            .iter()
            .map(|t| t.as_ref().parse())
            .collect::<Result<Vec<IpNet>, String>>()?;
        Ok(Self::new(nets))
    }

    /// Whether the list is empty (the key is accepted from anywhere).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The networks.
    pub fn nets(&self) -> &[IpNet] {
        &self.0
    }

    /// Whether a client at `ip` may use the key: always with an empty list.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.0.is_empty() || self.0.iter().any(|n| n.contains(ip))
    }

    /// As stored: the networks separated by commas; `None` when empty.
    pub fn to_stored(&self) -> Option<String> {
        (!self.is_empty()).then(|| self.to_string())
    }

    /// From its stored form (see [`to_stored`](Self::to_stored)).
    pub fn from_stored(stored: Option<&str>) -> Result<Self, String> {
        match stored {
            None => Ok(Self::default()),
            Some(s) if s.trim().is_empty() => Ok(Self::default()),
            Some(s) => Self::parse(&s.split(',').collect::<Vec<_>>()),
        }
    }
}

impl fmt::Display for AllowIp {
    /// The networks separated by commas (empty when there are none).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, n) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{n}")?;
        }
        Ok(())
    }
}

impl Serialize for AllowIp {
    /// A list of network strings.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for AllowIp {
    /// A list of network strings, or one string of networks separated by commas.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            List(Vec<String>),
            Text(String),
        }
        let texts = match Written::deserialize(d)? {
            Written::List(list) => list,
            Written::Text(text) => text
                .split(',')
                .filter(|t| !t.trim().is_empty())
                .map(str::to_owned)
                .collect(),
        };
        Self::parse(&texts).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_contain_their_addresses_only() {
        let v4: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(v4.contains(ip("10.0.0.0")) && v4.contains(ip("10.255.255.255")));
        assert!(!v4.contains(ip("11.0.0.0")) && !v4.contains(ip("9.255.255.255")));
        assert!(
            v4.contains(ip("::ffff:10.1.2.3")),
            "IPv4-mapped IPv6 is IPv4"
        );
        assert!(!v4.contains(ip("2001:db8::1")));
        let v6: IpNet = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")) && !v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let one: IpNet = "192.0.2.7".parse().unwrap();
        assert_eq!(one.to_string(), "192.0.2.7/32");
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")) && !all.contains(ip("::1")));
        let all6: IpNet = "::/0".parse().unwrap();
        assert!(all6.contains(ip("::1")) && all6.contains(ip("2001:db8::1")));
        assert_eq!("::1".parse::<IpNet>().unwrap().to_string(), "::1/128");
        assert_eq!(
            "::ffff:10.0.0.0/8".parse::<IpNet>().unwrap().to_string(),
            "10.0.0.0/8"
        );
    }

    #[test]
    fn bad_networks_are_refused() {
        for bad in [
            "",
            "/8",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "10.0.0.0/+8",
            "10.0.0.0/8/8",
            "example.com",
            "10.0.0.0/-1",
            "10.0.0.0 /8",
        ] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn lists_are_sorted_stored_and_read_back() {
        let list = AllowIp::parse(&["2001:db8::/32", "10.0.0.0/8", "10.1.0.0/8"]).unwrap();
        assert_eq!(list.to_string(), "10.0.0.0/8,2001:db8::/32");
        assert_eq!(
            AllowIp::from_stored(list.to_stored().as_deref()).unwrap(),
            list
        );
        assert_eq!(AllowIp::from_stored(None).unwrap(), AllowIp::default());
        assert!(AllowIp::default().allows(ip("203.0.113.1")));
        assert!(list.allows(ip("10.2.3.4")) && !list.allows(ip("192.0.2.1")));
        assert_eq!(
            serde_json::to_string(&list).unwrap(),
            r#"["10.0.0.0/8","2001:db8::/32"]"#
        );
    }
}
