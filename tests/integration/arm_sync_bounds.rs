//! The Service Connector sync's own bounds against the ARM imitation (docs/arm-sync.md, "Bounds"):
//! a listing as big as the page limits allow (20 pages of about 4 MiB) is read one page at a time,
//! so the handler's peak memory stays near one page's however many linkers it holds; skipped
//! linkers are reported as one counted line per source, not one line each; and the item cap stops
//! a listing without removing anything on the strength of what was read.
//!
//! The rows name public Azure hosts; the sweep after each sync tries to probe them, which fails at
//! once in the loopback-only namespace `make test` runs the suite in.

use crate::harness::arm::linker;
use crate::harness::arm_setup::{start, ArmSetup};
use std::time::Duration;

const SUB: &str = "00000000-0000-0000-0000-0000000000bb";
/// The handler refuses a page over 4 MiB; each page here is just under, with room for the
/// `{"value":[…],"nextLink":"…"}` around its items.
const PAGE_BYTES: usize = 4 * 1024 * 1024 - 1024;
/// SERVICE_CONNECTOR_SYNC_MAX_PAGES' default: the most pages one listing may have.
const PAGES: usize = 20;

fn site(name: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/rg-big/providers/Microsoft.Web/sites/{name}")
}

fn target(path: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/rg-data/providers/{path}")
}

/// What a listing holds, counted as it is rendered: the skip reasons the sync reports.
#[derive(Default)]
struct Expected {
    items: usize,
    not_azure: usize,
    unmapped: usize,
    invalid: usize,
    malformed: usize,
}

/// How each linker is written: as "Linker - List" shows a real one (about 1.3 KB), or as small as
/// a linker item can be (the most items a page can hold).
#[derive(Clone, Copy)]
enum Size {
    Realistic,
    Tiny,
}

/// One linker of `app` to `target_service` (a JSON object's text).
fn linker_text(size: Size, app: &str, n: usize, target_service: &str) -> String {
    match size {
        Size::Tiny => {
            format!(r#"{{"id":"l{n}","properties":{{"targetService":{target_service}}}}}"#)
        }
        Size::Realistic => {
            let id = format!("{app}/providers/Microsoft.ServiceLinker/linkers/link{n:07}");
            format!(
                r#"{{"id":"{id}","name":"link{n:07}","type":"Microsoft.ServiceLinker/linkers","properties":{{"targetService":{target_service},"authInfo":{{"authType":"userAssignedIdentity","clientId":"7c4cd3f4-5f0b-4c52-8d5a-2a0b6e1f3d9a","subscriptionId":"{SUB}","roles":["Storage Blob Data Contributor"],"deleteOrUpdateBehavior":"Default"}},"clientType":"dotnet","scope":"main-container","provisioningState":"Succeeded","vNetSolution":{{"type":"privateLink","deleteOrUpdateBehavior":"Default"}},"publicNetworkSolution":{{"action":"optOut","deleteOrUpdateBehavior":"Default","firewallRules":{{"azureServices":"on","callerClientIP":"off","ipRanges":[]}}}},"configurationInfo":{{"action":"enable","customizedKeys":{{"AZURE_APPCONFIGURATION_ENDPOINT":"APP_CONFIG_ENDPOINT_{n}"}},"additionalConfigurations":{{}},"additionalConnectionStringProperties":{{}},"configurationStore":{{"appConfigurationId":""}},"deleteOrUpdateBehavior":"Default"}}}},"systemData":{{"createdBy":"ops@contoso.example","createdByType":"User","createdAt":"2026-11-30T10:00:00.0000000Z"}}}}"#
            )
        }
    }
}

/// Whether linker `n` of a listing goes to an unmapped Azure resource (else to a non-Azure
/// target): alternately for realistic linkers, one in eight for tiny ones (the shortest items).
fn unmapped(size: Size, n: usize) -> bool {
    match size {
        Size::Realistic => n % 2 == 1,
        Size::Tiny => n % 8 == 7,
    }
}

fn skipped_linker(size: Size, app: &str, n: usize) -> String {
    let target_service = match (size, unmapped(size, n)) {
        (Size::Tiny, false) => r#"{"type":"X"}"#.to_owned(),
        (Size::Tiny, true) => r#"{"type":"AzureResource","id":"/providers/A.B/c/d"}"#.to_owned(),
        (Size::Realistic, false) => {
            r#"{"type":"ConfluentBootstrapServer","endpoint":"broker.example:9092"}"#.to_owned()
        }
        (Size::Realistic, true) => format!(
            r#"{{"type":"AzureResource","id":"{}"}}"#,
            target(&format!(
                "Microsoft.AppConfiguration/configurationStores/cfg{n}"
            ))
        ),
    };
    linker_text(size, app, n, &target_service)
}

/// `PAGES` pages of about `PAGE_BYTES` each: two linkers to Redis caches (`big-first` first on the
/// first page, `big-last` last on the last), one whose target makes no valid row (first on page
/// 7), one malformed item (first on page 11), and otherwise linkers the sync skips because their
/// target is not an Azure resource or is not mapped.
fn listing(size: Size, app: &str) -> (Vec<String>, Expected) {
    let redis = |name: &str| {
        linker(
            app,
            name,
            &target(&format!("Microsoft.Cache/redis/{name}")),
            "secret",
        )
        .to_string()
    };
    let last = redis("big-last");
    let mut expected = Expected::default();
    let mut pages = Vec::with_capacity(PAGES);
    let mut n = 0;
    for page in 0..PAGES {
        let final_page = page + 1 == PAGES;
        let mut text = String::with_capacity(PAGE_BYTES);
        loop {
            let first = text.is_empty();
            let (item, count): (String, fn(&mut Expected)) = match (page, first) {
                (0, true) => (redis("big-first"), |_| {}),
                (7, true) => (
                    format!(
                        r#"{{"id":"l{n}","properties":{{"targetService":{{"type":"AzureResource","id":"{}"}}}}}}"#,
                        target("Microsoft.Sql/servers/s/databases/not valid")
                    ),
                    |e| e.invalid += 1,
                ),
                (11, true) => (r#"{"id":17,"properties":"not a linker"}"#.to_owned(), |e| {
                    e.malformed += 1
                }),
                _ if unmapped(size, n) => (skipped_linker(size, app, n), |e| e.unmapped += 1),
                _ => (skipped_linker(size, app, n), |e| e.not_azure += 1),
            };
            let reserve = if final_page { last.len() + 1 } else { 0 };
            if text.len() + item.len() + 1 + reserve > PAGE_BYTES {
                break;
            }
            if !first {
                text.push(',');
            }
            text.push_str(&item);
            count(&mut expected);
            expected.items += 1;
            n += 1;
        }
        if final_page {
            text.push(',');
            text.push_str(&last);
            expected.items += 1;
        }
        pages.push(text);
    }
    (pages, expected)
}

