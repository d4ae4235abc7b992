//! Index watermarks are only ever raised: a removal on an instance that never read a higher
//! watermark (its clock behind the instance that wrote it) still writes above it.

use crate::harness::*;
use serde_json::json;

fn revision_of(row: &serde_json::Value) -> u64 {
    row["revision"].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_never_lowers_a_watermark() {
    let h = Handler::start().await;
    // Registered first: its tables (the state table among them) exist from then on.
    h.register_ok(&json!({"serviceName": "wm", "serviceType": "api",
                          "endpoint": "http://127.0.0.1:9/"}))
        .await;
    // Written by an instance whose clock is a day ahead: higher than anything this one would pick.
    let ahead = (chrono::Utc::now() + chrono::Duration::days(1)).timestamp_micros() as u64;
    for row in ["wm", "~all"] {
        h.tables()
            .upsert(
                &h.state_table,
                &json!({"PartitionKey": "~index", "RowKey": row,
                        "revision": ahead.to_string(), "revision@odata.type": "Edm.Int64"}),
            )
            .await;
    }
    let r = h.deregister("serviceName=wm&serviceType=api").await;
    assert_eq!(r.status, 200, "{}", r.text);
    for row in ["wm", "~all"] {
        let mark = h
            .tables()
            .row(&h.state_table, "~index", row)
            .await
            .expect("a watermark");
        assert!(
            revision_of(&mark) > ahead,
            "{row}: {mark} lowered below {ahead}"
        );
    }
}
