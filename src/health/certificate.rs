//! The peer certificate's expiry, for `tlsExpiryWarningDays`: the leaf's `notAfter`, read from its
//! DER with x509-parser (the handshake already verified the chain; this only reads a date). The
//! rule that turns the date into a warning is the domain's (`certificate_warning`).

use crate::domain::{certificate_warning, HealthCheck, HealthState, HealthVerdict};
use chrono::{DateTime, Utc};

/// The certificate's `notAfter`; `None` when the DER does not parse.
pub(super) fn not_after(der: &[u8]) -> Option<DateTime<Utc>> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    DateTime::from_timestamp(certificate.validity().not_after.timestamp(), 0)
}

/// A healthy verdict becomes a warning when the check asks about expiry and the leaf certificate
/// expires within its days. Anything else is left as it is (a failure or an earlier warning says
/// more than the certificate).
pub(super) fn with_expiry(
    verdict: HealthVerdict,
    check: Option<&HealthCheck>,
    leaf: Option<&[u8]>,
) -> HealthVerdict {
    let (Some(days), Some(leaf)) = (check.and_then(|c| c.tls_expiry_warning_days), leaf) else {
        return verdict;
    };
    if verdict.state != HealthState::Healthy {
        return verdict;
    }
    let Some(not_after) = not_after(leaf) else {
        return verdict;
    };
    match certificate_warning(not_after, Utc::now(), days) {
        Some(reason) => HealthVerdict {
            state: HealthState::Degraded,
            error_message: reason,
            ..verdict
        },
        None => verdict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_after_is_read_from_the_der() {
        let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        params.not_after = time::OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            not_after(cert.der()).map(|t| t.timestamp()),
            Some(1_900_000_000)
        );
        assert_eq!(not_after(b"not a certificate"), None);
    }
}
