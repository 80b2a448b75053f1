//! Two official `EventProcessor`s (`azure_messaging_eventhubs` 0.15) on one `BlobCheckpointStore`
//! container, reading real events from the local Event Hubs endpoint: events per second, and
//! storage requests per 1,000 events, by how often they checkpoint.
//!
//! Each row: a hub of 8 partitions preloaded with `EVENTS` events each; processor `a` sees
//! partitions 0-3 (its partition limit), `b` claims 4-7, so nothing moves while they read (see
//! tests/processor.rs for what moving partitions costs the 0.15 client). Both start from the
//! partitions' start; each processes every event and checkpoints every `N`th. Throughput is the
//! events over the time from the first event processed to the last; storage requests are every
//! request either store sent from their start to their stop (listings, claims and renewals,
//! checkpoints), counted on the wire.
//!
//! ```sh
//! scripts/bench.sh processor
//! ```

use azure_messaging_eventhubs::processor::PartitionClient;
use eventhub_checkpointstore::{BlobCheckpointStore, BlobCheckpointStoreOptions};
use eventhub_checkpointstore_testkit::{
    self as common,
    eventhubs::{self, create_hub, HubSpec},
    Recorder,
};
use futures::StreamExt;
use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

const PARTITIONS: usize = 8;
const EVENTS: usize = 2_000;
const REPS: usize = 3;

/// When the bench saw the first and last event, and how many.
#[derive(Default)]
struct Progress {
    events: AtomicU64,
    first: Mutex<Option<Instant>>,
    last: Mutex<Option<Instant>>,
}

impl Progress {
    fn saw(&self) {
        let now = Instant::now();
        self.first.lock().unwrap().get_or_insert(now);
        *self.last.lock().unwrap() = Some(now);
        self.events.fetch_add(1, Ordering::Relaxed);
    }
}

/// One processor on its own thread (partition streams are not `Send`) until `stop`.
fn processor(
    hub: String,
    container: String,
    recorder: Recorder,
    max_partitions: Option<usize>,
    every: Option<i64>,
    progress: Arc<Progress>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, async move {
            let options = recorder.install(BlobCheckpointStoreOptions::default());
            let store = Arc::new(
                BlobCheckpointStore::from_connection_string(
                    &common::connection_string(),
                    &container,
                    Some(options),
                )
                .unwrap(),
            );
            let (client, _) = eventhubs::consumer_client_and_partitions(&hub, "$Default").await;
            let processor = eventhubs::official_processor(
                client,
                store,
                Duration::from_secs(1),
                Duration::from_secs(10),
                max_partitions,
            )
            .await;
            let running = tokio::task::spawn_local({
                let processor = processor.clone();
                async move { processor.run().await }
            });
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            while !stop.load(Ordering::Relaxed) {
                tokio::select! {
                    client = processor.next_partition_client() => {
                        tokio::task::spawn_local(read(client.unwrap(), every, progress.clone()));
                    }
                    _ = tick.tick() => {}
                }
            }
            processor.shutdown().await.unwrap();
            let _ = running.await;
        });
    })
}

async fn read(client: Arc<PartitionClient>, every: Option<i64>, progress: Arc<Progress>) {
    let mut events = client.stream_events();
    while let Some(Ok(event)) = events.next().await {
        progress.saw();
        let seq = event.sequence_number().unwrap_or(0);
        if every.is_some_and(|n| seq % n == n - 1) {
            client.update_checkpoint(&event).await.unwrap();
        }
    }
}

struct Row {
    events_per_second: f64,
    requests_per_1000: BTreeMap<String, f64>,
}

fn run(every: Option<i64>) -> Row {
    let hub = create_hub(
        "bench",
        HubSpec {
            partitions: PARTITIONS,
            preload: EVENTS,
            rate: 0.0,
            total: None,
        },
    );
    let container = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(common::fresh_container());
    let (progress, stop) = (
        Arc::new(Progress::default()),
        Arc::new(AtomicBool::new(false)),
    );
    let recorders = [Recorder::default(), Recorder::default()];
    let a = processor(
        hub.clone(),
        container.clone(),
        recorders[0].clone(),
        Some(PARTITIONS / 2),
        every,
        progress.clone(),
        stop.clone(),
    );
    // `a` claims its half first; `b` then finds the other half unowned.
    while progress.events.load(Ordering::Relaxed) == 0 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let b = processor(
        hub,
        container,
        recorders[1].clone(),
        None,
        every,
        progress.clone(),
        stop.clone(),
    );
    let total = (PARTITIONS * EVENTS) as u64;
    let deadline = Instant::now() + Duration::from_secs(300);
    while progress.events.load(Ordering::Relaxed) < total {
        assert!(
            Instant::now() < deadline,
            "the processors did not read every event"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    a.join().unwrap();
    b.join().unwrap();
    let took = progress.last.lock().unwrap().unwrap() - progress.first.lock().unwrap().unwrap();
    let events = progress.events.load(Ordering::Relaxed);
    let mut requests: BTreeMap<String, f64> = BTreeMap::new();
    for sent in recorders.iter().flat_map(Recorder::take) {
        let kind = match (sent.method.as_str(), sent.operation().as_str()) {
            ("GET", "list") => "list",
            ("PUT", "metadata") if sent.url.path().contains("/checkpoint/") => "checkpoint",
            ("PUT", "put-blob") if sent.url.path().contains("/checkpoint/") => "checkpoint",
            (_, _) if sent.url.path().contains("/ownership/") => "claim",
            _ => "other",
        };
        *requests.entry(kind.to_owned()).or_default() += 1.0;
        *requests.entry("total".to_owned()).or_default() += 1.0;
    }
    for n in requests.values_mut() {
        *n *= 1000.0 / events as f64;
    }
    Row {
        events_per_second: events as f64 / took.as_secs_f64(),
        requests_per_1000: requests,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported.
    println!(
        "two official processors (0.15), {PARTITIONS} partitions x {EVENTS} events, one blob \
         container; median of {REPS} (events/s) and the requests of that run\n"
    );
    println!(
        "{:<22} {:>9} {:>26} {:>8} {:>8} {:>11}",
        "checkpoint every", "events/s", "storage requests/1000 ev", "list", "claim", "checkpoint"
    );
    for every in [None, Some(1000), Some(100), Some(10), Some(1)] {
        let mut rows: Vec<Row> = (0..REPS).map(|_| run(every)).collect();
        rows.sort_by(|x, y| x.events_per_second.total_cmp(&y.events_per_second));
        let row = &rows[REPS / 2];
        let get = |k: &str| row.requests_per_1000.get(k).copied().unwrap_or(0.0);
        println!(
            "{:<22} {:>9.0} {:>26.1} {:>8.1} {:>8.1} {:>11.1}",
            every.map_or("never".to_owned(), |n| if n == 1 {
                "every event".to_owned()
            } else {
                format!("{n} events")
            }),
            row.events_per_second,
            get("total"),
            get("list"),
            get("claim"),
            get("checkpoint"),
        );
    }
}
