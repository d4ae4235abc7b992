//! The operators' page, `GET /api/Dashboard` (function `Dashboard`): one HTML document with its
//! CSS and JS embedded in the binary, so it works with no internet and no CDN.
//!
//! Why one document with inline `<style>` and `<script>` rather than three routes: under the
//! Functions host every route is a function, and a page split over three would need three function
//! folders. The Content-Security-Policy allows exactly those two blocks by their SHA-256 hashes
//! (computed here at first use, so an edit to the assets cannot leave a stale policy behind) and
//! nothing else: no other script, style, frame, form target or origin to connect to.
//!
//! The page itself carries no data, so it is served without credentials: a browser navigation
//! cannot send `Authorization`, and the key must never travel in the URL. Everything shown comes
//! from discovery and `GET /api/Sweep`, called by the script with the key the operator entered
//! (kept in `sessionStorage`, sent as `Authorization: Bearer`), under the usual read and admin rules;
//! what one key was shown leaves the page with it (a key change, "Forget key", a 401 or 403).

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

const HTML: &str = include_str!("dashboard/index.html");
const CSS: &str = include_str!("dashboard/dashboard.css");
// One script, in this order: the graph's model and drawing and the timeline define what the page
// script (last) uses.
const JS: &str = concat!(
    include_str!("dashboard/graph_model.js"),
    include_str!("dashboard/graph_view.js"),
    include_str!("dashboard/timeline.js"),
    include_str!("dashboard/dashboard.js")
);

struct DashboardPage {
    html: String,
    policy: HeaderValue,
}

fn csp_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

static PAGE: LazyLock<DashboardPage> = LazyLock::new(|| {
    let html = HTML.replacen("/*CSS*/", CSS, 1).replacen("/*JS*/", JS, 1);
    let policy = format!(
        "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src 'self'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        csp_hash(JS),
        csp_hash(CSS)
    );
    DashboardPage {
        html,
        policy: HeaderValue::from_str(&policy).expect("a header-safe policy"),
    }
});

#[utoipa::path(
    get,
    path = "/api/Dashboard",
    tag = "operations",
    operation_id = "dashboard",
    summary = "The operators' page: services, health and the last sweep, in a browser",
    description = "An HTML page (its CSS and script inline, allowed by a strict \
        Content-Security-Policy). It carries no data and needs no credentials; its script reads \
        `GET /api/ServiceDiscovery` and `GET /api/Sweep` with the key the operator enters, sent \
        as `Authorization: Bearer`.",
    security(()),
    responses(
        (status = 200, description = "The page.", content_type = "text/html",
            body = String,
            headers(("Content-Security-Policy" = String, description = "Only the page's own \
                inline script and style, by hash; connections to this origin only."))),
    ),
)]
pub async fn page() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CONTENT_SECURITY_POLICY, PAGE.policy.clone()),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        PAGE.html.clone(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_assets_are_inlined_once_and_the_policy_names_their_hashes() {
        let page = &*PAGE;
        assert!(!page.html.contains("/*CSS*/") && !page.html.contains("/*JS*/"));
        assert_eq!(page.html.matches("<script>").count(), 1);
        assert!(page.html.contains(&format!("<script>{JS}</script>")));
        assert!(page.html.contains(&format!("<style>{CSS}</style>")));
        let policy = page.policy.to_str().unwrap();
        assert!(policy.starts_with("default-src 'none'; "), "{policy}");
        assert!(policy.contains(&format!("script-src {};", csp_hash(JS))));
        assert!(policy.contains(&format!("style-src {};", csp_hash(CSS))));
        assert!(!policy.contains("unsafe"), "{policy}");
    }

    #[test]
    fn the_script_never_builds_markup_from_data_or_puts_the_key_in_a_url() {
        assert!(!JS.contains("innerHTML") && !JS.contains("outerHTML"));
        assert!(!JS.contains("document.write") && !JS.contains("eval("));
        assert!(JS.contains("sessionStorage") && !JS.contains("localStorage"));
        assert!(JS.contains("\"Bearer \" + key"));
    }
}
