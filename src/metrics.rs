//! Process metrics in the Prometheus text format, for standalone mode's `METRICS_BIND` listener.
//!
//! One process-wide set (`metrics()`), because the facts are counted where they happen (the
//! request layer, the prober, the read cache, the sweep's owner, the storage-error conversion) and
//! threading a handle through each of those would touch every constructor for no gain: a process
//! has one of each anyway. Under the Functions host nothing serves these; the same facts are in the
//! request and sweep log lines (docs/operations.md).
//!
//! Labels are bounded: `function` is one of the known function names (else `other`), `status` an
//! HTTP status, `outcome`/`kind`/`counter` fixed words, so no caller can grow the series.
//!
//! A leaf: callers hand in plain labels (`StoreError::kind()`, the sweep's counter names), so this
//! file imports nothing of the crate and every layer may count into it. The `/metrics` listener's
//! routes are start-up's (`startup`), and the store's cache reports through a hook start-up
//! installs, so the store does not know this file either.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    function: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FunctionLabel {
    function: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CounterLabel {
    counter: &'static str,
}

/// `StoreError::kind`'s words (`StoreError::KINDS`; start-up's tests hold the two equal): their
/// series exist from the start, at 0.
pub const STORAGE_ERROR_KINDS: [&str; 3] = ["unavailable", "unexpected", "contended"];

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// 1 ms to ~16 s: a request answered from the cache to a sweep waiting on slow probes.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: HistogramFamily<FunctionLabel>,
    sweeps: Family<OutcomeLabel, Counter>,
    sweep_seconds: Histogram,
    sweep_counters: Family<CounterLabel, Counter>,
    last_sweep: Family<CounterLabel, Gauge>,
    probes_in_flight: Gauge,
    cache_hits: Counter,
    cache_misses: Counter,
    cache_refreshes: Counter,
    storage_errors: Family<KindLabel, Counter>,
    shards: Family<OutcomeLabel, Counter>,
    shard_queue_depth: Gauge,
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

