//! Which addresses the health monitor may probe: the server-side request forgery guard's rules.
//!
//! Anyone who can register can make the checker send a request, so a registered endpoint must not be
//! able to reach the cloud metadata service (169.254.169.254), Azure's wireserver (168.63.129.16),
//! the app's own managed-identity endpoint (`IDENTITY_ENDPOINT`) or, unless configured, the
//! checker's own loopback. The decision is made on the **resolved** address and the port that will
//! be connected to (`lookup` looks names up and the prober connects only to what it allowed), so a
//! host name that resolves, or later rebinds, to a refused address is refused too. Private ranges
//! are allowed by default: VNet services live there.
//!
//! Order of the rules: always refused (unspecified, multicast, broadcast, link-local, deprecated
//! IPv4-compatible IPv6, the wireserver, metadata addresses, the identity endpoint at its port);
//! then the configured deny list; then loopback unless allowed; then, when an allow list is
//! configured, anything outside it.

pub use super::identity_endpoint::IdentityEndpoint;
use super::identity_endpoint::IDENTITY;
use crate::configuration::ProbeGuardSettings;
use crate::domain::Endpoint;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Azure's wireserver / virtual public IP, reachable from every Azure VM.
const WIRESERVER: Ipv4Addr = Ipv4Addr::new(168, 63, 129, 16);
/// Other clouds' metadata services, in case the handler runs there (IPv4 ones are link-local).
const METADATA_V4: [Ipv4Addr; 1] = [Ipv4Addr::new(100, 100, 100, 200)];
const METADATA_V6: [Ipv6Addr; 1] = [Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused target {address}: {reason}")]
pub struct Refused {
    pub address: String,
    pub reason: &'static str,
}

#[derive(Debug, Clone, Default)]
pub struct ProbeGuard {
    pub allow_loopback: bool,
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
    /// The managed-identity endpoint, from `IDENTITY_ENDPOINT`.
    pub identity: Option<IdentityEndpoint>,
}

impl From<&ProbeGuardSettings> for ProbeGuard {
    fn from(settings: &ProbeGuardSettings) -> Self {
        ProbeGuard {
            allow_loopback: settings.allow_loopback,
            allow: settings.allow.clone(),
            deny: settings.deny.clone(),
            identity: settings
                .identity_endpoint
                .as_ref()
                .map(|(host, port)| IdentityEndpoint::new(host, *port)),
        }
    }
}

pub(super) fn bare(host: &str) -> &str {
    host.trim_start_matches('[').trim_end_matches(']')
}

impl ProbeGuard {
    /// Checks a host name before resolution: the identity endpoint's host is refused by name, at its
    /// port (at another port it is judged by its resolved addresses, like any name).
    pub fn check_host(&self, host: &str, port: u16) -> Result<(), Refused> {
        let host = bare(host).to_ascii_lowercase();
        if let Some(identity) = &self.identity {
            if identity.host == host && identity.port == port {
                return Err(Refused {
                    address: format!("{host}:{port}"),
                    reason: IDENTITY,
                });
            }
        }
        Ok(())
    }

    /// Checks what can be judged of an endpoint before any lookup: a host that is an IP literal, and
    /// the identity endpoint's host by name. Other names are judged after resolution (the prober's
    /// lookup), so `Ok` here is not yet permission to connect. Registration calls this to say no up
    /// front; the prober calls it before sending to a literal.
    pub fn check_endpoint(&self, endpoint: &Endpoint) -> Result<(), Refused> {
        let (host, port) = match endpoint {
            Endpoint::Http(url) => {
                let port = url.port_or_known_default().unwrap_or(80);
                match url.host() {
                    Some(url::Host::Ipv4(v4)) => {
                        return self.check(SocketAddr::new(IpAddr::V4(v4), port))
                    }
                    Some(url::Host::Ipv6(v6)) => {
                        return self.check(SocketAddr::new(IpAddr::V6(v6), port))
                    }
                    _ => (url.host_str().unwrap_or_default(), port),
                }
            }
            other => other.host_and_port(),
        };
        if let Ok(ip) = bare(host).parse::<IpAddr>() {
            return self.check(SocketAddr::new(ip, port));
        }
        self.check_host(host, port)
    }

    /// Checks one resolved (or literal) address and the port that would be connected to.
    pub fn check(&self, address: SocketAddr) -> Result<(), Refused> {
        let refuse = |reason| {
            Err(Refused {
                address: address.ip().to_string(),
                reason,
            })
        };
        if let Some(reason) = self.identity.as_ref().and_then(|i| i.refuses(address)) {
            return refuse(reason);
        }
        let ip = canonical(address.ip());
        if let Some(reason) = always_refused(ip) {
            return refuse(reason);
        }
        if self.deny.iter().any(|net| net.contains(&ip)) {
            return refuse("in a denied range (HEALTH_DENY_CIDRS)");
        }
        if ip.is_loopback() {
            return if self.allow_loopback {
                Ok(())
            } else {
                refuse("loopback (set HEALTH_ALLOW_LOOPBACK=true to allow)")
            };
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|net| net.contains(&ip)) {
            return refuse("outside the allowed ranges (HEALTH_ALLOW_CIDRS)");
        }
        Ok(())
    }
}

/// IPv4-mapped (`::ffff:a.b.c.d`) and NAT64 (`64:ff9b::a.b.c.d`) addresses are judged as the IPv4
/// address they carry, so a refused IPv4 address cannot be smuggled in through IPv6 spelling.
pub(super) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return IpAddr::V4(Ipv4Addr::new(a, b, c, d));
            }
            IpAddr::V6(v6)
        }
        v4 => v4,
    }
}

