//! The local Event Hubs endpoint (`tools/eventhubs-local`) that `scripts/eventhubs.sh` starts:
//! where it listens, its control plane (hubs created per test, events appended), and the official
//! Rust consumer client pointed at it.

use azure_messaging_eventhubs::{
    ConsumerClient, OpenReceiverOptions, StartLocation, StartPosition,
};
use eventhub_checkpointstore::azure_core::{
    self,
    credentials::{AccessToken, TokenCredential, TokenRequestOptions},
    time::{Duration, OffsetDateTime},
};
use eventhub_checkpointstore::{balancer::PartitionBalancer, checkpointer::Checkpointer};
use futures::StreamExt;
use serde_json::{json, Value};
use std::{
    cell::RefCell,
    collections::{BTreeMap, BTreeSet},
    io::{Read, Write},
    net::TcpStream,
    rc::Rc,
    sync::Arc,
};

/// The namespace the clients see: the host given to `open`, without a port (the Python client's
/// connection string names the same), so both languages' checkpoint records share names.
pub const NAMESPACE: &str = "localhost";

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set. Run the tests with scripts/test.sh, which builds and starts the \
             local Event Hubs endpoint (scripts/eventhubs.sh), or start it yourself."
        )
    })
}

/// The endpoint's AMQP address, `amqp://127.0.0.1:PORT`.
pub fn amqp_url() -> String {
    var("EVENTHUBS_LOCAL_AMQP")
}

/// The endpoint's control plane, `http://127.0.0.1:PORT`.
pub fn control_url() -> String {
    var("EVENTHUBS_LOCAL_CONTROL")
}

