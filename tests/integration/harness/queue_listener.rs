//! The Functions host's queue listener, imitated: it polls Azurite's queue for a queue-triggered
//! function and posts each message to the handler as the host does, so the `ProbeShard` path is
//! tested through the same envelopes and the same delete, retry and poison rules.
//!
//! From the queue extension's source (`QueueListener`, `QueueProcessor`; docs/functions-host-protocol.md,
//! "The queue trigger"), with the app's own host.json `extensions.queues` settings:
//! - receive up to `batchSize` messages with a 10-minute visibility timeout, fetching again when
//!   fewer than `newBatchThreshold` run, so at most `batchSize + newBatchThreshold` at once;
//! - a message received more than `maxDequeueCount` times goes to `<queue>-poison` unrun;
//! - 2xx with a JSON body: delete; anything else: if it was the `maxDequeueCount`th try, copy to
//!   `<queue>-poison` and delete, else make it visible again after `visibilityTimeout`;
//! - an empty queue: wait from 100 ms doubling up to `maxPollingInterval`.
//!
//! Not imitated: the 5-minute renewal of a running message (tests' invocations end long before
//! the 10-minute visibility would lapse), and scaling across instances.

use super::envelopes::{queue_envelope, QueueDelivery};
use super::handler::{http_client, Handler};
use super::host_routes::QueueTrigger;
use super::library_store::storage_queue;
use serde_json::Value;
use service_registry::store::{ReceivedMessage, StorageQueue};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// host.json's `extensions.queues`, with the extension's defaults for what it leaves out.
#[derive(Debug, Clone, Copy)]
pub struct QueueOptions {
    pub batch_size: usize,
    pub new_batch_threshold: usize,
    pub visibility_timeout: Duration,
    pub max_dequeue_count: u64,
    pub max_polling_interval: Duration,
}

impl QueueOptions {
    pub fn from_host_json(root: &std::path::Path) -> QueueOptions {
        let host: Value =
            serde_json::from_str(&std::fs::read_to_string(root.join("host.json")).unwrap())
                .unwrap();
        let q = &host["extensions"]["queues"];
        let span = |v: &Value, default: Duration| {
            v.as_str().map_or(default, |t| {
                let parts: Vec<u64> = t.split(':').map(|p| p.parse().unwrap()).collect();
                Duration::from_secs(parts[0] * 3600 + parts[1] * 60 + parts[2])
            })
        };
        let batch_size = q["batchSize"].as_u64().unwrap_or(16) as usize;
        QueueOptions {
            batch_size,
            new_batch_threshold: q["newBatchThreshold"]
                .as_u64()
                .map_or(batch_size / 2, |n| n as usize),
            visibility_timeout: span(&q["visibilityTimeout"], Duration::ZERO),
            max_dequeue_count: q["maxDequeueCount"].as_u64().unwrap_or(5),
            max_polling_interval: span(&q["maxPollingInterval"], Duration::from_secs(60)),
        }
    }
}

/// One invocation the imitation made.
#[derive(Debug, Clone)]
pub struct Invoked {
    pub dequeue_count: u64,
    pub status: u16,
    pub body: Value,
}

pub struct QueueHost {
    pub queue: StorageQueue,
    pub poison: StorageQueue,
    invoked: Arc<Mutex<Vec<Invoked>>>,
    task: tokio::task::JoinHandle<()>,
}

impl QueueHost {
    /// Starts polling `trigger`'s queue for `handler`, with `options`.
    pub fn start(
        handler: &Handler,
        connection_string: &str,
        trigger: &QueueTrigger,
        queue_name: &str,
        options: QueueOptions,
    ) -> QueueHost {
        let queue = storage_queue(connection_string, queue_name);
        let poison = storage_queue(connection_string, &format!("{queue_name}-poison"));
        let invoked = Arc::new(Mutex::new(Vec::new()));
        let url = handler.url(&format!("/{}", trigger.function));
        let task = tokio::spawn(listen(
            queue.clone(),
            poison.clone(),
            url,
            trigger.clone(),
            options,
            invoked.clone(),
        ));
        QueueHost {
            queue,
            poison,
            invoked,
            task,
        }
    }

    pub fn invoked(&self) -> Vec<Invoked> {
        self.invoked.lock().unwrap().clone()
    }
}

impl Drop for QueueHost {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn listen(
    queue: StorageQueue,
    poison: StorageQueue,
    url: String,
    trigger: QueueTrigger,
    options: QueueOptions,
    invoked: Arc<Mutex<Vec<Invoked>>>,
) {
    let client = http_client();
    let running = Arc::new(tokio::sync::Semaphore::new(
        options.batch_size + options.new_batch_threshold,
    ));
    let mut idle = Duration::from_millis(100);
    loop {
        let taken = queue
            .receive(options.batch_size as u8, Duration::from_secs(600))
            .await
            .unwrap_or_default();
        if taken.is_empty() {
            tokio::time::sleep(idle).await;
            idle = (idle * 2).min(options.max_polling_interval);
            continue;
        }
        idle = Duration::from_millis(100);
        for message in taken {
            let slot = running.clone().acquire_owned().await.unwrap();
            let (queue, poison, client, url, trigger, invoked) = (
                queue.clone(),
                poison.clone(),
                client.clone(),
                url.clone(),
                trigger.clone(),
                invoked.clone(),
            );
            tokio::spawn(async move {
                process(
                    &queue, &poison, &client, &url, &trigger, options, message, &invoked,
                )
                .await;
                drop(slot);
            });
        }
        // Fetch again once fewer than `newBatchThreshold` run.
        while options.batch_size + options.new_batch_threshold - running.available_permits()
            > options.new_batch_threshold
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn process(
    queue: &StorageQueue,
    poison: &StorageQueue,
    client: &reqwest::Client,
    url: &str,
    trigger: &QueueTrigger,
    options: QueueOptions,
    mut message: ReceivedMessage,
    invoked: &Mutex<Vec<Invoked>>,
) {
    let to_poison = |message: ReceivedMessage| async move {
        poison
            .put(&message.text, Duration::from_secs(3600), Duration::ZERO)
            .await
            .unwrap();
        let _ = queue.delete(&message).await;
    };
    if message.dequeue_count > options.max_dequeue_count {
        to_poison(message).await;
        return;
    }
    let envelope = queue_envelope(
        &trigger.function,
        &trigger.name,
        &QueueDelivery {
            id: &message.id,
            pop_receipt: &message.pop_receipt,
            dequeue_count: message.dequeue_count,
            text: &message.text,
        },
        false,
    );
    let answer = client
        .post(url)
        .header("content-type", "application/json; charset=utf-8")
        .body(envelope.to_string())
        .send()
        .await;
    let (status, body) = match answer {
        Ok(r) => {
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            (status, serde_json::from_str(&text).unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    };
    invoked.lock().unwrap().push(Invoked {
        dequeue_count: message.dequeue_count,
        status,
        body: body.clone(),
    });
    // A 2xx whose body is not a JSON object never completes the invocation in the host.
    if (200..300).contains(&status) && body.is_object() {
        let _ = queue.delete(&message).await;
    } else if message.dequeue_count >= options.max_dequeue_count {
        to_poison(message).await;
    } else {
        let _ = queue
            .renew(
                &mut message,
                options.visibility_timeout.max(Duration::from_secs(1)),
            )
            .await;
    }
}
