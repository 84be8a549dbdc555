//! The client address of a request from forwarding headers (`X-Forwarded-For`, `Forwarded`,
//! `X-Real-IP`): never panics; an untrusted peer is always the client whatever it sends; for a
//! trusted peer, what a client writes on the left never changes an answer that is not a
//! trusted proxy, and a trusted proxy appending itself on the right changes nothing.
#![no_main]

use std::net::IpAddr;

use apikey_core::model::{ClientIp, ForwardHeader};
use apikey_core::AllowIp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    fn plain(ip: &str) -> String {
        ip.to_owned()
    }
    fn rfc7239(ip: &str) -> String {
        format!("for={ip}")
    }
    let (header, hop): (ForwardHeader, fn(&str) -> String) = match first % 3 {
        0 => (ForwardHeader::XForwardedFor, plain),
        1 => (ForwardHeader::Forwarded, rfc7239),
        _ => (ForwardHeader::XRealIp, plain),
    };
    let trusted = AllowIp::parse(&["127.0.0.0/8", "10.0.0.0/8", "2001:db8::/32"]).unwrap();
    let rule = ClientIp::new(trusted.clone(), header);
    let peers: [IpAddr; 3] = [
        "127.0.0.1".parse().unwrap(),
        "203.0.113.9".parse().unwrap(),
        "::ffff:10.1.1.1".parse().unwrap(),
    ];
    // Up to four header lines, split on a newline.
    let values: Vec<&str> = text.split('\n').take(4).collect();
    for peer in peers {
        let got = rule.resolve(Some(peer), values.iter().copied());
        assert_eq!(rule.resolve(None, values.iter().copied()), None, "no peer, no address");
        if !trusted.allows(peer) {
            assert_eq!(got, Some(peer), "an untrusted peer is the client");
            continue;
        }
        // A client prepending its own claim changes nothing once an untrusted hop answered.
        if let Some(ip) = got.filter(|ip| !trusted.allows(*ip)) {
            let mut claimed: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
            claimed[0] = format!("{}, {}", hop("198.51.100.66"), claimed[0]);
            let again = rule.resolve(Some(peer), claimed.iter().map(String::as_str));
            assert_eq!(again, Some(ip), "the left of {text:?} decided");
        }
        // A trusted proxy appending itself on the right changes nothing.
        if !values.is_empty() {
            let mut appended: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
            let last = appended.len() - 1;
            appended[last] = format!("{}, {}", appended[last], hop("10.0.0.7"));
            let again = rule.resolve(Some(peer), appended.iter().map(String::as_str));
            assert_eq!(again, got, "{text:?}");
        }
    }
    // Counting logins never panics; IPv4 stays itself.
    if let Ok(ip) = text.trim().parse::<IpAddr>() {
        let counted = ClientIp::counted_as(ip);
        if let IpAddr::V4(_) = ip {
            assert_eq!(counted, ip);
        }
    }
});
