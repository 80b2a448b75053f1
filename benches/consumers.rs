//! This crate's `Processor` against the official `EventProcessor` (`azure_messaging_eventhubs`
//! 0.15), in one run, over the same store (`BlobCheckpointStore` on Azurite) and the same local
//! Event Hubs endpoint, both checkpointing every 100 events and balancing greedily every second.
//!
//! - Throughput: one consumer alone reads a hub of 8 partitions x 5,000 preloaded events:
//!   events/s (first event to last), CPU of this process per 1,000 events (the consumer, its
//!   client and store; the endpoint and Azurite are other processes), and storage requests per
//!   1,000 events (counted on the store's pipeline). Median of three runs by events/s.
//! - Scale-out: events arrive all along (2 per partition every 100 ms); one consumer, then a
//!   second, then two more, each step settled (every consumer its share, by the store, for three
//!   intervals); then every event is processed and the events processed more than once counted.
//!
//! ```sh
//! scripts/bench.sh consumers
//! ```

use azure_messaging_eventhubs::processor::PartitionClient;
use eventhub_checkpointstore::{
    balancer::Strategy, checkpointer::CheckpointerOptions, processor::Processor,
    BlobCheckpointStore, BlobCheckpointStoreOptions, CheckpointStore, Scope,
};
use eventhub_checkpointstore_testkit::{
    self as common,
    eventhubs::{self, create_hub, HubSpec},
    Recorder,
};
use futures::StreamExt;
use std::{
    collections::{BTreeMap, HashMap},
    num::NonZeroU64,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

const PARTITIONS: usize = 8;
const EVENTS: usize = 5_000;
const REPS: usize = 3;
const EVERY: u64 = 100;
const INTERVAL: Duration = Duration::from_secs(1);
const EXPIRATION: Duration = Duration::from_secs(10);
const DEADLINE: Duration = Duration::from_secs(180);

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Official,
    Ours,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Official => "official EventProcessor 0.15",
            Kind::Ours => "this crate's Processor",
        }
    }
}

/// Every event processed, and when the first and last came.
#[derive(Default)]
struct Seen {
    counts: Mutex<HashMap<(String, i64), u32>>,
    events: AtomicU64,
    first: Mutex<Option<Instant>>,
    last: Mutex<Option<Instant>>,
}

impl Seen {
    fn saw(&self, partition: &str, seq: i64) {
        let now = Instant::now();
        self.first.lock().unwrap().get_or_insert(now);
        *self.last.lock().unwrap() = Some(now);
        *self
            .counts
            .lock()
            .unwrap()
            .entry((partition.to_owned(), seq))
            .or_default() += 1;
        self.events.fetch_add(1, Ordering::Relaxed);
    }

    fn distinct(&self) -> usize {
        self.counts.lock().unwrap().len()
    }

    fn twice(&self) -> u64 {
        let counts = self.counts.lock().unwrap();
        counts.values().map(|n| u64::from(n - 1)).sum()
    }
}

/// One consumer of `kind` on a thread of its own until `stop`.
fn consumer(
    kind: Kind,
    name: String,
    hub: String,
    store: Arc<BlobCheckpointStore>,
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // The official processor's partition streams are not `Send`.
        let local = tokio::task::LocalSet::new();
        match kind {
            Kind::Official => local.block_on(&runtime, official(hub, store, seen, stop)),
            Kind::Ours => local.block_on(&runtime, ours(name, hub, store, seen, stop)),
        }
    })
}

async fn official(
    hub: String,
    store: Arc<BlobCheckpointStore>,
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
) {
    let (client, _) = eventhubs::consumer_client_and_partitions(&hub, "$Default").await;
    let processor = eventhubs::official_processor(client, store, INTERVAL, EXPIRATION, None).await;
    let running = tokio::task::spawn_local({
        let processor = processor.clone();
        async move { processor.run().await }
    });
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    while !stop.load(Ordering::Relaxed) {
        tokio::select! {
            client = processor.next_partition_client() => {
                tokio::task::spawn_local(read_official(client.unwrap(), seen.clone()));
            }
            _ = tick.tick() => {}
        }
    }
    processor.shutdown().await.unwrap();
    let _ = running.await;
}

