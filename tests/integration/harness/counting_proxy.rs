//! A counting proxy in front of Azurite (127.0.0.1 only): every request the handler sends to
//! storage, recorded as `METHOD /table-part-of-the-path` and forwarded unchanged (Shared Key signs
//! the path and headers, not the host, so the signature still holds). Tests read the count of
//! storage round trips one API request cost.

use std::sync::{Arc, Mutex};

#[derive(Clone)]
pub struct CountingProxy {
    pub port: u16,
    seen: Arc<Mutex<Vec<String>>>,
    /// The `Accept` header of each request, beside `seen`.
    accepts: Arc<Mutex<Vec<String>>>,
    /// The answers to entity queries (`GET …()`), as text.
    query_answers: Arc<Mutex<Vec<String>>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        if Arc::strong_count(&self.task) == 1 {
            self.task.abort();
        }
    }
}

impl CountingProxy {
    /// Forwards to Azurite's table port `upstream`.
    pub async fn start(upstream: u16) -> CountingProxy {
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let accepts: Arc<Mutex<Vec<String>>> = Arc::default();
        let query_answers: Arc<Mutex<Vec<String>>> = Arc::default();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().unwrap().port();
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let (log, accept_log, answers) = (seen.clone(), accepts.clone(), query_answers.clone());
        let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
            let (client, log, accept_log) = (client.clone(), log.clone(), accept_log.clone());
            let answers = answers.clone();
            async move {
                let accept = request
                    .headers()
                    .get(axum::http::header::ACCEPT)
                    .map(|v| v.to_str().unwrap_or_default().to_owned())
                    .unwrap_or_default();
                accept_log.lock().unwrap().push(accept);
                forward(client, log, answers, upstream, request).await
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        CountingProxy {
            port,
            seen,
            accepts,
            query_answers,
            task: Arc::new(task),
        }
    }

    /// Everything recorded so far.
    pub fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// Each request with its `Accept` header.
    pub fn with_accept(&self) -> Vec<(String, String)> {
        let seen = self.requests();
        let accepts = self.accepts.lock().unwrap().clone();
        seen.into_iter().zip(accepts).collect()
    }

    /// The answers to entity queries so far.
    pub fn query_answers(&self) -> Vec<String> {
        self.query_answers.lock().unwrap().clone()
    }

    /// What was recorded after the first `from` requests.
    pub fn since(&self, from: usize) -> Vec<String> {
        self.requests().split_off(from)
    }
}

async fn forward(
    client: reqwest::Client,
    log: Arc<Mutex<Vec<String>>>,
    answers: Arc<Mutex<Vec<String>>>,
    upstream: u16,
    request: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or(path.clone(), |pq| pq.as_str().to_owned());
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    // The account segment says nothing; drop it so tests compare the table and key part.
    let shown = path.splitn(3, '/').nth(2).unwrap_or_default().to_owned();
    let shown = format!("{} /{}", parts.method, percent_decoded(&shown));
    let query = shown.starts_with("GET") && shown.ends_with("()");
    log.lock().unwrap().push(shown);
    let mut outgoing = client.request(
        parts.method.clone(),
        format!("http://127.0.0.1:{upstream}{path_and_query}"),
    );
    for (name, value) in &parts.headers {
        if name != axum::http::header::HOST {
            outgoing = outgoing.header(name, value);
        }
    }
    let answer = outgoing.body(body).send().await.expect("Azurite answers");
    let mut response = axum::response::Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if name != axum::http::header::TRANSFER_ENCODING && name != axum::http::header::CONNECTION {
            response = response.header(name, value);
        }
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    if query {
        answers
            .lock()
            .unwrap()
            .push(String::from_utf8_lossy(&bytes).into_owned());
    }
    response.body(axum::body::Body::from(bytes)).unwrap()
}

fn percent_decoded(text: &str) -> String {
    text.replace("%27", "'")
        .replace("%28", "(")
        .replace("%29", ")")
        .replace("%3A", ":")
}
