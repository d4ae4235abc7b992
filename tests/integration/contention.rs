//! Healthy storage, one hot key: concurrent re-registrations and heartbeats of the same row all
//! succeed (no 503 "storage unavailable" while storage is fine), and the row keeps the
//! `registeredAt` of its first registration.

use crate::harness::*;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_registrations_racing_heartbeats_all_succeed() {
    const REGISTRARS: usize = 50;
    const BEATERS: usize = 4;
    const BEATS_EACH: u64 = 500; // a bound; the beaters stop as soon as the registrations are done
    let h = Handler::start().await;
    let body = |version: usize| {
        json!({"serviceName": "hot", "serviceType": "api", "endpoint": "http://10.0.0.1:8080/",
               "version": format!("1.0.{version}")})
    };
    h.register_ok(&body(0)).await;
    let first = h
        .tables()
        .row(&h.registry_table, "api", "hot")
        .await
        .unwrap();
    let registered_at = first["registeredAt"].as_str().unwrap().to_owned();

    let done = AtomicBool::new(false);
    let beats = AtomicU64::new(0);
    let failed_beats = AtomicU64::new(0);
    let beater = || async {
        for _ in 0..BEATS_EACH {
            if done.load(Ordering::SeqCst) {
                break;
            }
            let r = h
                .request(
                    reqwest::Method::POST,
                    "/api/ServiceHeartbeat",
                    Some(json!({"serviceName": "hot", "serviceType": "api"}).to_string()),
                )
                .await;
            beats.fetch_add(1, Ordering::SeqCst);
            if r.status != 200 {
                failed_beats.fetch_add(1, Ordering::SeqCst);
                eprintln!("heartbeat: {} {}", r.status, r.text);
            }
        }
    };
    let registrars = async {
        // Let the heartbeats get going first, so every registration races them.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        let bodies: Vec<_> = (1..=REGISTRARS).map(body).collect();
        let answers = futures::future::join_all(bodies.iter().map(|b| h.register(b))).await;
        done.store(true, Ordering::SeqCst);
        (answers, started.elapsed())
    };
    let ((answers, took), ..) = tokio::join!(registrars, beater(), beater(), beater(), beater());
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    let not_ok = statuses.iter().filter(|s| **s != 200).count();
    eprintln!(
        "{REGISTRARS} re-registrations with {BEATERS} heartbeat clients ({} beats): {not_ok} not 200, {took:?}",
        beats.load(Ordering::SeqCst)
    );
    for r in &answers {
        assert_eq!(r.status, 200, "a re-registration failed: {}", r.text);
    }
    assert_eq!(failed_beats.load(Ordering::SeqCst), 0);
    let rows = h.tables().rows(&h.registry_table).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        rows[0]["registeredAt"], registered_at,
        "re-registrations must keep the first registeredAt"
    );
    let version = rows[0]["version"].as_str().unwrap();
    assert!(
        version.starts_with("1.0.") && version != "1.0.0",
        "{version}"
    );
}

/// Registrations racing deregistrations of the same key: the row is created and deleted under the
/// registrar's feet. Storage is healthy, so no answer is a 503; a registration that loses every
/// round is the documented 409, never "storage unavailable".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_racing_deregistrations_never_report_an_outage() {
    const EACH: usize = 25;
    let h = Handler::start().await;
    let body =
        json!({"serviceName": "flap", "serviceType": "api", "endpoint": "http://10.0.0.1:8080/"});
    let registrations = futures::future::join_all((0..EACH).map(|_| h.register(&body)));
    let deregistrations = futures::future::join_all((0..EACH).map(|_| {
        h.request(
            reqwest::Method::DELETE,
            "/api/ServiceRegistrar?serviceType=api&serviceName=flap",
            None,
        )
    }));
    let (registered, deregistered) = tokio::join!(registrations, deregistrations);
    let mut seen = std::collections::BTreeMap::<(&str, u16), usize>::new();
    for r in &registered {
        *seen.entry(("register", r.status)).or_default() += 1;
        assert!(
            matches!(r.status, 200 | 409),
            "registration: {} {}",
            r.status,
            r.text
        );
        if r.status == 409 {
            assert_error_body(&r.json(), Some("serviceName"));
        }
    }
    for r in &deregistered {
        *seen.entry(("deregister", r.status)).or_default() += 1;
        assert!(
            matches!(r.status, 200 | 404),
            "deregistration: {} {}",
            r.status,
            r.text
        );
    }
    eprintln!("{EACH} registrations racing {EACH} deregistrations: {seen:?}");
    // Whatever the interleaving, a final registration lands, with one row.
    h.register_ok(&body).await;
    assert_eq!(h.tables().rows(&h.registry_table).await.len(), 1);
}