fn always_refused(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            if v4.is_unspecified() || v4.octets()[0] == 0 {
                Some("an unspecified address")
            } else if v4.is_broadcast() || v4.is_multicast() {
                Some("a multicast or broadcast address")
            } else if v4.is_link_local() {
                Some("link-local (cloud metadata lives here)")
            } else if v4 == WIRESERVER {
                Some("the Azure wireserver")
            } else if METADATA_V4.contains(&v4) {
                Some("a cloud metadata address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            if v6.is_unspecified() {
                Some("an unspecified address")
            } else if v6.is_multicast() {
                Some("a multicast address")
            } else if (s[0] & 0xffc0) == 0xfe80 {
                Some("link-local")
            } else if METADATA_V6.contains(&v6) {
                Some("a cloud metadata address")
            } else if s[..6] == [0; 6] && !v6.is_loopback() {
                // `::a.b.c.d` (RFC 4291 deprecated it): no service lives there, and what the
                // network does with it varies, so it is never a target, whatever IPv4 it spells.
                Some("a deprecated IPv4-compatible IPv6 address")
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 80)
    }

    /// The host the URL parser makes of a spelling, as the prober sees it.
    fn url_host(text: &str) -> IpAddr {
        match url::Url::parse(text).unwrap().host().unwrap() {
            url::Host::Ipv4(v4) => IpAddr::V4(v4),
            url::Host::Ipv6(v6) => IpAddr::V6(v6),
            url::Host::Domain(d) => panic!("{text} parsed as domain {d}"),
        }
    }

    #[test]
    fn table_of_refused_and_allowed_addresses() {
        let policy = ProbeGuard::default();
        let refused = [
            "169.254.169.254",
            "169.254.0.1",
            "168.63.129.16",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "::",
            "fe80::1",
            "ff02::1",
            "::ffff:169.254.169.254",
            "::ffff:127.0.0.1",
            "::ffff:168.63.129.16",
            "64:ff9b::a9fe:a9fe",
            "fd00:ec2::254",
            "100.100.100.200",
            "::127.0.0.1",
            "::a9fe:a9fe",
            "::10.0.0.1",
        ];
        for ip in refused {
            assert!(policy.check(at(ip)).is_err(), "{ip} must be refused");
        }
        for ip in [
            "10.0.0.4",
            "172.16.5.4",
            "192.168.1.10",
            "20.50.1.1",
            "fd12::1",
            "2001:db8::1",
        ] {
            assert_eq!(policy.check(at(ip)), Ok(()), "{ip} must be allowed");
        }
    }

    #[test]
    fn numeric_ipv4_spellings_are_normalised_before_the_check() {
        let policy = ProbeGuard::default();
        for spelling in [
            "http://2852039166/",          // decimal 169.254.169.254
            "http://0xa9fea9fe/",          // hex
            "http://0251.0376.0251.0376/", // octal
            "http://0xa9.0xfe.0xa9.0xfe/",
            "http://169.254.43518/", // a.b.c with a 16-bit tail
            "http://[::ffff:a9fe:a9fe]/",
            "http://2130706433/", // 127.0.0.1
        ] {
            let ip = url_host(spelling);
            assert!(
                policy.check(SocketAddr::new(ip, 80)).is_err(),
                "{spelling} → {ip} must be refused"
            );
        }
    }

    #[test]
    fn loopback_and_lists_are_configurable() {
        let policy = ProbeGuard {
            allow_loopback: true,
            allow: vec![
                "10.0.0.0/8".parse().unwrap(),
                "127.0.0.0/8".parse().unwrap(),
            ],
            deny: vec!["10.9.0.0/16".parse().unwrap()],
            identity: None,
        };
        assert_eq!(policy.check(at("127.0.0.1")), Ok(()));
        assert_eq!(policy.check(at("10.1.2.3")), Ok(()));
        assert!(policy.check(at("10.9.1.1")).is_err());
        assert!(policy.check(at("192.168.1.1")).is_err());
        assert!(
            policy.check(at("169.254.169.254")).is_err(),
            "always refused beats the allow list"
        );
    }

    #[test]
    fn the_identity_endpoint_is_refused_by_name_and_address() {
        let policy = ProbeGuard {
            allow_loopback: true,
            identity: Some(IdentityEndpoint::new("127.0.0.1", 41000)),
            ..ProbeGuard::default()
        };
        assert!(policy.check("127.0.0.1:41000".parse().unwrap()).is_err());
        assert_eq!(policy.check("127.0.0.1:8080".parse().unwrap()), Ok(()));
        // The TCP form of the same literal: refused at the identity port only.
        let tcp = |text: &str| Endpoint::parse("endpoint", text).unwrap();
        assert!(policy
            .check_endpoint(&tcp("tcp://127.0.0.1:41000"))
            .is_err());
        assert_eq!(policy.check_endpoint(&tcp("tcp://127.0.0.1:41001")), Ok(()));
        let named = ProbeGuard {
            identity: Some(IdentityEndpoint::new("msi.internal", 80)),
            ..ProbeGuard::default()
        };
        assert!(named.check_host("MSI.internal", 80).is_err());
        // By name only at its port; elsewhere the name is judged by what it resolves to.
        assert_eq!(named.check_host("msi.internal", 8080), Ok(()));
        let local = ProbeGuard {
            allow_loopback: true,
            identity: Some(IdentityEndpoint::new("localhost", 41000)),
            ..ProbeGuard::default()
        };
        assert!(local.check("127.0.0.1:41000".parse().unwrap()).is_err());
        assert!(local.check("[::1]:41000".parse().unwrap()).is_err());
        assert!(local
            .check("[::ffff:127.0.0.1]:41000".parse().unwrap())
            .is_err());
        assert_eq!(local.check("127.0.0.1:41001".parse().unwrap()), Ok(()));
    }

    #[test]
    fn endpoints_are_judged_by_their_literal_address_or_the_identity_host() {
        let endpoint = |text: &str| Endpoint::parse("endpoint", text).unwrap();
        let policy = ProbeGuard {
            identity: Some(IdentityEndpoint::new("msi.internal", 80)),
            ..ProbeGuard::default()
        };
        for refused in [
            "http://169.254.169.254/metadata",
            "http://2852039166/",
            "https://[::ffff:a9fe:a9fe]/",
            "http://127.0.0.1:8080/health",
            "tcp://127.0.0.1:6379",
            "tcp://[::1]:5432",
            "tcp://168.63.129.16:80",
            "http://MSI.internal/token",
            "tcp://msi.internal:80",
        ] {
            assert!(
                policy.check_endpoint(&endpoint(refused)).is_err(),
                "{refused} must be refused"
            );
        }
        // Names other than the identity host wait for resolution; allowed literals pass.
        for allowed in [
            "http://localhost:8080/",
            "https://svc.internal/ready",
            "tcp://redis.internal:6379",
            "http://10.0.0.4:8080/",
            "tcp://[fd12::1]:5432",
        ] {
            assert_eq!(
                policy.check_endpoint(&endpoint(allowed)),
                Ok(()),
                "{allowed} must pass before resolution"
            );
        }
        let refusal = policy
            .check_endpoint(&endpoint("tcp://[::1]:5432"))
            .unwrap_err();
        assert_eq!(refusal.address, "::1");
    }
}
