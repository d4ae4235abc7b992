//! Large answers are compressed when the client asks for it (gzip or brotli), with
//! `Vary: Accept-Encoding`; 304s, small answers and invocation envelopes are not.

use crate::harness::*;
use serde_json::{json, Value};
use std::io::Read;

async fn discover_with(h: &Handler, query: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = h.forwarded(
        reqwest::Method::GET,
        &format!("/api/ServiceDiscovery?{query}"),
    );
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("GET /api/ServiceDiscovery")
}

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

fn without_timestamp(mut v: Value) -> Value {
    v.as_object_mut().unwrap().remove("timestamp");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_answers_are_compressed_when_asked_and_304s_and_envelopes_never() {
    let h = Handler::start().await;
    for i in 0..40 {
        h.register_instance("api", "big", Some(&format!("pod-{i}")), json!({}))
            .await;
    }
    let plain = discover_with(&h, "serviceName=big", &[]).await;
    assert_eq!(plain.status(), 200);
    assert_eq!(header(&plain, "content-encoding"), None);
    let etag = header(&plain, "etag").expect("ETag");
    let plain: Value = serde_json::from_slice(&plain.bytes().await.unwrap()).unwrap();
    assert_eq!(items(&plain).len(), 40);

    let gzip = discover_with(&h, "serviceName=big", &[("Accept-Encoding", "gzip")]).await;
    assert_eq!(gzip.status(), 200);
    assert_eq!(header(&gzip, "content-encoding").as_deref(), Some("gzip"));
    assert!(
        header(&gzip, "vary").is_some_and(|v| v.to_ascii_lowercase().contains("accept-encoding")),
        "{:?}",
        gzip.headers()
    );
    assert_eq!(header(&gzip, "etag").as_deref(), Some(etag.as_str()));
    let packed = gzip.bytes().await.unwrap();
    let mut unpacked = String::new();
    flate2::read::GzDecoder::new(&packed[..])
        .read_to_string(&mut unpacked)
        .expect("a gzip body");
    assert!(
        packed.len() * 3 < unpacked.len(),
        "{} -> {}",
        unpacked.len(),
        packed.len()
    );
    let unpacked: Value = serde_json::from_str(&unpacked).unwrap();
    assert_eq!(without_timestamp(unpacked), without_timestamp(plain));

    let br = discover_with(&h, "serviceName=big", &[("Accept-Encoding", "br")]).await;
    assert_eq!(header(&br, "content-encoding").as_deref(), Some("br"));

    // A 304 stays empty and unencoded, whatever the client accepts.
    let not_modified = discover_with(
        &h,
        "serviceName=big",
        &[("Accept-Encoding", "gzip, br"), ("If-None-Match", &etag)],
    )
    .await;
    assert_eq!(not_modified.status(), 304);
    assert_eq!(header(&not_modified, "content-encoding"), None);
    assert_eq!(
        header(&not_modified, "etag").as_deref(),
        Some(etag.as_str())
    );
    assert!(not_modified.bytes().await.unwrap().is_empty());

    // A small answer is not worth it.
    let small = discover_with(&h, "serviceName=none", &[("Accept-Encoding", "gzip")]).await;
    assert_eq!(small.status(), 200);
    assert_eq!(header(&small, "content-encoding"), None);

    // An envelope carries the body as a JSON string: neither it nor the reply is compressed.
    let envelope = ReqEnvelope::new("ServiceDiscovery", "GET")
        .query(&[("serviceName", "big")])
        .header("Accept-Encoding", "gzip")
        .build();
    let reply = h
        .client
        .post(format!("{}/ServiceDiscovery", h.base))
        .header("Content-Type", "application/json")
        .header("Accept-Encoding", "gzip")
        .body(envelope.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(header(&reply, "content-encoding"), None);
    let reply: Value = serde_json::from_slice(&reply.bytes().await.unwrap()).unwrap();
    let body = reply["Outputs"]["res"]["body"]
        .as_str()
        .expect("a JSON string body");
    let inner: Value = serde_json::from_str(body).expect("plain JSON inside");
    assert_eq!(items(&inner).len(), 40);
}
