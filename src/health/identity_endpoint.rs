//! The app's managed-identity endpoint (`IDENTITY_ENDPOINT`) as the SSRF guard sees it: one
//! address and port a registered target must never reach, because it hands out the app's tokens.
//!
//! Its host may be an IP literal, `localhost` (every loopback address), or a name; a name is judged
//! by every address it has resolved to since start-up (`lookup::refresh_identity` looks it up
//! again, about once a second), and while nothing is known of it, everything at its port is
//! refused. Only its port is refused: the same address at another port is an ordinary target.

use super::guard::{bare, canonical};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The most addresses remembered for a named identity endpoint (it names one local service).
const MAX_IDENTITY_ADDRESSES: usize = 64;
pub(super) const IDENTITY: &str = "the managed-identity endpoint";
/// How often a named identity endpoint is looked up again (see `Known::looked_up`).
const IDENTITY_REFRESH: Duration = Duration::from_secs(1);

/// The managed-identity endpoint: refused at its port on every address its host stands for.
#[derive(Debug, Clone)]
pub struct IdentityEndpoint {
    /// Lower case, IPv6 literals without brackets.
    pub(super) host: String,
    pub(super) port: u16,
    /// What `host` stands for: the address itself for an IP literal, every loopback address for
    /// `localhost`, else whatever it resolved to so far (`lookup::refresh_identity` adds to it).
    kind: IdentityHost,
}

#[derive(Debug, Clone)]
enum IdentityHost {
    Address(IpAddr),
    Localhost,
    /// Every address the name has resolved to since start-up; a rebinding adds, never removes.
    Name(Arc<Mutex<Known>>),
}

#[derive(Debug, Default)]
struct Known {
    addresses: Vec<IpAddr>,
    /// When the last lookup was started: a sweep of thousands of probes looks the name up about
    /// once per `IDENTITY_REFRESH`, not once per probe.
    looked_up: Option<Instant>,
}

impl IdentityEndpoint {
    pub fn new(host: &str, port: u16) -> Self {
        let host = bare(host).to_ascii_lowercase();
        let kind = match host.parse::<IpAddr>() {
            Ok(ip) => IdentityHost::Address(canonical(ip)),
            Err(_) if host == "localhost" || host.ends_with(".localhost") => {
                IdentityHost::Localhost
            }
            Err(_) => IdentityHost::Name(Arc::default()),
        };
        IdentityEndpoint { host, port, kind }
    }

    /// The host name to look up, when it is a name and no lookup of it started within
    /// `IDENTITY_REFRESH` (the caller then looks it up and hands the answer to `learn`).
    pub fn name_to_resolve(&self) -> Option<(&str, u16)> {
        let IdentityHost::Name(known) = &self.kind else {
            return None;
        };
        let mut known = known.lock().unwrap_or_else(|p| p.into_inner());
        if known
            .looked_up
            .is_some_and(|at| at.elapsed() < IDENTITY_REFRESH)
        {
            return None;
        }
        known.looked_up = Some(Instant::now());
        Some((self.host.as_str(), self.port))
    }

    /// Remembers addresses the identity host resolved to.
    pub fn learn(&self, addresses: impl IntoIterator<Item = IpAddr>) {
        if let IdentityHost::Name(known) = &self.kind {
            let mut known = known.lock().unwrap_or_else(|p| p.into_inner());
            for ip in addresses.into_iter().map(canonical) {
                if !known.addresses.contains(&ip) && known.addresses.len() < MAX_IDENTITY_ADDRESSES
                {
                    known.addresses.push(ip);
                }
            }
        }
    }

    /// Why `address` is the identity endpoint, if it is. Only its port is refused: the same address
    /// at another port is an ordinary target.
    pub(super) fn refuses(&self, address: SocketAddr) -> Option<&'static str> {
        if address.port() != self.port {
            return None;
        }
        let ip = canonical(address.ip());
        match &self.kind {
            IdentityHost::Address(identity) => (*identity == ip).then_some(IDENTITY),
            // `localhost` names every loopback address: `http://localhost:41000` as the identity
            // endpoint must also stop `http://127.0.0.1:41000` and `http://[::1]:41000`.
            IdentityHost::Localhost => ip.is_loopback().then_some(IDENTITY),
            IdentityHost::Name(known) => {
                let known = known.lock().unwrap_or_else(|p| p.into_inner());
                if known.addresses.is_empty() {
                    // Not resolved (yet): any address might be it, so nothing at its port is sent.
                    Some(
                        "at the managed-identity endpoint's port, whose host could not be resolved",
                    )
                } else {
                    known.addresses.contains(&ip).then_some(IDENTITY)
                }
            }
        }
    }
}