/// The figures a run is judged by, printed so a failing run still shows them.
struct Measured {
    peak_mib: u64,
    log_lines: usize,
    skip_summaries: Vec<String>,
}

/// One sync over a 20-page listing of `size` linkers: rows, the one counted summary of what was
/// skipped, few log lines, and the handler's peak memory under `bound_mib`.
async fn a_full_listing_is_read_a_page_at_a_time(size: Size, bound_mib: u64) {
    let app = site("big");
    let (pages, expected) = listing(size, &app);
    let s = start(
        &[&app],
        &[
            // As deployed: info lines only (debug has a line per skipped linker).
            ("RUST_LOG", "info"),
            // Room for every item of 20 full pages: the bound under test is the pages' bytes.
            ("SERVICE_CONNECTOR_SYNC_MAX_ITEMS", "2000000"),
            // The suite runs a debug build, which reads 80 MiB of JSON in 15 to 50 s on a busy
            // two-core machine: time is not what is tested here.
            ("SERVICE_CONNECTOR_SYNC_DEADLINE_MS", "150000"),
        ],
    )
    .await;
    let bytes: usize = pages.iter().map(String::len).sum();
    s.arm.set_linker_pages(&app, pages);
    let before = s.h.peak_rss_kib() / 1024;
    let started = std::time::Instant::now();
    let r = s.h.sweep_within(Duration::from_secs(180)).await;
    let measured = measure(&s);
    eprintln!(
        "{} items of {} bytes on average, {} pages: peak RSS {} MiB (at start {before} MiB), {} log lines, {:?}",
        expected.items,
        bytes / expected.items,
        PAGES,
        measured.peak_mib,
        measured.log_lines,
        started.elapsed()
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        measured.log_lines < 100,
        "{} log lines for one sync",
        measured.log_lines
    );
    assert!(
        measured.peak_mib < bound_mib,
        "peak RSS {} MiB, bound {bound_mib} MiB",
        measured.peak_mib
    );
    assert_eq!(
        s.summaries(),
        [format!(
            "Service Connector sync: added 2, updated 0, unchanged 0, removed 0, skipped {}",
            expected.items - 2
        )]
    );
    assert_eq!(s.keys().await, ["redis/big-first", "redis/big-last"]);
    assert_eq!(s.arm.requests().len(), PAGES);
    assert_eq!(
        measured.skip_summaries,
        [format!(
            "Service Connector sync: skipped {} linkers of {app} ({} target not an Azure resource, {} target type not mapped, {} target makes no valid registration, {} malformed)",
            expected.items - 2,
            expected.not_azure,
            expected.unmapped,
            expected.invalid,
            expected.malformed
        )]
    );
    s.assert_clean();
}

