//! Who the client is: the socket's peer, or — only when that peer is a
//! configured trusted proxy — the address the proxy forwarded.
//!
//! `X-Forwarded-For` is read from the right: each trusted proxy appended
//! the address it saw, so the first entry from the right that is not a
//! trusted proxy is the client. Entries further left were written by the
//! client itself and prove nothing. `X-Real-IP` is used when there is no
//! `X-Forwarded-For`. An unparsable header means the peer is the client.

use axum::http::HeaderMap;
use ipnet::IpNet;
use std::net::IpAddr;

/// A set of address ranges (the trusted proxies, the allow-list).
#[derive(Debug, Clone, Default)]
pub struct Ranges(Vec<IpNet>);

impl Ranges {
    pub fn new(nets: &[IpNet]) -> Ranges {
        Ranges(nets.to_vec())
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// IPv4-mapped IPv6 (`::ffff:1.2.3.4`, what a dual-stack socket reports)
/// as the IPv4 address, so rules and bans see one form.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The client's address for a request that came from `peer`.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &Ranges) -> IpAddr {
    let peer = canonical(peer);
    if trusted.is_empty() || !trusted.contains(peer) {
        return peer;
    }
    if let Some(xff) = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        let mut client = peer;
        for hop in xff.rsplit(',') {
            match parse_hop(hop) {
                Some(ip) => {
                    client = ip;
                    if !trusted.contains(ip) {
                        return ip;
                    }
                }
                None => return client,
            }
        }
        return client;
    }
    headers
        .get("x-real-ip")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_hop)
        .unwrap_or(peer)
}

/// One entry: an address, possibly with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(sa) = hop.parse::<std::net::SocketAddr>() {
        return Some(canonical(sa.ip()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().expect("header"));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn headers_count_only_from_trusted_proxies() {
        let trusted = Ranges::new(&["10.0.0.0/8".parse().expect("net")]);
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(
            client_ip(ip("198.51.100.1"), &h, &trusted),
            ip("198.51.100.1")
        );
        assert_eq!(client_ip(ip("10.1.2.3"), &h, &trusted), ip("203.0.113.9"));
        assert_eq!(
            client_ip(ip("10.1.2.3"), &h, &Ranges::default()),
            ip("10.1.2.3")
        );
    }

    #[test]
    fn forwarded_for_is_read_from_the_right() {
        let trusted = Ranges::new(&["10.0.0.0/8".parse().expect("net")]);
        // The client forged the first entry; 198.51.100.7 is who reached
        // our outer proxy 10.0.0.2.
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 198.51.100.7, 10.0.0.2")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("198.51.100.7"));
        let h = headers(&[("x-forwarded-for", "garbage, 10.0.0.2")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("10.0.0.2"));
        let h = headers(&[("x-forwarded-for", "[2001:db8::1]:443")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("2001:db8::1"));
    }

    #[test]
    fn real_ip_and_mapped_addresses() {
        let trusted = Ranges::new(&["127.0.0.0/8".parse().expect("net")]);
        let h = headers(&[("x-real-ip", "192.0.2.4")]);
        assert_eq!(
            client_ip(ip("::ffff:127.0.0.1"), &h, &trusted),
            ip("192.0.2.4")
        );
        assert_eq!(canonical(ip("::ffff:192.0.2.4")), ip("192.0.2.4"));
        assert!(trusted.contains(ip("::ffff:127.0.0.9")));
    }
}
