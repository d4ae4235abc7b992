//! Name lookups for the SSRF guard: a probe's host is resolved here with the port it will be
//! contacted on, judged address by address, and the prober then connects only to what was allowed
//! (an HTTP probe pins its client to those addresses), so a name cannot reach an address:port the
//! guard refuses, nor rebind between the check and the connect.
//!
//! The HTTP client's own resolver hook is not used for judging: reqwest hands it the name without
//! the port, which is what let a name reach the identity endpoint's address at its port. Its hook is
//! `Unpinned`, which refuses every lookup, so a request whose name was not pinned is never sent.

use super::guard::{ProbeGuard, Refused};
use std::net::SocketAddr;

pub type LookupError = Box<dyn std::error::Error + Send + Sync>;

/// Looks up a named identity endpoint again, so the guard knows every address it stands for
/// (nothing to do for an IP literal or `localhost`, or when another check looked it up within the
/// last second). A failed lookup keeps what was known; with nothing known, the guard refuses every
/// target at that port.
pub async fn refresh_identity(policy: &ProbeGuard) {
    let Some(identity) = &policy.identity else {
        return;
    };
    let Some((host, port)) = identity.name_to_resolve() else {
        return;
    };
    match tokio::net::lookup_host((host, port)).await {
        Ok(found) => identity.learn(found.map(|address| address.ip())),
        Err(e) => tracing::warn!(error = %e, "cannot resolve the managed-identity endpoint's host"),
    }
}

/// Resolves `host` for a connection to `port` and returns the allowed addresses, or the first
/// refusal when none is allowed.
pub async fn resolve_allowed(
    policy: &ProbeGuard,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, LookupError> {
    policy.check_host(host, port)?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let (resolved, ()) = tokio::join!(tokio::net::lookup_host((bare, port)), async {
        refresh_identity(policy).await
    });
    let mut refusal = None;
    let allowed: Vec<SocketAddr> = resolved?
        .filter(|address| match policy.check(*address) {
            Ok(()) => true,
            Err(refused) => {
                refusal.get_or_insert(refused);
                false
            }
        })
        .collect();
    match (allowed.is_empty(), refusal) {
        (false, _) => Ok(allowed),
        (true, Some(refused)) => Err(Box::new(refused)),
        (true, None) => Err(format!("{host} did not resolve to any address").into()),
    }
}

/// The refusal inside a lookup error, if that is why it failed.
pub fn refusal_of(error: &LookupError) -> Option<&Refused> {
    error.downcast_ref::<Refused>()
}

/// reqwest's resolver hook on the probe client: every probe pins its host's allowed addresses
/// before sending, so a lookup reaching this hook is a name that was not judged. Refuse it.
pub struct Unpinned;

impl reqwest::dns::Resolve for Unpinned {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            Err(format!("{host} was not resolved through the SSRF guard; not contacted").into())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::guard::IdentityEndpoint;

    #[tokio::test]
    async fn a_host_name_resolving_to_a_refused_address_is_refused() {
        let policy = ProbeGuard::default();
        let error = resolve_allowed(&policy, "localhost", 80).await.unwrap_err();
        assert!(error.to_string().contains("loopback"), "{error}");
        assert!(refusal_of(&error).is_some());
        let allowed = ProbeGuard {
            allow_loopback: true,
            ..ProbeGuard::default()
        };
        assert!(!resolve_allowed(&allowed, "localhost", 80)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn names_are_judged_with_the_port_they_will_be_contacted_on() {
        let policy = ProbeGuard {
            allow_loopback: true,
            identity: Some(IdentityEndpoint::new("127.0.0.1", 41000)),
            ..ProbeGuard::default()
        };
        let error = resolve_allowed(&policy, "localhost", 41000)
            .await
            .unwrap_err();
        assert_eq!(
            refusal_of(&error).unwrap().reason,
            "the managed-identity endpoint"
        );
        let allowed = resolve_allowed(&policy, "localhost", 41001).await.unwrap();
        assert!(allowed.iter().all(|a| a.port() == 41001), "{allowed:?}");
    }

    #[tokio::test]
    async fn a_named_identity_endpoint_is_refused_at_what_it_resolves_to() {
        // `localhost` stands in for a name here: it resolves without a network.
        let named = IdentityEndpoint::new("msi.internal", 41000);
        let policy = ProbeGuard {
            allow_loopback: true,
            identity: Some(named.clone()),
            ..ProbeGuard::default()
        };
        // Unresolved: nothing at its port may be contacted, other ports are fine.
        assert!(policy.check("127.0.0.1:41000".parse().unwrap()).is_err());
        assert_eq!(policy.check("127.0.0.1:41001".parse().unwrap()), Ok(()));
        assert!(named.name_to_resolve().is_some());
        assert!(
            named.name_to_resolve().is_none(),
            "looked up once a second at most"
        );
        named.learn(["127.0.0.1".parse().unwrap()]);
        assert!(policy.check("127.0.0.1:41000".parse().unwrap()).is_err());
        assert!(policy
            .check("[::ffff:127.0.0.1]:41000".parse().unwrap())
            .is_err());
        assert_eq!(policy.check("127.0.0.2:41000".parse().unwrap()), Ok(()));
        assert_eq!(policy.check("127.0.0.1:41001".parse().unwrap()), Ok(()));
    }
}