/// One HTTP request to the control plane; (status, JSON body).
fn control(method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = control_url();
    let address = url.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = TcpStream::connect(address).expect("the endpoint's control plane answers");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .expect("an HTTP status");
    let json = response
        .split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str(body).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

/// What a hub is created with: partitions, events in each at once, and a live producer.
#[derive(Clone, Copy, Debug)]
pub struct HubSpec {
    pub partitions: usize,
    pub preload: usize,
    /// Events appended per second per partition (0: none).
    pub rate: f64,
    /// Events per partition at which the producer stops.
    pub total: Option<usize>,
}

/// Creates a hub no other test uses, named after `prefix`; returns its name.
pub fn create_hub(prefix: &str, spec: HubSpec) -> String {
    let name = format!("{prefix}-{}", crate::unique_container());
    let (status, answer) = control(
        "PUT",
        &format!("/hubs/{name}"),
        Some(json!({
            "partitions": spec.partitions,
            "preload": spec.preload,
            "rate": spec.rate,
            "total": spec.total,
        })),
    );
    assert_eq!(status, 201, "creating hub {name}: {answer}");
    name
}

/// Appends `count` events to one partition now; the last sequence number.
pub fn append(hub: &str, partition: &str, count: usize) -> i64 {
    let (status, answer) = control(
        "POST",
        &format!("/hubs/{hub}/partitions/{partition}/events?count={count}"),
        None,
    );
    assert_eq!(status, 200, "{answer}");
    answer["last_sequence_number"]
        .as_i64()
        .expect("a sequence number")
}

/// The number of events in each partition, by id.
pub fn event_counts(hub: &str) -> Vec<(String, u64)> {
    let (status, answer) = control("GET", &format!("/hubs/{hub}"), None);
    assert_eq!(status, 200, "{answer}");
    answer["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap_or_default().to_owned(),
                p["events"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// A token credential for the endpoint, which takes any token: the client refreshes tokens 6
/// minutes before they expire, so these last two hours.
#[derive(Debug)]
pub struct LocalToken;

#[async_trait::async_trait]
impl TokenCredential for LocalToken {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            "local-token",
            OffsetDateTime::now_utc() + Duration::hours(2),
        ))
    }
}

/// The official consumer client on `hub`'s consumer group `group` at the local endpoint.
pub async fn consumer_client(hub: &str, group: &str) -> ConsumerClient {
    open(hub, group).await
}

/// A consumer client on `hub`'s consumer group `group` and the hub's partition ids, asking a new
/// client when the first answer fails (see [`consume`] for why a client can fail).
pub async fn consumer_client_and_partitions(
    hub: &str,
    group: &str,
) -> (ConsumerClient, Vec<String>) {
    let mut attempt = 0;
    loop {
        let client = open(hub, group).await;
        match client.get_eventhub_properties().await {
            Ok(properties) => return (client, properties.partition_ids),
            Err(err) if attempt < 10 => {
                attempt += 1;
                tracing::warn!(%err, attempt, "reading the hub's properties");
            }
            Err(err) => panic!("reading the properties of {hub}: {err}"),
        }
    }
}

/// What a consumer built on [`consume`] did, as it happened.
#[derive(Debug)]
pub enum Fact<'a> {
    /// It started reading `partition` after event `after` (`None`: from the start).
    Resumed {
        partition: &'a str,
        after: Option<i64>,
    },
    /// It processed events `first..=last` of `partition` (recorded in the checkpointer).
    Processed {
        partition: &'a str,
        first: i64,
        last: i64,
    },
    /// The checkpointer wrote `partition`'s position at `seq`, and the store acknowledged it.
    Checkpointed { partition: &'a str, seq: i64 },
    /// It stopped reading `partition`.
    Stopped {
        partition: &'a str,
        end: &'a ReadEnd,
    },
    /// Its consumer client failed and was replaced by a new one (a new AMQP connection).
    Reconnected { why: &'a str },
}

/// How one partition's reading ended.
#[derive(Debug)]
pub enum ReadEnd {
    /// The partition left the balancer's `ready()`: events received since were not processed.
    Left,
    /// The consumer was asked to stop.
    Stopped,
    /// The receiver could not be opened or failed.
    Failed(String),
}

/// A consumer of this crate's own, as the demo's consumers and the end-to-end tests run it: the
/// official consumer client's partition receivers, read while their partition is in
/// `balancer.ready()` (checked before each event), each event recorded in `checkpointer`. A
/// partition newly ready resumes after the store's checkpoint; one whose receiver failed while it
/// stayed ready resumes after the last event this consumer processed. Runs until `stop` turns
/// true and every reader has stopped. The caller runs the balancer.
///
/// A reader that fails makes the consumer open a new client before reading on: the 0.15 client
/// can lose its AMQP connection when one of its receivers or sessions closes (a race between
/// its link and session teardown and the peer's replies) and then never reconnects.
pub async fn consume(
    client: ConsumerClient,
    store: Arc<dyn eventhub_checkpointstore::CheckpointStore>,
    balancer: Rc<PartitionBalancer>,
    checkpointer: Arc<Checkpointer>,
    stop: tokio::sync::watch::Receiver<bool>,
    report: impl Fn(Fact<'_>) + 'static,
) {
    let scope = balancer.scope().clone();
    let (hub, group) = (scope.eventhub_name.clone(), scope.consumer_group.clone());
    let report = Rc::new(report);
    let client = Rc::new(RefCell::new(Rc::new(client)));
    // Partitions being read, and where to resume those whose reader failed while ready.
    let reading: Rc<RefCell<BTreeSet<String>>> = Rc::default();
    let resume: Rc<RefCell<BTreeMap<String, Option<i64>>>> = Rc::default();
    let mut look = tokio::time::interval(std::time::Duration::from_millis(100));
    while !*stop.borrow() {
        look.tick().await;
        let ready = balancer.ready();
        resume.borrow_mut().retain(|p, _| ready.contains(p));
        let new: Vec<String> = ready
            .into_iter()
            .filter(|p| !reading.borrow().contains(p))
            .collect();
        if new.is_empty() {
            continue;
        }
        let stored = match store.list_checkpoints(&scope).await {
            Ok(stored) => stored,
            Err(err) => {
                tracing::warn!(%err, "listing checkpoints");
                continue;
            }
        };
        for p in new {
            let after = resume.borrow_mut().remove(&p).unwrap_or_else(|| {
                stored
                    .iter()
                    .find(|c| c.partition_id == p)
                    .and_then(|c| c.sequence_number)
            });
            report(Fact::Resumed {
                partition: &p,
                after,
            });
            reading.borrow_mut().insert(p.clone());
            let this_client = client.borrow().clone();
            let (client, balancer, checkpointer, reading, resume, report) = (
                client.clone(),
                balancer.clone(),
                checkpointer.clone(),
                reading.clone(),
                resume.clone(),
                report.clone(),
            );
            let (hub, group, mut stop) = (hub.clone(), group.clone(), stop.clone());
            tokio::task::spawn_local(async move {
                let stopped = async move {
                    let _ = stop.wait_for(|stopped| *stopped).await;
                };
                let (end, last) = read_while_ready(
                    &this_client,
                    &balancer,
                    &checkpointer,
                    &p,
                    after,
                    stopped,
                    &*report,
                )
                .await;
                if let ReadEnd::Failed(why) = &end {
                    resume.borrow_mut().insert(p.clone(), last.or(after));
                    // The first reader to fail on a client replaces it.
                    if Rc::ptr_eq(&client.borrow(), &this_client) {
                        let fresh = open(&hub, &group).await;
                        *client.borrow_mut() = Rc::new(fresh);
                        report(Fact::Reconnected { why });
                    }
                }
                report(Fact::Stopped {
                    partition: &p,
                    end: &end,
                });
                reading.borrow_mut().remove(&p);
            });
        }
    }
    while !reading.borrow().is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Opens a consumer client, retrying (the 0.15 client's first requests can fail the same way
/// its receivers do).
async fn open(hub: &str, group: &str) -> ConsumerClient {
    let mut attempt = 0;
    loop {
        let client = ConsumerClient::builder()
            .with_custom_endpoint(amqp_url())
            .with_consumer_group(group.to_owned())
            .open(NAMESPACE, hub.to_owned(), Arc::new(LocalToken))
            .await;
        match client {
            Ok(client) => return client,
            Err(err) if attempt < 10 => {
                attempt += 1;
                tracing::warn!(%err, attempt, "opening a consumer client");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(err) => panic!("opening a consumer client on {hub}: {err}"),
        }
    }
}

thread_local! {
    /// Serializes opening receivers on this thread (a consumer runs on one).
    static OPENING: Rc<tokio::sync::Mutex<()>> = Rc::default();
}

/// Reads one partition from just after `after` (or its start) while it is in
/// `balancer.ready()`; how it ended, and the last event it processed. The receiver is closed
/// with no receive in flight (the stream is dropped first).
async fn read_while_ready(
    client: &ConsumerClient,
    balancer: &PartitionBalancer,
    checkpointer: &Checkpointer,
    partition: &str,
    after: Option<i64>,
    stop: impl std::future::Future<Output = ()>,
    report: &dyn Fn(Fact<'_>),
) -> (ReadEnd, Option<i64>) {
    let start = StartPosition {
        location: after.map_or(StartLocation::Earliest, StartLocation::SequenceNumber),
        inclusive: false,
    };
    // One receiver opens at a time per client: the 0.15 client authorizes each partition on a
    // CBS session of its own, and concurrent ones make its connection fail far more often.
    let opening = OPENING.with(|lock| lock.clone());
    let guard = opening.lock().await;
    let receiver = client
        .open_receiver_on_partition(
            partition.to_owned(),
            Some(OpenReceiverOptions {
                start_position: Some(start),
                ..Default::default()
            }),
        )
        .await;
    drop(guard);
    let receiver = match receiver {
        Ok(receiver) => receiver,
        Err(err) => return (ReadEnd::Failed(format!("opening a receiver: {err}")), None),
    };
    let mut last = None;
    let end = {
        let mut batches = receiver.stream_events().ready_chunks(512);
        let mut stop = std::pin::pin!(stop);
        'reading: loop {
            let batch = tokio::select! {
                batch = batches.next() => batch,
                () = &mut stop => break ReadEnd::Stopped,
            };
            let Some(batch) = batch else {
                break ReadEnd::Failed("the receiver's stream ended".into());
            };
            let mut end = None;
            for event in batch {
                let event = match event {
                    Ok(event) => event,
                    Err(err) => {
                        end = Some(ReadEnd::Failed(err.to_string()));
                        break;
                    }
                };
                if !balancer.ready().contains(partition) {
                    end = Some(ReadEnd::Left);
                    break;
                }
                let Some(seq) = event.sequence_number() else {
                    continue;
                };
                last = Some(seq);
                // Each event is reported processed before its position is recorded (which may
                // write the checkpoint): a consumer killed between the two would otherwise have
                // events resumed after but never reported, which reads as events lost.
                report(Fact::Processed {
                    partition,
                    first: seq,
                    last: seq,
                });
                match checkpointer
                    .record(partition, event.offset().clone(), Some(seq))
                    .await
                {
                    Ok(true) => report(Fact::Checkpointed { partition, seq }),
                    Ok(false) => {}
                    Err(err) => tracing::warn!(partition, seq, %err, "checkpoint failed"),
                }
            }
            if let Some(end) = end {
                break 'reading end;
            }
        }
    };
    if let Err(err) = receiver.close().await {
        tracing::debug!(partition, %err, "closing a receiver");
    }
    (end, last)
}
