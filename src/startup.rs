//! Wiring: build the store, the router and (in standalone mode) the scheduler, bind, serve, and shut
//! down gracefully on SIGTERM or Ctrl-C.
//!
//! Order matters for the Functions host: it polls `GET /` from the moment it starts us and gives up
//! after 30 s, so we bind first and never touch storage before serving. Tables are created in the
//! background, and again on first use if storage was down at start-up.

use crate::api::{self, AppState};
use crate::configuration::{ConfigError, HostMode, Settings};
use crate::connector::arm::ArmSync;
use crate::error::ApiError;
use crate::health::{HealthMonitor, SweepTrigger};
use crate::host;
use crate::metrics::{self, metrics};
use crate::scheduler::{Schedule, ScheduleError};
use crate::security::{self, AuthRecord, HostPolicy, Security};
use crate::serve;
use crate::store::{observe_caches, CacheObserver, Store};
use crate::sweep_job::SweepJob;
use axum::extract::Request;
use axum::http::{header, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    #[error(transparent)]
    Fanout(#[from] crate::health::FanoutError),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
}

/// Everything the server needs, built without network traffic.
pub struct Application {
    settings: Settings,
    state: AppState,
    schedule: Option<Schedule>,
}

impl Application {
    pub fn build(settings: Settings) -> Result<Self, StartupError> {
        observe_caches(&CacheMetrics);
        let store = Store::connect(&settings.storage)?;
        // The schedule is checked now, so a typo stops start-up instead of silently never sweeping.
        let schedule = settings
            .health
            .schedule
            .as_deref()
            .map(Schedule::parse)
            .transpose()?;
        let arm_sync = settings
            .arm_sync
            .as_ref()
            .map(|s| ArmSync::new(s, store.clone()));
        let monitor = HealthMonitor::new(store.clone(), &settings.health, &settings.server)?;
        let sweep_job = SweepJob::new(
            monitor.clone(),
            store.clone(),
            &settings.connector,
            arm_sync,
        );
        let prober = monitor.prober().clone();
        let mut security = Security::new(&settings.security);
        if let HostMode::CustomHandler { .. } = settings.server.mode {
            security = security.under_host();
        }
        let state = AppState::new(
            store,
            prober,
            sweep_job,
            security,
            settings.consul.clone(),
            host::openapi_document,
        );
        Ok(Application {
            settings,
            state,
            schedule,
        })
    }

    pub async fn run(self) -> Result<(), StartupError> {
        let open_files = serve::raise_open_file_limit();
        let address = self.settings.server.mode.bind_address();
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|source| StartupError::Bind { address, source })?;
        let local = listener.local_addr().map_err(StartupError::Serve)?;
        let mode = match self.settings.server.mode {
            HostMode::CustomHandler { .. } => "custom-handler",
            HostMode::Standalone { .. } => "standalone",
        };
        tracing::info!(
            mode,
            address = %local,
            storage = without_query(self.state.store.endpoint()),
            registry_table = %self.settings.storage.registry_table,
            health_table = %self.settings.storage.health_table,
            state_table = %self.settings.storage.state_table,
            schedule = self.schedule.as_ref().map(Schedule::as_str).unwrap_or("owned by the Functions host"),
            open_files,
            max_connections = self.settings.server.connections.max_connections,
            probe_concurrency = self.settings.health.probe.concurrency,
            sweep_queue = self.settings.health.fanout.as_ref().map_or("none: the sweep runs in process", |f| f.queue.as_str()),
            storage_max_connections = self.settings.storage.connections.max,
            "handler listening"
        );
        if let Some(sync) = &self.settings.arm_sync {
            tracing::info!(
                sources = sync.sources.len(),
                endpoint = %sync.endpoint,
                "Service Connector sync on: linkers are listed at the start of every sweep"
            );
        }

        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        tokio::spawn(create_tables(self.state.clone(), shutdown_rx.clone()));
        if self.settings.connector.self_register {
            // In the background, like table creation: readiness never waits for storage.
            let job = self.state.sweep_job.clone();
            tokio::spawn(async move { job.register_connections().await });
        }
        // Standalone with SWEEP_QUEUE: take shards from the queue (returns at once otherwise).
        let job = self.state.sweep_job.clone();
        let stop = shutdown_rx.clone();
        tokio::spawn(async move { job.poll_shards(stop).await });
        if let Some(schedule) = self.schedule {
            tokio::spawn(run_schedule(
                schedule,
                self.state.clone(),
                shutdown_rx.clone(),
            ));
        }

        if let Some(address) = self.settings.metrics.bind {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .map_err(|source| StartupError::Bind { address, source })?;
            let local = listener.local_addr().map_err(StartupError::Serve)?;
            tracing::info!(address = %local, "metrics listening on /metrics");
            let mut stop = shutdown_rx.clone();
            let connections = self.settings.server.connections;
            // Unauthenticated: loopback names only, unless reaching it from elsewhere was asked for.
            let hosts = (!self.settings.metrics.allow_remote)
                .then(|| HostPolicy::loopback(local, Vec::new()));
            tokio::spawn(async move {
                serve::serve(listener, metrics_router(hosts), connections, async move {
                    let _ = stop.wait_for(|stop| *stop).await;
                })
                .await;
            });
        }

        let standalone = self.settings.server.mode.is_standalone();
        // Standalone with nobody checked (the dev loop, `REGISTRY_ALLOW_ANONYMOUS`): DNS rebinding.
        // Under the host the host forwards with its own `Host`, and owns authentication.
        let hosts = (standalone && !self.settings.security.authentication_configured())
            .then(|| HostPolicy::loopback(local, self.settings.security.allowed_hosts.clone()));
        let consul = self.state.consul.clone();
        let app = app(self.state, standalone, hosts);
        let mut server_shutdown = shutdown_rx.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutdown requested; finishing in-flight requests");
            // Held Consul reads answer now rather than at the end of their holds.
            consul.catalog.stop();
            let _ = shutdown_tx.send(true);
        });
        let connections = self.settings.server.connections;
        serve::serve(listener, app, connections, async move {
            let _ = server_shutdown.wait_for(|stop| *stop).await;
        })
        .await;
        tracing::info!("handler stopped");
        Ok(())
    }
}