fn measure(s: &ArmSetup) -> Measured {
    Measured {
        peak_mib: s.h.peak_rss_kib() / 1024,
        log_lines: s.h.stdout().lines().count() + s.h.stderr().lines().count(),
        skip_summaries: s.lines_after("Service Connector sync: skipped "),
    }
}

/// About 3,200 realistic linkers (1.3 KB each) a page, 64,000 in all. Measured: 33 to 36 MiB peak
/// RSS from about 20 MiB at start (a page's bytes while its items are read one at a time), 11 log
/// lines; keeping every linker as a JSON tree until the end, as the sync once did, took 654 MiB
/// and logged a line per skipped linker (63,940 lines). The 150 MiB bound is four times what was
/// measured, room for allocator arenas on machines with more cores, and a quarter of the old cost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_pages_of_realistic_linkers_cost_about_one_page() {
    a_full_listing_is_read_a_page_at_a_time(Size::Realistic, 150).await;
}

/// About 64,000 tiny linkers (65 bytes) a page, 1.27 million in all: the most items 20 pages can
/// hold. The same bound, because memory follows a page's bytes, not its items: measured 33 to
/// 36 MiB and 8 to 11 log lines, where the old sync took 2,107 MiB and wrote 1,273,044 lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_pages_of_tiny_linkers_cost_about_one_page() {
    a_full_listing_is_read_a_page_at_a_time(Size::Tiny, 150).await;
}

/// Past the item cap a listing stops (no page after it is asked for) and says so in one line; the
/// round is then incomplete, so the rows of linkers that were not read stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_item_cap_stops_a_listing_and_then_nothing_is_removed() {
    let app = site("capped");
    let s = start(&[&app], &[("SERVICE_CONNECTOR_SYNC_MAX_ITEMS", "5")]).await;
    s.arm.set_page_size(2);
    let redis = |name: &str| {
        linker(
            &app,
            name,
            &target(&format!("Microsoft.Cache/redis/{name}")),
            "secret",
        )
    };
    s.arm.set_linkers(&app, vec![redis("a"), redis("b")]);
    assert_eq!(
        s.sync().await,
        "Service Connector sync: added 2, updated 0, unchanged 0, removed 0, skipped 0"
    );

    // Seven linkers, a and b gone: the sixth item, in the third page, is past the cap.
    s.arm.set_linkers(
        &app,
        ["c", "d", "e", "f", "g", "h", "i"].map(redis).to_vec(),
    );
    let requests = s.arm.requests().len();
    assert_eq!(
        s.sync().await,
        "Service Connector sync: added 0, updated 0, unchanged 0, removed 0, skipped 0; a source failed to list, so nothing was removed"
    );
    assert_eq!(s.keys().await, ["redis/a", "redis/b"]);
    assert_eq!(
        s.arm.requests().len() - requests,
        3,
        "no page after the cap"
    );
    let logs = s.h.logs();
    let stops: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("holds more than 5 items (SERVICE_CONNECTOR_SYNC_MAX_ITEMS)"))
        .collect();
    assert_eq!(stops.len(), 1, "{logs}");
    assert!(stops[0].contains("listing linkers failed"), "{}", stops[0]);

    // Five, at the cap: the listing is complete, so a and b go.
    s.arm
        .set_linkers(&app, ["c", "d", "e", "f", "g"].map(redis).to_vec());
    assert_eq!(
        s.sync().await,
        "Service Connector sync: added 5, updated 0, unchanged 0, removed 2, skipped 0"
    );
    assert_eq!(
        s.keys().await,
        ["redis/c", "redis/d", "redis/e", "redis/f", "redis/g"]
    );
    s.assert_clean();
}