async fn read_official(client: Arc<PartitionClient>, seen: Arc<Seen>) {
    let partition = client.get_partition_id().to_owned();
    let mut events = client.stream_events();
    while let Some(Ok(event)) = events.next().await {
        let seq = event.sequence_number().unwrap_or(0);
        seen.saw(&partition, seq);
        if (seq as u64) % EVERY == EVERY - 1 {
            let _ = client.update_checkpoint(&event).await;
        }
    }
}

async fn ours(
    name: String,
    hub: String,
    store: Arc<BlobCheckpointStore>,
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
) {
    let processor = Processor::builder()
        .interval(INTERVAL)
        .expiration(EXPIRATION)
        .strategy(Strategy::Greedy)
        .checkpointer_options(CheckpointerOptions {
            every_events: NonZeroU64::new(EVERY),
            every: None,
        })
        .owner_id(name)
        .start(store, eventhubs::connection(&hub, "$Default"))
        .await
        .unwrap();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    while !stop.load(Ordering::Relaxed) {
        tokio::select! {
            partition = processor.next_partition() => {
                let Some(mut partition) = partition else { break };
                let seen = seen.clone();
                tokio::task::spawn_local(async move {
                    let id = partition.partition_id().to_owned();
                    while let Some(event) = partition.next_event().await {
                        seen.saw(&id, event.sequence_number().unwrap_or(0));
                        let _ = partition.checkpoint(&event).await;
                    }
                });
            }
            _ = tick.tick() => {}
        }
    }
    processor.stop().await.unwrap();
}

/// CPU time of this process so far (user and system, every thread), from `/proc/self/stat`.
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which may hold spaces): state is the first, utime the 12th.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // USER_HZ, which /proc reports in, is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

fn fresh_store(recorder: Option<&Recorder>) -> (String, Arc<BlobCheckpointStore>) {
    let container = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(common::fresh_container());
    let options = recorder.map(|r| r.install(BlobCheckpointStoreOptions::default()));
    let store = BlobCheckpointStore::from_connection_string(
        &common::connection_string(),
        &container,
        options,
    )
    .unwrap();
    (container, Arc::new(store))
}

struct Throughput {
    events_per_second: f64,
    cpu_ms_per_1000: f64,
    requests_per_1000: f64,
}

