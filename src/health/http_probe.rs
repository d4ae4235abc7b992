//! One HTTP(S) check's request and how its answer is judged: the status (with `Retry-After`) and,
//! when the registration asks for `expectBody`, the first 64 KiB of the body, read only for a
//! status that passed and never past that window; over TLS, the peer certificate's expiry
//! (`tlsExpiryWarningDays`). The verdict rule is the domain's
//! (`domain::judge_http`); this file only gathers its inputs from the wire.

use super::certificate::with_expiry;
use crate::domain::{body_contains, judge_http, HealthCheck, HealthVerdict, EXPECT_BODY_WINDOW};
use std::time::Instant;

/// Judges an answer already received. The caller's timeout bounds the body read too.
pub(super) async fn judge_response(
    mut response: reqwest::Response,
    check: Option<&HealthCheck>,
    started: Instant,
) -> HealthVerdict {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .contains_key(reqwest::header::RETRY_AFTER);
    let expected = check.and_then(|c| c.expected_status.as_ref());
    let passed = expected.map_or(status < 400, |e| e.contains(status));
    let body_matched = match check.and_then(|c| c.expect_body.as_deref()) {
        Some(needle) if passed => Some(read_for(&mut response, needle).await),
        _ => None,
    };
    let leaf = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .map(<[u8]>::to_vec);
    // Dropping the response closes whatever of the body is unread.
    let verdict = judge_http(
        status,
        retry_after,
        expected,
        body_matched,
        started.elapsed(),
    );
    with_expiry(verdict, check, leaf.as_deref())
}

/// Reads the body until `needle` is found, the window is full or the body ends (a read error
/// ends it too: what arrived is all there is to judge).
async fn read_for(response: &mut reqwest::Response, needle: &str) -> bool {
    let mut seen: Vec<u8> = Vec::new();
    while seen.len() < EXPECT_BODY_WINDOW {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = EXPECT_BODY_WINDOW - seen.len();
                seen.extend_from_slice(&chunk[..chunk.len().min(room)]);
                // Only the tail can hold a match that was not there before.
                let from = seen
                    .len()
                    .saturating_sub(chunk.len().min(room) + needle.len());
                if body_contains(&seen[from..], needle) {
                    return true;
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    body_contains(&seen, needle)
}
