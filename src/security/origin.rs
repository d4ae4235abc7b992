//! Browsers: a web page on another site must not be able to act through a visitor's browser.
//!
//! A browser sends `Origin` on every cross-site request, including the "simple" ones it sends
//! without a preflight (a `text/plain` POST), and a page cannot forge it. So a request whose
//! `Origin` is not in `REGISTRY_ALLOWED_ORIGINS` is refused with a 403 before anything runs,
//! preflights included; the allowed origins get CORS answers from tower-http's `CorsLayer`.
//! Requests without `Origin` (servers, curl, the Functions host) are not browsers' and pass.

use crate::error::ApiError;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method};
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};

#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    /// Serialized origins (`https://app.example.com`), as browsers send them.
    allowed: Vec<String>,
}

impl OriginPolicy {
    pub fn new(allowed: Vec<String>) -> Self {
        OriginPolicy { allowed }
    }

    /// Refuses a request from a browser page whose origin is not allowed.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Ok(());
        };
        if self.allows(origin) {
            return Ok(());
        }
        Err(ApiError::Forbidden {
            field: Some("Origin"),
            message: "cross-origin requests from this origin are not allowed".to_owned(),
        })
    }

    fn allows(&self, origin: &HeaderValue) -> bool {
        let Ok(text) = origin.to_str() else {
            return false;
        };
        // Compare serialized forms, so `HTTPS://App.Example.com:443` is the configured origin.
        let Some(serialized) = url::Url::parse(text)
            .ok()
            .map(|url| url.origin())
            .filter(url::Origin::is_tuple)
            .map(|origin| origin.ascii_serialization())
        else {
            return false;
        };
        self.allowed.contains(&serialized)
    }

    /// CORS answers for the allowed origins: preflights, and the headers on actual responses.
    /// `None` when no origin is allowed (every browser request is refused before it).
    pub fn cors_layer(&self) -> Option<CorsLayer> {
        if self.allowed.is_empty() {
            return None;
        }
        let policy = self.clone();
        Some(
            CorsLayer::new()
                .allow_origin(AllowOrigin::predicate(move |origin, _| {
                    policy.allows(origin)
                }))
                .allow_methods([Method::GET, Method::POST, Method::DELETE])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    header::IF_NONE_MATCH,
                    HeaderName::from_static("x-functions-key"),
                ])
                .expose_headers([header::ETAG, header::RETRY_AFTER, header::WWW_AUTHENTICATE])
                .max_age(Duration::from_secs(600)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_origin(origin: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ORIGIN, HeaderValue::from_static(origin));
        headers
    }

    #[test]
    fn only_listed_origins_pass_and_requests_without_origin_are_not_browsers() {
        let policy = OriginPolicy::new(vec!["https://app.example.com".into()]);
        assert!(policy.check(&HeaderMap::new()).is_ok());
        assert!(policy
            .check(&with_origin("https://app.example.com"))
            .is_ok());
        assert!(policy
            .check(&with_origin("HTTPS://APP.example.com:443"))
            .is_ok());
        for refused in [
            "https://evil.example.com",
            "http://app.example.com",
            "https://app.example.com:8443",
            "null",
            "",
        ] {
            assert!(policy.check(&with_origin(refused)).is_err(), "{refused}");
        }
        assert!(OriginPolicy::default()
            .check(&with_origin("https://app.example.com"))
            .is_err());
        assert!(OriginPolicy::default().cors_layer().is_none());
        assert!(policy.cors_layer().is_some());
    }
}