fn throughput(kind: Kind) -> Throughput {
    let hub = create_hub(
        "versus",
        HubSpec {
            partitions: PARTITIONS,
            preload: EVENTS,
            rate: 0.0,
            total: None,
        },
    );
    let recorder = Recorder::default();
    let (_, store) = fresh_store(Some(&recorder));
    let (seen, stop) = (Arc::new(Seen::default()), Arc::new(AtomicBool::new(false)));
    let cpu_before = cpu();
    let reader = consumer(kind, "one".into(), hub, store, seen.clone(), stop.clone());
    let total = (PARTITIONS * EVENTS) as u64;
    let deadline = Instant::now() + DEADLINE;
    while seen.events.load(Ordering::Relaxed) < total {
        assert!(
            Instant::now() < deadline,
            "{}: not every event read",
            kind.name()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let cpu_used = cpu() - cpu_before;
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    let took = seen.last.lock().unwrap().unwrap() - seen.first.lock().unwrap().unwrap();
    let events = seen.events.load(Ordering::Relaxed) as f64;
    Throughput {
        events_per_second: events / took.as_secs_f64(),
        cpu_ms_per_1000: cpu_used.as_secs_f64() * 1000.0 * 1000.0 / events,
        requests_per_1000: recorder.take().len() as f64 * 1000.0 / events,
    }
}

/// Owners' shares by the store, settled at `shares` for three intervals; `false` if not within
/// the deadline.
fn settle(store: &BlobCheckpointStore, scope: &Scope, shares: &[usize]) -> bool {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let deadline = Instant::now() + DEADLINE;
    let mut stable = (BTreeMap::new(), 0);
    while stable.1 < 3 {
        if Instant::now() > deadline {
            return false;
        }
        let now = time::OffsetDateTime::now_utc();
        let owners: BTreeMap<String, String> = runtime
            .block_on(store.list_ownership(scope))
            .unwrap()
            .into_iter()
            .filter(|o| o.last_modified.is_some_and(|t| now - t < EXPIRATION))
            .filter_map(|o| Some((o.partition_id, o.owner_id?)))
            .collect();
        let mut per: BTreeMap<&String, usize> = BTreeMap::new();
        for owner in owners.values() {
            *per.entry(owner).or_default() += 1;
        }
        let mut held: Vec<usize> = per.into_values().collect();
        held.sort_unstable();
        let settled = owners.len() == PARTITIONS && held == shares;
        stable = if settled && owners == stable.0 {
            (owners, stable.1 + 1)
        } else {
            (owners, 0)
        };
        std::thread::sleep(INTERVAL);
    }
    true
}

/// Events processed more than once as the consumers grow 1 -> 2 -> 4, or why it could not tell.
fn scale_out(kind: Kind) -> Result<(u64, u64), String> {
    let hub = create_hub(
        "versusscale",
        HubSpec {
            partitions: PARTITIONS,
            preload: 0,
            rate: 0.0,
            total: None,
        },
    );
    let (_, store) = fresh_store(None);
    let scope = Scope::new(eventhubs::NAMESPACE, &hub, "$Default");
    let (seen, stop) = (Arc::new(Seen::default()), Arc::new(AtomicBool::new(false)));
    let producer = eventhubs::Producer::start(&hub, PARTITIONS);
    let mut consumers = Vec::new();
    let mut start = |name: &str| {
        consumers.push(consumer(
            kind,
            name.into(),
            hub.clone(),
            store.clone(),
            seen.clone(),
            stop.clone(),
        ))
    };
    let mut outcome = Ok(());
    start("c1");
    for (names, shares) in [
        (&[][..], &[8][..]),
        (&["c2"][..], &[4, 4][..]),
        (&["c3", "c4"][..], &[2, 2, 2, 2][..]),
    ] {
        names.iter().for_each(|n| start(n));
        if !settle(&store, &scope, shares) {
            outcome = Err(format!("no stable split at {shares:?}"));
            break;
        }
    }
    producer.stop();
    let total: usize = eventhubs::event_counts(&hub)
        .iter()
        .map(|(_, n)| *n as usize)
        .sum();
    let deadline = Instant::now() + DEADLINE;
    while outcome.is_ok() && seen.distinct() < total {
        if Instant::now() > deadline {
            outcome = Err(format!(
                "{} of {total} events never processed",
                total - seen.distinct()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    for consumer in consumers {
        let _ = consumer.join();
    }
    outcome.map(|()| (seen.twice(), total as u64))
}

fn main() {
    println!(
        "one consumer alone: {PARTITIONS} partitions x {EVENTS} preloaded events, checkpoints every \
         {EVERY} events; median of {REPS} by events/s\n"
    );
    println!(
        "{:<30} {:>9} {:>14} {:>20} {:>28}",
        "consumer", "events/s", "CPU ms/1000", "storage req/1000", "reprocessed at 1 -> 2 -> 4"
    );
    let mut rows = Vec::new();
    for kind in [Kind::Official, Kind::Ours] {
        let mut runs: Vec<Throughput> = (0..REPS).map(|_| throughput(kind)).collect();
        runs.sort_by(|a, b| a.events_per_second.total_cmp(&b.events_per_second));
        let row = runs.swap_remove(REPS / 2);
        let scaled = match scale_out(kind) {
            Ok((twice, total)) => format!("{twice} of {total}"),
            Err(why) => format!("n/a: {why}"),
        };
        println!(
            "{:<30} {:>9.0} {:>14.1} {:>20.1} {:>28}",
            kind.name(),
            row.events_per_second,
            row.cpu_ms_per_1000,
            row.requests_per_1000,
            scaled
        );
        rows.push(row);
    }
    let (official, ours) = (&rows[0], &rows[1]);
    println!(
        "\nthis crate's Processor / official: events/s x{:.2}, CPU per event x{:.2}, storage \
         requests per event x{:.2}",
        ours.events_per_second / official.events_per_second,
        ours.cpu_ms_per_1000 / official.cpu_ms_per_1000,
        ours.requests_per_1000 / official.requests_per_1000
    );
}