impl Metrics {
    fn new() -> Self {
        let m = Metrics {
            registry: Registry::with_prefix("registry"),
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency_histogram),
            sweeps: Family::default(),
            sweep_seconds: latency_histogram(),
            sweep_counters: Family::default(),
            last_sweep: Family::default(),
            probes_in_flight: Gauge::default(),
            cache_hits: Counter::default(),
            cache_misses: Counter::default(),
            cache_refreshes: Counter::default(),
            storage_errors: Family::default(),
            shards: Family::default(),
            shard_queue_depth: Gauge::default(),
        };
        let mut registry = m.registry;
        registry.register(
            "sweep_shards",
            "Shards of a fanned-out sweep, by outcome: enqueued, done, dropped (window over), stale (older sweep), failed (storage), poisoned",
            m.shards.clone(),
        );
        registry.register(
            "sweep_queue_depth",
            "The shard queue's approximate length when this process last looked (in-flight shards included)",
            m.shard_queue_depth.clone(),
        );
        registry.register(
            "requests",
            "Requests answered, by function and HTTP status",
            m.requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time to answer a request, by function",
            m.request_seconds.clone(),
        );
        registry.register(
            "sweeps",
            "Health sweeps by outcome: succeeded, failed (storage), skipped (one running, or the lease held elsewhere)",
            m.sweeps.clone(),
        );
        registry.register(
            "sweep_duration_seconds",
            "Duration of each succeeded sweep (its duration_ms)",
            m.sweep_seconds.clone(),
        );
        registry.register(
            "sweep_services",
            "Sum over succeeded sweeps of each summary counter (probed, healthy, unhealthy, ...)",
            m.sweep_counters.clone(),
        );
        registry.register(
            "last_sweep",
            "The last succeeded sweep's summary counters",
            m.last_sweep.clone(),
        );
        registry.register(
            "probes_in_flight",
            "Health probes under way",
            m.probes_in_flight.clone(),
        );
        registry.register(
            "cache_hits",
            "Table reads and discovery pages served from the read cache",
            m.cache_hits.clone(),
        );
        registry.register(
            "cache_misses",
            "Cached reads that had to fetch (or wait for another caller's fetch)",
            m.cache_misses.clone(),
        );
        registry.register(
            "cache_refreshes",
            "Cached reads and pages read again in the background before they lapsed (refresh ahead)",
            m.cache_refreshes.clone(),
        );
        registry.register(
            "storage_errors",
            "Storage failures that reached a caller (a request's answer or a failed sweep), by kind",
            m.storage_errors.clone(),
        );
        // Known label values start at 0, so a rate or an alert on them works before the first one.
        for outcome in ["succeeded", "failed", "skipped"] {
            let _ = m.sweeps.get_or_create(&OutcomeLabel { outcome });
        }
        for kind in STORAGE_ERROR_KINDS {
            let _ = m.storage_errors.get_or_create(&KindLabel { kind });
        }
        Metrics { registry, ..m }
    }

    pub fn request(&self, function: &'static str, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels { function, status })
            .inc();
        self.request_seconds
            .get_or_create(&FunctionLabel { function })
            .observe(elapsed.as_secs_f64());
    }

    /// A sweep that ran to its end: its duration, and its summary counters by name (a counter
    /// named `duration_ms` is the duration again, kept only in the histogram).
    pub fn sweep_succeeded(&self, duration: Duration, counters: &[(&'static str, u64)]) {
        self.sweeps
            .get_or_create(&OutcomeLabel {
                outcome: "succeeded",
            })
            .inc();
        self.sweep_seconds.observe(duration.as_secs_f64());
        for &(counter, value) in counters {
            if counter == "duration_ms" {
                continue; // the histogram above
            }
            let label = CounterLabel { counter };
            self.sweep_counters.get_or_create(&label).inc_by(value);
            self.last_sweep
                .get_or_create(&label)
                .set(i64::try_from(value).unwrap_or(i64::MAX));
        }
    }

    /// Shards of a fanned-out sweep by outcome (a fixed word).
    pub fn shards(&self, outcome: &'static str, n: u64) {
        self.shards
            .get_or_create(&OutcomeLabel { outcome })
            .inc_by(n);
    }

    /// The shard queue's approximate length, as last read.
    pub fn shard_queue_depth(&self, depth: u64) {
        self.shard_queue_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// A sweep that storage failed; `kind` is the storage error's (`StoreError::kind`).
    pub fn sweep_failed(&self, kind: &'static str) {
        self.sweeps
            .get_or_create(&OutcomeLabel { outcome: "failed" })
            .inc();
        self.storage_error(kind);
    }

    pub fn sweep_skipped(&self) {
        self.sweeps
            .get_or_create(&OutcomeLabel { outcome: "skipped" })
            .inc();
    }

    /// A storage failure that reached a caller; `kind` is one of `STORAGE_ERROR_KINDS`
    /// (`StoreError::kind`).
    pub fn storage_error(&self, kind: &'static str) {
        self.storage_errors.get_or_create(&KindLabel { kind }).inc();
    }

    pub fn cache_hit(&self) {
        self.cache_hits.inc();
        let _ = INVOCATION.try_with(|i| i.cache_hits.fetch_add(1, Ordering::Relaxed));
    }

    pub fn cache_miss(&self) {
        self.cache_misses.inc();
        let _ = INVOCATION.try_with(|i| i.cache_misses.fetch_add(1, Ordering::Relaxed));
    }

    pub fn cache_refresh(&self) {
        self.cache_refreshes.inc();
    }

    /// Counts a probe as in flight until the guard drops (a probe cancelled by the sweep's own
    /// timeout included).
    pub fn probe_started(&self) -> ProbeInFlight {
        self.probes_in_flight.inc();
        let invocation = INVOCATION.try_with(Arc::clone).ok();
        if let Some(i) = &invocation {
            let now = i.probes_in_flight.fetch_add(1, Ordering::Relaxed) + 1;
            i.probes_in_flight_peak.fetch_max(now, Ordering::Relaxed);
        }
        ProbeInFlight(self.probes_in_flight.clone(), invocation)
    }

    /// The text exposition (OpenMetrics text, which Prometheus scrapes).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

pub struct ProbeInFlight(Gauge, Option<Arc<InvocationCells>>);

impl Drop for ProbeInFlight {
    fn drop(&mut self) {
        self.0.dec();
        if let Some(i) = &self.1 {
            i.probes_in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

// Under the Functions host nobody scrapes the process-wide counters, and they mix every request:
// an invocation's own share is counted in a task-local beside them. Its reads and probes run in
// its own task (`try_join!`, `buffer_unordered`), so the scope sees exactly them; work in a task
// spawned elsewhere (the standalone scheduler's sweeps) is outside any scope and counts nowhere
// but the process totals.
tokio::task_local! {
    static INVOCATION: Arc<InvocationCells>;
}

#[derive(Default)]
struct InvocationCells {
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    probes_in_flight: AtomicI64,
    probes_in_flight_peak: AtomicI64,
}

/// What one invocation read from the cache and how many probes it had in flight at its peak.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InvocationCounts {
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub probes_in_flight_peak: u64,
}

/// Runs `work`, counting the cache reads and probes it makes itself.
pub async fn counting_invocation<F: Future>(work: F) -> (F::Output, InvocationCounts) {
    let cells = Arc::new(InvocationCells::default());
    let output = INVOCATION.scope(Arc::clone(&cells), work).await;
    let counts = InvocationCounts {
        cache_hits: cells.cache_hits.load(Ordering::Relaxed),
        cache_misses: cells.cache_misses.load(Ordering::Relaxed),
        probes_in_flight_peak: u64::try_from(cells.probes_in_flight_peak.load(Ordering::Relaxed))
            .unwrap_or(0),
    };
    (output, counts)
}

/// The content type of `encode`'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_set_encodes_every_unlabelled_family_and_the_known_labels_at_zero() {
        // Families keyed by function or sweep counter appear with their first value.
        let text = Metrics::new().encode();
        for family in [
            "registry_sweeps",
            "registry_sweep_duration_seconds",
            "registry_probes_in_flight",
            "registry_cache_hits",
            "registry_cache_misses",
            "registry_storage_errors",
        ] {
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!("# HELP {family} "))),
                "{family} missing from:\n{text}"
            );
        }
        assert!(text.ends_with("# EOF\n"));
        let has = |line: &str| text.lines().any(|l| l == line);
        assert!(has("registry_sweeps_total{outcome=\"failed\"} 0"), "{text}");
        assert!(
            has("registry_storage_errors_total{kind=\"unavailable\"} 0"),
            "{text}"
        );
    }

    #[test]
    fn a_sweep_sets_its_counters_and_the_duration() {
        let m = Metrics::new();
        let counters = [
            ("probed", 3),
            ("healthy", 2),
            ("unhealthy", 1),
            ("duration_ms", 40),
        ];
        m.sweep_succeeded(Duration::from_millis(40), &counters);
        m.sweep_succeeded(Duration::from_millis(40), &counters);
        let text = m.encode();
        let has = |line: &str| text.lines().any(|l| l == line);
        assert!(
            has("registry_sweeps_total{outcome=\"succeeded\"} 2"),
            "{text}"
        );
        assert!(
            has("registry_sweep_services_total{counter=\"probed\"} 6"),
            "{text}"
        );
        assert!(has("registry_last_sweep{counter=\"healthy\"} 2"), "{text}");
        assert!(has("registry_sweep_duration_seconds_count 2"), "{text}");
        assert!(!text.contains("counter=\"duration_ms\""), "{text}");
    }

    #[test]
    fn probes_in_flight_falls_back_when_the_guard_drops() {
        let m = Metrics::new();
        let guard = m.probe_started();
        assert_eq!(m.probes_in_flight.get(), 1);
        drop(guard);
        assert_eq!(m.probes_in_flight.get(), 0);
    }

    #[tokio::test]
    async fn an_invocation_counts_only_its_own_reads_and_probes() {
        let m = Metrics::new();
        m.cache_hit(); // outside any invocation: the process total only
        let ((), counts) = counting_invocation(async {
            m.cache_hit();
            m.cache_miss();
            m.cache_hit();
            let first = m.probe_started();
            let second = m.probe_started();
            drop(first);
            drop(second);
            let _third = m.probe_started();
        })
        .await;
        assert_eq!(
            counts,
            InvocationCounts {
                cache_hits: 2,
                cache_misses: 1,
                probes_in_flight_peak: 2
            }
        );
        assert_eq!(m.cache_hits.get(), 3);
        assert_eq!(m.probes_in_flight.get(), 0);
    }
}