/// The whole router: readiness, `/api/*`, the envelopes (standalone: the manual sweep only),
/// browser origins refused or answered with CORS, requests naming another host refused when
/// `hosts` is given, and one log line per request.
pub fn app(state: AppState, standalone: bool, hosts: Option<HostPolicy>) -> Router {
    let api = api::router(state.clone());
    let security = state.security.clone();
    let mut router = Router::new()
        .route(
            "/",
            get(|| async { Json(serde_json::json!({"status": "ok"})) })
                .fallback(|method: Method| async move { api::not_allowed(method, "GET") }),
        )
        .merge(host::router(state, api.clone(), standalone))
        .merge(api.layer(api::compression()));
    if let Some(cors) = security.origins.cors_layer() {
        router = router.layer(cors);
    }
    router = router
        .layer(axum::middleware::from_fn_with_state(
            security.clone(),
            security::refuse_unguarded_consul,
        ))
        .layer(axum::middleware::from_fn_with_state(
            security,
            security::refuse_foreign_origins,
        ));
    behind_host_check(router, hosts)
        .layer(axum::middleware::from_fn(api::refuse_oversized))
        .layer(axum::middleware::from_fn(log_request))
}

/// The metrics listener's routes: `GET /metrics`, and JSON 404/405 like the API's, behind the
/// `Host` check when `hosts` is given. Scrapes are not counted as requests: they would be most of
/// them.
fn metrics_router(hosts: Option<HostPolicy>) -> Router {
    let router = Router::new()
        .route(
            "/metrics",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
                    metrics().encode(),
                )
            })
            .fallback(|method: Method| async move { api::not_allowed(method, "GET") }),
        )
        .fallback(|uri: Uri| async move { ApiError::NotFound(uri.path().to_owned()) });
    behind_host_check(router, hosts)
}

