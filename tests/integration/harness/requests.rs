//! What a test sends the handler, as `Handler` methods: forwarded HTTP as the host forwards it
//! (registration, discovery, the resolver, heartbeat, deregistration, any route with or without a
//! key), the envelopes as the host sends them with forwarding off, the sweep with its report, and
//! `GET /api/Sweep`. Also the one write a test makes behind the handler's back: aging a
//! registration.

use super::{
    bearer, iso, local_endpoint, logs_of, sweep_report, timer_envelope, timer_info_object, Handler,
    Resp, SweepReport, HOST_VERSION,
};
use serde_json::{json, Value};

impl Handler {
    // --- forwarded HTTP, as the host forwards it ---

    /// A request as the host forwards it (its invocation-id, host-version and user-agent headers);
    /// the caller adds a body and sends it.
    pub fn forwarded(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path_and_query))
            .header("x-ms-invocation-id", uuid::Uuid::new_v4().to_string())
            .header("X-Azure-Functions-HostVersion", HOST_VERSION)
            .header(
                "X-Azure-Functions-InvocationId",
                uuid::Uuid::new_v4().to_string(),
            )
            .header("User-Agent", format!("Azure-Functions-Host/{HOST_VERSION}"))
    }

    /// POST /api/ServiceRegistrar with a raw body and Content-Type application/json.
    pub async fn register_raw(&self, body: impl Into<reqwest::Body>) -> Resp {
        let resp = self
            .forwarded(reqwest::Method::POST, "/api/ServiceRegistrar")
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .expect("POST /api/ServiceRegistrar");
        Resp::read(resp).await
    }

    /// POST /api/ServiceRegistrar with `body`.
    pub async fn register(&self, body: &Value) -> Resp {
        self.register_raw(body.to_string()).await
    }

    /// Register and assert success.
    pub async fn register_ok(&self, body: &Value) {
        let r = self.register(body).await;
        assert_eq!(
            r.status, 200,
            "registration of {body} failed: {} {}",
            r.status, r.text
        );
    }

    /// GET /api/ServiceDiscovery with a raw query string ("" or "serviceType=api&...").
    pub async fn discover(&self, query: &str) -> Resp {
        let pq = if query.is_empty() {
            "/api/ServiceDiscovery".to_string()
        } else {
            format!("/api/ServiceDiscovery?{query}")
        };
        let resp = self
            .forwarded(reqwest::Method::GET, &pq)
            .send()
            .await
            .expect("GET /api/ServiceDiscovery");
        Resp::read(resp).await
    }

    /// GET /api/ServiceResolver?`query`.
    pub async fn resolve(&self, query: &str) -> Resp {
        self.request(
            reqwest::Method::GET,
            &format!("/api/ServiceResolver?{query}"),
            None,
        )
        .await
    }

    /// Discovery that must succeed; returns the parsed body.
    pub async fn discover_ok(&self, query: &str) -> Value {
        let r = self.discover(query).await;
        assert_eq!(
            r.status, 200,
            "discovery ?{query} failed: {} {}",
            r.status, r.text
        );
        r.json()
    }

    /// Any route as the host forwards it, with an optional JSON body.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        body: Option<String>,
    ) -> Resp {
        let mut rb = self.forwarded(method, path_and_query);
        if let Some(b) = body {
            rb = rb.header("Content-Type", "application/json").body(b);
        }
        Resp::read(rb.send().await.expect("request")).await
    }

    /// A request with exactly these headers (credentials, `Origin`, …) and an optional body.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Resp {
        let mut rb = self.client.request(method, self.url(path_and_query));
        for (name, value) in headers {
            rb = rb.header(*name, *value);
        }
        if let Some(b) = body {
            rb = rb.body(b);
        }
        Resp::read(rb.send().await.expect("request")).await
    }

    // --- envelopes, as the host sends them with forwarding off ---

    /// POST /`function` with an invocation envelope, as the host sends it with forwarding off.
    pub async fn invoke(&self, function: &str, envelope: &Value) -> Resp {
        self.invoke_raw(function, envelope.to_string()).await
    }

    /// `invoke` with a body the test wrote itself (malformed envelopes included).
    pub async fn invoke_raw(&self, function: &str, body: String) -> Resp {
        self.invoke_within(function, body, None).await
    }

    /// `invoke_raw` with its own time budget (`None`: the client's).
    async fn invoke_within(
        &self,
        function: &str,
        body: String,
        budget: Option<std::time::Duration>,
    ) -> Resp {
        let mut request = self.client.post(self.url(&format!("/{function}")));
        if let Some(budget) = budget {
            request = request.timeout(budget);
        }
        let resp = request
            .header("Content-Type", "application/json; charset=utf-8")
            .header("X-Azure-Functions-HostVersion", HOST_VERSION)
            .header(
                "X-Azure-Functions-InvocationId",
                uuid::Uuid::new_v4().to_string(),
            )
            .header("User-Agent", format!("Azure-Functions-Host/{HOST_VERSION}"))
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST /{function}: {e}"));
        Resp::read(resp).await
    }

    /// Run one HealthMonitor sweep via the timer envelope (object form).
    pub async fn sweep(&self) -> Resp {
        self.invoke("HealthMonitor", &timer_envelope(timer_info_object()))
            .await
    }

    /// `sweep`, waiting up to `budget` for its answer instead of the client's 60 s (a sweep whose
    /// work a debug build does slowly).
    pub async fn sweep_within(&self, budget: std::time::Duration) -> Resp {
        let body = timer_envelope(timer_info_object()).to_string();
        self.invoke_within("HealthMonitor", body, Some(budget))
            .await
    }

    /// One HealthMonitor sweep, and its report read back from the summary line in its Logs.
    pub async fn sweep_report(&self) -> SweepReport {
        let r = self.sweep().await;
        assert_eq!(r.status, 200, "sweep failed: {}", r.text);
        let logs = logs_of(&r.json());
        sweep_report(&logs).unwrap_or_else(|| panic!("no sweep summary in {logs:?}"))
    }

    /// `GET /api/Sweep` (no credentials), asserted 200 with JSON holding only `lastSweep` and
    /// `recentTransitions`; the value of `lastSweep` (`null` before the first sweep).
    pub async fn last_sweep(&self) -> Value {
        self.sweep_status().await["lastSweep"].clone()
    }

    /// `GET /api/Sweep` (no credentials), asserted 200 with JSON holding only `lastSweep` and
    /// `recentTransitions`: the whole answer.
    pub async fn sweep_status(&self) -> Value {
        let r = self.request(reqwest::Method::GET, "/api/Sweep", None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.assert_json_content_type();
        let v = r.json();
        let fields: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(fields, vec!["lastSweep", "recentTransitions"], "{v}");
        v
    }

    /// POST /api/ServiceHeartbeat with `body`.
    pub async fn heartbeat(&self, body: &Value) -> Resp {
        self.request(
            reqwest::Method::POST,
            "/api/ServiceHeartbeat",
            Some(body.to_string()),
        )
        .await
    }

    /// DELETE /api/ServiceRegistrar?`query`.
    pub async fn deregister(&self, query: &str) -> Resp {
        self.request(
            reqwest::Method::DELETE,
            &format!("/api/ServiceRegistrar?{query}"),
            None,
        )
        .await
    }

    /// Registers `name` (type `service_type`, instance `instance`) at a local address nothing
    /// listens on, with `extra`'s fields merged into the body; asserts success and returns the
    /// answer.
    pub async fn register_instance(
        &self,
        service_type: &str,
        name: &str,
        instance: Option<&str>,
        extra: Value,
    ) -> Value {
        let mut body = json!({
            "serviceName": name,
            "serviceType": service_type,
            "endpoint": local_endpoint(name),
        });
        if let Some(i) = instance {
            body["instanceId"] = json!(i);
        }
        if let Value::Object(m) = extra {
            for (k, v) in m {
                body[k] = v;
            }
        }
        let r = self.register(&body).await;
        assert_eq!(r.status, 200, "registration of {body} failed: {}", r.text);
        r.json()
    }

    /// A request with `key` as a bearer token (or no credentials at all) and an optional body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let auth = key.map(bearer);
        let mut headers = vec![];
        if let Some(auth) = &auth {
            headers.push(("Authorization", auth.as_str()));
        }
        self.send(method, path, &headers, body.map(|b| b.to_string()))
            .await
    }

    /// Rewrites one registry row's `lastHeartbeat` directly in the table (all other properties
    /// kept): a registration that aged without the handler's help.
    pub async fn set_last_heartbeat(
        &self,
        pk: &str,
        rk: &str,
        when: chrono::DateTime<chrono::Utc>,
    ) {
        let tables = self.tables();
        let row = tables
            .row(&self.registry_table, pk, rk)
            .await
            .unwrap_or_else(|| panic!("no registry row ({pk}, {rk}) to age"));
        let mut entity = serde_json::Map::new();
        for (k, v) in row.as_object().unwrap() {
            if k.starts_with("odata.") || k == "Timestamp" || k == "Timestamp@odata.type" {
                continue;
            }
            entity.insert(k.clone(), v.clone());
        }
        entity.insert("lastHeartbeat".into(), json!(iso(when)));
        tables
            .upsert(&self.registry_table, &Value::Object(entity))
            .await;
    }
}
