//! Which hosts a step may reach. By default only public addresses: loopback, private,
//! link-local, shared (CGNAT), documentation, multicast and reserved ranges (and IPv6
//! tunnels that would reach them: NAT64, 6to4, Teredo) are refused, whatever name
//! resolves to them, so a workflow cannot be pointed at the machine's own services or the
//! cloud metadata endpoint (server-side request forgery). `allow_hosts:` names the hosts a
//! step may reach, private or not; with it, every other host is refused.
//!
//! A name is resolved once and the connection is pinned to the addresses that were checked,
//! so a DNS answer that changes between the check and the connection (DNS rebinding) cannot
//! slip through. Each redirect is checked again.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::Url;

use crate::FetchError;

/// The hosts a step may reach.
#[derive(Clone, Debug, Default)]
pub struct HostPolicy {
    /// `news.example.com`, `*.example.com` (any subdomain), `127.0.0.1`, `[::1]`. Empty:
    /// any public host.
    allow: Vec<String>,
}

impl HostPolicy {
    pub fn new(allow_hosts: &[String]) -> HostPolicy {
        HostPolicy {
            allow: allow_hosts
                .iter()
                .map(|h| {
                    h.trim()
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_ascii_lowercase()
                })
                .filter(|h| !h.is_empty())
                .collect(),
        }
    }

    /// Whether `host` is on the allow-list.
    fn listed(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        self.allow.iter().any(|a| match a.strip_prefix("*.") {
            Some(domain) => host
                .strip_suffix(domain)
                .is_some_and(|rest| rest.ends_with('.')),
            None => *a == host,
        })
    }

    /// The addresses `url` may be fetched from: its host resolved and checked.
    pub async fn resolve(&self, url: &Url) -> Result<Vec<SocketAddr>, FetchError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(FetchError::Scheme(url.to_string()));
        }
        let host = match url.host_str() {
            Some(h) => h.trim_start_matches('[').trim_end_matches(']').to_owned(),
            None => return Err(FetchError::NoHost(url.to_string())),
        };
        let listed = self.listed(&host);
        if !self.allow.is_empty() && !listed {
            return Err(FetchError::NotAllowed {
                url: url.to_string(),
                host,
                allowed: self.allow.join(", "),
            });
        }
        let port = url.port_or_known_default().unwrap_or(80);
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|source| FetchError::Resolve {
                    url: url.to_string(),
                    host: host.clone(),
                    source,
                })?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(FetchError::Resolve {
                url: url.to_string(),
                host,
                source: std::io::Error::other("no addresses"),
            });
        }
        if !listed {
            if let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
                return Err(FetchError::Private {
                    url: url.to_string(),
                    host,
                    addr: bad.ip(),
                });
            }
        }
        Ok(addrs)
    }
}

/// Whether `ip` is a public unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0 // "this network"
        || a == 10 // private
        || a == 127 // loopback
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 169 && b == 254) // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b)) // private
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // documentation (TEST-NET-1)
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 192 && b == 168) // private
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // documentation (TEST-NET-2)
        || (a == 203 && b == 0 && c == 113) // documentation (TEST-NET-3)
        || a >= 224) // multicast, reserved, broadcast
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let v4 = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return is_public_v4(v4(s[6], s[7]));
    }
    // 6to4 (2002::/16) carries one in bits 16..48: it reaches whatever that address is.
    if s[0] == 0x2002 {
        return is_public_v4(v4(s[1], s[2]));
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] & 0xff00) == 0xff00 // multicast
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x2001 && s[1] == 0) // Teredo: tunnels to an address it hides
        || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) // local-use NAT64 (64:ff9b:1::/48)
        || s[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible (deprecated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_ranges_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "::127.0.0.1",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "192.88.99.1",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::",
            "2001:0:4136:e378::1",
            "64:ff9b:1::a00:1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "2001:4860::8888",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn allow_lists_match_hosts_and_subdomains() {
        let p = HostPolicy::new(&["*.example.com".into(), "127.0.0.1".into(), "[::1]".into()]);
        assert!(p.listed("news.example.com"));
        assert!(p.listed("a.b.EXAMPLE.com"));
        assert!(!p.listed("example.com"));
        assert!(!p.listed("badexample.com"));
        assert!(p.listed("127.0.0.1"));
        assert!(p.listed("::1"));
        assert!(!p.listed("127.0.0.2"));
    }

    #[tokio::test]
    async fn loopback_is_refused_unless_listed() {
        let url: Url = "http://127.0.0.1:9/x".parse().unwrap();
        let err = HostPolicy::default().resolve(&url).await.unwrap_err();
        assert!(matches!(err, FetchError::Private { .. }), "{err}");
        assert!(
            err.to_string().starts_with("http://127.0.0.1:9/x: "),
            "{err}"
        );
        let ok = HostPolicy::new(&["127.0.0.1".into()]).resolve(&url).await;
        assert_eq!(ok.unwrap(), vec!["127.0.0.1:9".parse().unwrap()]);
        let named: Url = "http://localhost:9/".parse().unwrap();
        let err = HostPolicy::default().resolve(&named).await.unwrap_err();
        assert!(matches!(err, FetchError::Private { .. }), "{err}");
        let other = HostPolicy::new(&["news.example.com".into()]);
        let err = other.resolve(&url).await.unwrap_err();
        assert!(matches!(err, FetchError::NotAllowed { .. }), "{err}");
        let file: Url = "file:///etc/passwd".parse().unwrap();
        assert!(matches!(
            HostPolicy::default().resolve(&file).await,
            Err(FetchError::Scheme(_))
        ));
    }
}