/// `router` answering only requests whose `Host` names the listener, when `hosts` is given (an
/// unauthenticated listener: DNS rebinding).
fn behind_host_check(router: Router, hosts: Option<HostPolicy>) -> Router {
    match hosts {
        Some(hosts) => router.layer(axum::middleware::from_fn_with_state(
            Arc::new(hosts),
            security::refuse_other_hosts,
        )),
        None => router,
    }
}

/// The store's read caches count their hits, misses and refreshes into the process metrics.
struct CacheMetrics;

impl CacheObserver for CacheMetrics {
    fn hit(&self) {
        metrics().cache_hit();
    }
    fn miss(&self) {
        metrics().cache_miss();
    }
    fn refresh(&self) {
        metrics().cache_refresh();
    }
}

/// One structured line per request: function, method, status, duration, invocation id, and the
/// caller (`caller`: a key id or token subject, never a secret) with the decision (`auth`). The
/// path is logged without its query, which may hold the function key.
async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let invocation_id = ["x-ms-invocation-id", "x-azure-functions-invocationid"]
        .iter()
        .find_map(|name| request.headers().get(*name))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let response = next.run(request).await;
    let (caller, auth) = response
        .extensions()
        .get::<AuthRecord>()
        .map_or(("", ""), |record| (record.caller.as_str(), record.decision));
    let function = path.trim_start_matches("/api/").trim_start_matches('/');
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    let duration_ms = elapsed.as_secs_f64() * 1000.0;
    metrics().request(host::function_name(&path), status, elapsed);
    if path == "/" {
        // The host polls `GET /` every 25 ms while starting us: keep it out of the info log.
        tracing::debug!(status, "readiness probe");
    } else if response.status() == StatusCode::INTERNAL_SERVER_ERROR
        || response.status() == StatusCode::SERVICE_UNAVAILABLE
    {
        tracing::warn!(function, %method, path, status, duration_ms, invocation_id, caller, auth, "request");
    } else {
        tracing::info!(function, %method, path, status, duration_ms, invocation_id, caller, auth, "request");
    }
    response
}

/// The endpoint for the log: a SAS connection string's endpoint may carry a query; drop it whole.
fn without_query(endpoint: &str) -> &str {
    endpoint.split_once('?').map_or(endpoint, |(bare, _)| bare)
}

/// Creates the tables, retrying with backoff while storage is unreachable.
async fn create_tables(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let mut delay = Duration::from_millis(500);
    loop {
        match state.store.ensure_tables().await {
            Ok(()) => {
                tracing::info!("tables ready");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "cannot create tables yet")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

/// Fires the sweep at each occurrence of the schedule until shutdown. Occurrences missed while a
/// sweep ran long are skipped, not queued (as the host's timer does without `useMonitor` catch-up).
async fn run_schedule(schedule: Schedule, state: AppState, mut shutdown: watch::Receiver<bool>) {
    loop {
        let now = chrono::Utc::now();
        let Some(next) = schedule.next_after(now) else {
            tracing::warn!(
                schedule = schedule.as_str(),
                "schedule has no future occurrence; timer stopped"
            );
            return;
        };
        let wait = (next - now).to_std().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        // Errors are logged inside; the next tick tries again.
        let _ = state
            .sweep_job
            .run(SweepTrigger::Scheduled { tick: next })
            .await;
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    /// The metrics start every storage-error series at 0 from their own list of words, because
    /// they import nothing of the store: that list must be the store's.
    #[test]
    fn the_storage_error_series_are_the_stores_kinds() {
        assert_eq!(
            crate::metrics::STORAGE_ERROR_KINDS,
            crate::store::StoreError::KINDS
        );
    }
}
