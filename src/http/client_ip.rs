//! Which IP a request comes from. Behind a reverse proxy every peer is the proxy, so
//! `X-Forwarded-For` is read, but only from configured trusted peers, and from the right: each
//! proxy appends the address it received the request from, so the right-most entry that is not
//! itself a trusted proxy is the first address no trusted party vouches for: the client. Entries
//! left of it were written by the client and would let it pick its own rate-limit bucket.

use std::net::{IpAddr, SocketAddr};

/// The client address of a request that arrived from `peer`.
///
/// Every `X-Forwarded-For` line counts, in order, as one list. An entry that does not parse ends
/// the walk at the last address a trusted hop vouched for, so garbage cannot name a new bucket.
pub fn client_ip(peer: IpAddr, headers: &http::HeaderMap, trusted_proxies: &[IpAddr]) -> IpAddr {
    let trusted = |ip: IpAddr| trusted_proxies.contains(&ip.to_canonical());
    let peer = peer.to_canonical();
    if !trusted(peer) {
        return peer;
    }
    let mut client = peer;
    let lines: Vec<&str> = headers.get_all("x-forwarded-for").iter().filter_map(|value| value.to_str().ok()).collect();
    for entry in lines.iter().rev().flat_map(|line| line.rsplit(',')) {
        let Some(ip) = parse_entry(entry) else { return client };
        client = ip;
        if !trusted(ip) {
            return ip;
        }
    }
    client
}

/// One list entry: an address, or an address with a port as some proxies write it.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let ip = entry.parse::<IpAddr>().or_else(|_| entry.parse::<SocketAddr>().map(|a| a.ip())).ok()?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(peer: &str, xff: &[&str], expected: &str) {
        let mut headers = http::HeaderMap::new();
        for line in xff {
            headers.append("x-forwarded-for", line.parse().unwrap());
        }
        let trusted: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()];
        assert_eq!(client_ip(peer.parse().unwrap(), &headers, &trusted), expected.parse::<IpAddr>().unwrap());
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_peers() {
        check("127.0.0.1", &[], "127.0.0.1");
        check("198.51.100.2", &["203.0.113.7"], "198.51.100.2");
        check("::ffff:198.51.100.2", &["203.0.113.7"], "198.51.100.2");
        check("::ffff:127.0.0.1", &["203.0.113.7"], "203.0.113.7");
    }

    #[test]
    fn the_right_most_untrusted_entry_is_the_client() {
        // The client wrote the left part; the proxy appended the address it saw.
        check("127.0.0.1", &["203.0.113.7, 198.51.100.9"], "198.51.100.9");
        check("127.0.0.1", &["203.0.113.7", "198.51.100.9"], "198.51.100.9");
        // Trusted hops are skipped.
        check("127.0.0.1", &["203.0.113.7, 198.51.100.9, 10.0.0.2"], "198.51.100.9");
        check("127.0.0.1", &["10.0.0.2, 127.0.0.1"], "10.0.0.2");
        check("127.0.0.1", &[" 2001:db8::1 "], "2001:db8::1");
        check("127.0.0.1", &["[2001:db8::1]:4711, 198.51.100.9:80"], "198.51.100.9");
    }

    #[test]
    fn garbage_ends_the_walk_at_the_last_vouched_address() {
        check("127.0.0.1", &["not-an-ip"], "127.0.0.1");
        check("127.0.0.1", &["203.0.113.7, not-an-ip, 10.0.0.2"], "10.0.0.2");
        check("127.0.0.1", &["not-an-ip, 198.51.100.9"], "198.51.100.9");
        check("127.0.0.1", &[""], "127.0.0.1");
    }
}
