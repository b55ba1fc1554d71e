//! Which IP a request comes from. Behind a reverse proxy every peer is the proxy, so the first
//! `X-Forwarded-For` entry is believed, but only from configured trusted peers: otherwise any
//! client could pick its own rate-limit bucket.

use std::net::IpAddr;

pub fn client_ip(peer: IpAddr, headers: &http::HeaderMap, trusted_proxies: &[IpAddr]) -> IpAddr {
    if !trusted_proxies.contains(&peer) {
        return peer;
    }
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|first| first.trim().parse().ok())
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(peer: &str, xff: Option<&str>, expected: &str) {
        let mut headers = http::HeaderMap::new();
        if let Some(xff) = xff {
            headers.insert("x-forwarded-for", xff.parse().unwrap());
        }
        let trusted: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap()];
        assert_eq!(client_ip(peer.parse().unwrap(), &headers, &trusted), expected.parse::<IpAddr>().unwrap());
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_peers() {
        check("127.0.0.1", Some("203.0.113.7, 10.0.0.1"), "203.0.113.7");
        check("127.0.0.1", None, "127.0.0.1");
        check("127.0.0.1", Some("not-an-ip"), "127.0.0.1");
        check("198.51.100.2", Some("203.0.113.7"), "198.51.100.2");
        check("127.0.0.1", Some(" 2001:db8::1 "), "2001:db8::1");
    }
}
