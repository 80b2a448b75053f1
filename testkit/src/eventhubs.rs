//! The local Event Hubs endpoint (`tools/eventhubs-local`) that `scripts/eventhubs.sh` starts:
//! where it listens, its control plane (hubs created per test, events appended, connections
//! cut), and the official Rust consumer client and this crate's processor pointed at it.

use azure_messaging_eventhubs::ConsumerClient;
use eventhub_checkpointstore::azure_core::{
    self,
    credentials::{AccessToken, TokenCredential, TokenRequestOptions},
    time::{Duration, OffsetDateTime},
};
use serde_json::{json, Value};
use std::{
    io::{Read, Write},
    net::TcpStream,
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

/// The official `EventProcessor` as the tests and benches run it: greedy, balancing every
/// `interval`, claims expiring after `expiration`, a partition with no checkpoint read from its
/// first event; with `max_partitions`, it sees only the hub's first partitions.
pub async fn official_processor(
    consumer: ConsumerClient,
    store: Arc<dyn azure_messaging_eventhubs::CheckpointStore + Send + Sync>,
    interval: std::time::Duration,
    expiration: std::time::Duration,
    max_partitions: Option<usize>,
) -> Arc<azure_messaging_eventhubs::EventProcessor> {
    use azure_messaging_eventhubs::{
        models::StartPositions, EventProcessor, ProcessorStrategy, StartLocation, StartPosition,
    };
    let mut builder = EventProcessor::builder();
    if let Some(max) = max_partitions {
        builder = builder.with_max_partition_count(max);
    }
    builder
        .with_load_balancing_strategy(ProcessorStrategy::Greedy)
        .with_update_interval(interval.try_into().expect("an interval"))
        .with_partition_expiration_duration(expiration.try_into().expect("an expiration"))
        .with_start_positions(StartPositions {
            default: StartPosition {
                location: StartLocation::Earliest,
                ..Default::default()
            },
            ..Default::default()
        })
        .build(consumer, store)
        .await
        .expect("an official processor")
}

/// Events arriving all along, whatever the machine's speed: 2 per partition every 100 ms on a
/// thread of its own, until [`stop`](Producer::stop).
pub struct Producer {
    producing: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Producer {
    /// Starts appending to partitions `0..partitions` of `hub`.
    pub fn start(hub: &str, partitions: usize) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        let producing = std::sync::Arc::new(AtomicBool::new(true));
        let thread = std::thread::spawn({
            let (hub, producing) = (hub.to_owned(), producing.clone());
            move || {
                while producing.load(Ordering::Relaxed) {
                    for p in 0..partitions {
                        append(&hub, &p.to_string(), 2);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            }
        });
        Self { producing, thread }
    }

    /// Stops appending; returns once the last append is done.
    pub fn stop(self) {
        self.producing
            .store(false, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().expect("the producer thread");
    }
}

/// Cuts every client connection of the endpoint now, and refuses new ones for `refuse`; how
/// many were cut.
pub fn cut_connections(refuse: std::time::Duration) -> u64 {
    let (status, answer) = control(
        "POST",
        &format!("/faults/cut?refuse_ms={}", refuse.as_millis()),
        None,
    );
    assert_eq!(status, 200, "{answer}");
    answer["cut"].as_u64().expect("a count")
}

/// Ends the client connections that used `hub` now: closed with the AMQP error `condition` (as
/// the service closes them), or without one cut (the socket shut down, as a network or a load
/// balancer cuts them); the hub's receivers are refused for `refuse`. How many were ended.
/// Other hubs' connections are not touched.
pub fn end_connections(hub: &str, condition: Option<&str>, refuse: std::time::Duration) -> u64 {
    let condition = condition.map_or(String::new(), |c| format!("&condition={c}"));
    let (status, answer) = control(
        "POST",
        &format!(
            "/faults/cut?refuse_ms={}&hub={hub}{condition}",
            refuse.as_millis()
        ),
        None,
    );
    assert_eq!(status, 200, "{answer}");
    answer["cut"].as_u64().expect("a count")
}

/// A fault on one partition of `hub`, as the endpoint's control plane takes it
/// (`detach?condition=...`, `refuse?ms=...`, `pause`, `resume`, `expire?before=...`); its answer.
pub fn partition_fault(hub: &str, partition: &str, fault: &str) -> Value {
    let (status, answer) = control(
        "POST",
        &format!("/hubs/{hub}/partitions/{partition}/{fault}"),
        None,
    );
    assert_eq!(status, 200, "{fault}: {answer}");
    answer
}

/// Detaches every receiver of one partition with the AMQP error `condition`; how many.
pub fn detach_receivers(hub: &str, partition: &str, condition: &str) -> u64 {
    partition_fault(hub, partition, &format!("detach?condition={condition}"))["detached"]
        .as_u64()
        .expect("a count")
}

/// Expires the events of one partition before sequence number `before` (retention); the new
/// begin sequence number.
pub fn expire(hub: &str, partition: &str, before: i64) -> i64 {
    partition_fault(hub, partition, &format!("expire?before={before}"))["begin_sequence_number"]
        .as_i64()
        .expect("a sequence number")
}

/// The hub's partitions as the control plane reports them.
fn partitions(hub: &str) -> Vec<Value> {
    let (status, answer) = control("GET", &format!("/hubs/{hub}"), None);
    assert_eq!(status, 200, "{answer}");
    answer["partitions"].as_array().expect("partitions").clone()
}

/// How many receivers of consumer `group` are attached to one partition now.
pub fn receivers(hub: &str, partition: &str, group: &str) -> u64 {
    partitions(hub)
        .iter()
        .find(|p| p["id"] == partition)
        .map(|p| {
            p["receivers"][group.to_ascii_lowercase()]
                .as_u64()
                .unwrap_or(0)
        })
        .expect("the partition")
}

/// How many client connections the endpoint has now.
pub fn live_connections() -> u64 {
    let (status, answer) = control("GET", "/faults", None);
    assert_eq!(status, 200, "{answer}");
    answer["live"].as_u64().expect("a count")
}

/// The number of events in each partition, by id.
pub fn event_counts(hub: &str) -> Vec<(String, u64)> {
    partitions(hub)
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

/// The crate's processor's connection to `hub`'s consumer group `group` at the local endpoint.
pub fn connection(hub: &str, group: &str) -> eventhub_checkpointstore::processor::Connection {
    eventhub_checkpointstore::processor::Connection::new(NAMESPACE, hub, Arc::new(LocalToken))
        .with_custom_endpoint(amqp_url())
        .with_consumer_group(group)
}

/// The official consumer client on `hub`'s consumer group `group` at the local endpoint.
pub async fn consumer_client(hub: &str, group: &str) -> ConsumerClient {
    open(hub, group).await
}

/// A consumer client on `hub`'s consumer group `group` and the hub's partition ids, asking a new
/// client when the first answer fails (the 0.15 client can lose its connection and not
/// reconnect).
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

/// Opens a consumer client, retrying (the 0.15 client's first requests can fail the same way
/// its receivers do).
async fn open(hub: &str, group: &str) -> ConsumerClient {
    let connection = connection(hub, group);
    let mut attempt = 0;
    loop {
        match connection.open().await {
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
