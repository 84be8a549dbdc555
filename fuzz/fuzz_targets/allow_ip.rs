//! The address allowlist parser (`allow_ip` strings, as the CLI, config sections and the store
//! hold them): never panics; what it accepts prints back to itself, and its answers agree with
//! the networks it printed.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use apikey_core::AllowIp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // As stored (comma-separated) and as a list of arguments (one per line).
    let stored = AllowIp::from_stored(Some(text));
    let listed: Vec<&str> = text.lines().collect();
    let parsed = AllowIp::parse(&listed);
    for allow in [stored, parsed].into_iter().flatten() {
        let printed = allow.to_string();
        let again = AllowIp::from_stored(allow.to_stored().as_deref())
            .expect("what it prints parses again");
        assert_eq!(again, allow, "{printed:?}");
        assert_eq!(again.to_string(), printed);
        // Some addresses from the input's bytes: the list's answer equals any of its nets'.
        let mut b = [0u8; 16];
        for (i, x) in data.iter().take(16).enumerate() {
            b[i] = *x;
        }
        let v6 = IpAddr::V6(Ipv6Addr::from(b));
        let v4 = IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]));
        let mapped = IpAddr::V6(Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_ipv6_mapped());
        for ip in [v6, v4, mapped] {
            let any = allow.is_empty() || allow.nets().iter().any(|n| n.contains(ip));
            assert_eq!(allow.allows(ip), any);
        }
        assert_eq!(allow.allows(v4), allow.allows(mapped), "v4-mapped is v4");
    }
});
