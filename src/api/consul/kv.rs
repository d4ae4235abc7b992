//! `GET /v1/kv/<key>`: the registry keeps no key-value data, so every key is a 404, but one that
//! carries an index and blocks like any other read. Fabio long-polls `/v1/kv/fabio/config`; an
//! immediate 404 would make it spin. It needs no storage: its index is a constant.

use super::{consul, hold, parse_query, with_index, AppState};
use crate::error::ApiResult;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::Response;

/// The index of an empty key space: constant, so a held request waits its whole hold.
const KV_INDEX: u64 = 1;

pub async fn get(State(state): State<AppState>, uri: Uri) -> ApiResult<Response> {
    let api = consul(&state);
    let query = parse_query(&uri, &api.settings)?;
    // The index never moves: a held request just waits out its hold, with no snapshot and so no
    // storage read (a store that is down must not turn Fabio's long poll into a 503 and a spin).
    if query.index.is_some_and(|seen| seen >= KV_INDEX) {
        tokio::select! {
            () = tokio::time::sleep(hold::hold_for(&query, api.settings.max_hold)) => {}
            () = api.catalog.stopped() => {}
        }
    }
    Ok(with_index(StatusCode::NOT_FOUND, KV_INDEX, Vec::new()))
}
