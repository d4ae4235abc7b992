//! Request-size limits answered in JSON before any handler runs: the URL and the header block.
//!
//! The Functions host refuses URLs over 4,096 bytes itself (its documented HTTP trigger limit), so
//! a longer one can only reach us in standalone mode or from something impersonating the host; we
//! refuse it the same way, as a JSON 414, which also bounds what a query can cost a cache. Header
//! blocks are capped at 32 KiB and 100 headers, the host's (Kestrel's) defaults. hyper has limits
//! of its own further out (a 64 KiB URI, a ~400 KiB header buffer, and the header count `serve`
//! sets above ours) that it answers itself with an empty body before any router sees the
//! request; nothing lets that answer be JSON, so ours are set inside them.

use crate::error::ApiError;
use crate::serve::MAX_HEADER_COUNT;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Path and query, in bytes (the host's URL limit).
pub const MAX_URI_BYTES: usize = 4096;
/// Every header's name and value, plus 4 bytes of framing each.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// The middleware: a JSON 414 or 431, or the request goes on.
pub async fn refuse_oversized(request: Request, next: Next) -> Response {
    match check(&request) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

fn check(request: &Request) -> Result<(), ApiError> {
    let uri = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    if uri > MAX_URI_BYTES {
        return Err(ApiError::UriTooLong {
            limit: MAX_URI_BYTES,
        });
    }
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if headers > MAX_HEADER_BYTES || request.headers().len() > MAX_HEADER_COUNT {
        return Err(ApiError::HeadersTooLarge {
            limit: MAX_HEADER_BYTES,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn request(uri: &str, header: usize) -> Request {
        Request::builder()
            .uri(uri)
            .header("x-pad", "p".repeat(header))
            .body(Body::empty())
            .unwrap()
    }

    #[test]
    fn limits_are_inclusive_and_named() {
        let at_limit = format!("/api/x?{}", "q".repeat(MAX_URI_BYTES - 7));
        assert!(check(&request(&at_limit, 10)).is_ok());
        let over = format!("{at_limit}q");
        assert!(matches!(
            check(&request(&over, 10)),
            Err(ApiError::UriTooLong {
                limit: MAX_URI_BYTES
            })
        ));
        let headers_at_limit = MAX_HEADER_BYTES - "x-pad".len() - 4;
        assert!(check(&request("/", headers_at_limit)).is_ok());
        assert!(matches!(
            check(&request("/", headers_at_limit + 1)),
            Err(ApiError::HeadersTooLarge { .. })
        ));
        let mut many = request("/", 1);
        for i in 0..MAX_HEADER_COUNT {
            many.headers_mut().insert(
                format!("x-{i}").parse::<axum::http::HeaderName>().unwrap(),
                "v".parse().unwrap(),
            );
        }
        assert!(matches!(
            check(&many),
            Err(ApiError::HeadersTooLarge { .. })
        ));
    }
}
