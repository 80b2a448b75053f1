//! This crate's processor under faults on the Event Hubs side, on real events from the local
//! endpoint, with ownership and checkpoints in Azurite: every connection cut (and new ones
//! refused for a while), a client that cannot connect again. Every (partition, sequence number)
//! processed is counted.
//!
//! A cut reaches every connection of the endpoint, so these tests take turns (`ALONE`), and
//! live in a test binary of their own: no other test's consumers are connected meanwhile.

use azure_messaging_eventhubs::ConsumerClient;
use eventhub_checkpointstore::{
    processor::{Connection, Processor, StopReason},
    CheckpointStore,
};
use eventhub_checkpointstore_testkit::{
    self as common,
    eventhubs::{self, create_hub, HubSpec},
};
use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

const INTERVAL: Duration = Duration::from_secs(1);
const EXPIRATION: Duration = Duration::from_secs(4);
const DEADLINE: Duration = Duration::from_secs(120);

/// One test at a time: a cut reaches every connection of the endpoint.
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Every (partition, sequence number) processed, with how often, and each partition's
/// resume points and stop reasons.
#[derive(Default)]
struct Seen {
    processed: BTreeMap<(String, i64), usize>,
    resumed: Vec<(String, Option<i64>)>,
    stopped: Vec<(String, Option<StopReason>)>,
}

type Shared = Arc<Mutex<Seen>>;

/// Reads every partition `processor` hands out, checkpointing each event, until it stops.
fn consume(processor: Arc<Processor>, seen: Shared) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut readers = tokio::task::JoinSet::new();
        while let Some(mut partition) = processor.next_partition().await {
            let seen = seen.clone();
            let p = partition.partition_id().to_owned();
            seen.lock()
                .unwrap()
                .resumed
                .push((p.clone(), partition.resumed_after()));
            readers.spawn(async move {
                while let Some(event) = partition.next_event().await {
                    let seq = event.sequence_number().unwrap();
                    *seen
                        .lock()
                        .unwrap()
                        .processed
                        .entry((p.clone(), seq))
                        .or_default() += 1;
                    partition.checkpoint(&event).await.unwrap();
                }
                seen.lock()
                    .unwrap()
                    .stopped
                    .push((p, partition.stop_reason()));
            });
        }
        while readers.join_next().await.is_some() {}
    })
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn processed(seen: &Shared) -> usize {
    seen.lock().unwrap().processed.len()
}

/// Every connection of the endpoint is cut three times while events flow, new connections
/// refused for 1.5 s after each: the processor replaces its client each time and reads on
/// after the last event it handed out. Every event is processed exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_processor_reads_on_across_cut_connections() {
    let _alone = ALONE.lock().await;
    let hub = create_hub(
        "cuts",
        HubSpec {
            partitions: 4,
            preload: 50,
            rate: 20.0,
            total: Some(300),
        },
    );
    let container = common::fresh_container().await;
    let store = Arc::new(common::store_on(&container, None));
    let processor = Arc::new(
        Processor::builder()
            .interval(INTERVAL)
            .expiration(EXPIRATION)
            // Longer than any outage here: the partitions are kept, not given up.
            .stall_timeout(Duration::from_secs(30))
            .checkpoint_every_events(10)
            .start(store.clone(), eventhubs::connection(&hub, "$Default"))
            .await
            .unwrap(),
    );
    let seen = Shared::default();
    let reading = consume(processor.clone(), seen.clone());
    for round in 1..=3 {
        // Reading again on a new connection, not only from what was read ahead.
        wait_until("a client is connected", || {
            eventhubs::live_connections() > 0
        })
        .await;
        let before = processed(&seen);
        wait_until("events are processed", || processed(&seen) > before + 20).await;
        let cut = eventhubs::cut_connections(Duration::from_millis(1500));
        assert!(cut > 0, "round {round}: no connection to cut");
        wait_until("the client is replaced", || {
            processor.stats().reconnects >= round
        })
        .await;
    }
    let total: usize = 4 * 300;
    wait_until("every event is processed", || processed(&seen) == total).await;
    processor.stop().await.unwrap();
    reading.await.unwrap();
    {
        let seen = seen.lock().unwrap();
        let twice: Vec<_> = seen.processed.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "processed more than once: {twice:?}");
        assert_eq!(seen.processed.len(), total);
        assert!(seen
            .stopped
            .iter()
            .all(|(_, why)| *why == Some(StopReason::Shutdown)));
    }
    assert_eq!(processor.stats().stalls, 0);
    let last: BTreeMap<String, Option<i64>> = store
        .list_checkpoints(processor.scope())
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.partition_id, c.sequence_number))
        .collect();
    assert!(
        last.len() == 4 && last.values().all(|s| *s == Some(299)),
        "checkpoints at the last events: {last:?}"
    );
}

/// A consumer whose client loses its connection for good (every new one is refused) gives
/// its partitions up once they have been unreadable for the stall timeout, writing its last
/// positions first, while it lives on; another consumer takes them over and resumes right
/// after the last event the first one processed. Nothing is lost or processed twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_that_cannot_read_gives_its_partitions_up() {
    let _alone = ALONE.lock().await;
    let hub = create_hub(
        "stall",
        HubSpec {
            partitions: 4,
            preload: 100,
            rate: 10.0,
            total: Some(250),
        },
    );
    let container = common::fresh_container().await;
    let store = Arc::new(common::store_on(&container, None));
    // A's clients: the endpoint's, until `dead`; then a port nobody listens on.
    let dead = Arc::new(AtomicBool::new(false));
    let connection = {
        let (dead, hub) = (dead.clone(), hub.clone());
        Connection::from_fn(eventhubs::NAMESPACE, hub.clone(), move || {
            let endpoint = if dead.load(Ordering::SeqCst) {
                "amqp://127.0.0.1:9".to_owned()
            } else {
                eventhubs::amqp_url()
            };
            let hub = hub.clone();
            Box::pin(async move {
                ConsumerClient::builder()
                    .with_custom_endpoint(endpoint)
                    .open(eventhubs::NAMESPACE, hub, Arc::new(eventhubs::LocalToken))
                    .await
            })
        })
    };
    let builder = Processor::builder()
        .interval(INTERVAL)
        .expiration(EXPIRATION)
        .strategy(eventhub_checkpointstore::balancer::Strategy::Greedy)
        .checkpoint_every_events(1_000);
    let a = Arc::new(
        builder
            .clone()
            .owner_id("a")
            .stall_timeout(Duration::from_secs(3))
            .start(store.clone(), connection)
            .await
            .unwrap(),
    );
    let seen_a = Shared::default();
    let reading_a = consume(a.clone(), seen_a.clone());
    wait_until("a reads all 4 partitions", || {
        let seen = seen_a.lock().unwrap();
        seen.processed
            .keys()
            .map(|(p, _)| p)
            .collect::<BTreeSet<_>>()
            .len()
            == 4
    })
    .await;
    dead.store(true, Ordering::SeqCst);
    eventhubs::cut_connections(Duration::ZERO);
    // Counted as stalled when each partition is stopped, released to the store just after.
    wait_until("a gives its 4 partitions up", || {
        a.stats().stalls == 4 && a.owned().is_empty()
    })
    .await;
    // `a` lives on, owning nothing: its partitions are free for others at once.
    assert!(a.owned().is_empty(), "{:?}", a.owned());
    let last_of_a: BTreeMap<String, i64> = {
        let seen = seen_a.lock().unwrap();
        assert!(seen
            .stopped
            .iter()
            .all(|(_, why)| *why == Some(StopReason::Failed)));
        let mut last = BTreeMap::new();
        for (p, seq) in seen.processed.keys() {
            last.insert(p.clone(), *seq);
        }
        last
    };
    let b = Arc::new(
        builder
            .owner_id("b")
            .start(store.clone(), eventhubs::connection(&hub, "$Default"))
            .await
            .unwrap(),
    );
    let seen_b = Shared::default();
    let reading_b = consume(b.clone(), seen_b.clone());
    wait_until("b resumes all 4 partitions", || {
        seen_b.lock().unwrap().resumed.len() == 4
    })
    .await;
    a.stop().await.unwrap();
    reading_a.await.unwrap();
    let resumed: BTreeMap<String, Option<i64>> =
        seen_b.lock().unwrap().resumed.iter().cloned().collect();
    let expected: BTreeMap<String, Option<i64>> = last_of_a
        .iter()
        .map(|(p, s)| (p.clone(), Some(*s)))
        .collect();
    assert_eq!(
        resumed, expected,
        "b resumed right after the last events a processed"
    );
    let total = 4 * 250;
    wait_until("every event is processed", || {
        processed(&seen_a) + processed(&seen_b) >= total
    })
    .await;
    b.stop().await.unwrap();
    reading_b.await.unwrap();
    let (seen_a, seen_b) = (seen_a.lock().unwrap(), seen_b.lock().unwrap());
    let mut all = seen_a.processed.clone();
    for (key, n) in &seen_b.processed {
        *all.entry(key.clone()).or_default() += n;
    }
    let twice: Vec<_> = all.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "processed more than once: {twice:?}");
    assert_eq!(all.len(), total, "every event processed");
}

/// Three processors share 8 partitions while every connection is cut four times (new ones
/// refused for a second after each): `b` joins before the second cut and `c` before the third,
/// so partitions are handed over while clients are being replaced. Every event is processed
/// exactly once, partitions did move, and every processor replaced its client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processors_hand_partitions_over_across_cut_connections() {
    let _alone = ALONE.lock().await;
    let hub = create_hub(
        "movecuts",
        HubSpec {
            partitions: 8,
            preload: 20,
            rate: 0.0,
            total: None,
        },
    );
    let container = common::fresh_container().await;
    let store = Arc::new(common::store_on(&container, None));
    // Events all along, whatever the machine's speed, until the last cut is behind.
    let producer = eventhubs::Producer::start(&hub, 8);
    let builder = Processor::builder()
        .interval(INTERVAL)
        .expiration(EXPIRATION)
        .strategy(eventhub_checkpointstore::balancer::Strategy::Greedy)
        .stall_timeout(Duration::from_secs(30))
        .checkpoint_every_events(10);
    let seen = Shared::default();
    let mut fleet = Vec::new();
    for (round, name) in ["a", "b", "c", ""].into_iter().enumerate() {
        if !name.is_empty() {
            let processor = Arc::new(
                builder
                    .clone()
                    .owner_id(name)
                    .start(store.clone(), eventhubs::connection(&hub, "$Default"))
                    .await
                    .unwrap(),
            );
            let reading = consume(processor.clone(), seen.clone());
            fleet.push((processor, reading));
        }
        // Reading again on new connections, not only from what was read ahead.
        let before = processed(&seen);
        wait_until("events are processed", || processed(&seen) > before + 40).await;
        wait_until("a client is connected", || {
            eventhubs::live_connections() > 0
        })
        .await;
        let cut = eventhubs::cut_connections(Duration::from_millis(1000));
        assert!(cut > 0, "round {round}: no connection to cut");
    }
    wait_until("every processor has replaced its client", || {
        fleet.iter().all(|(p, _)| p.stats().reconnects >= 1)
    })
    .await;
    let before = processed(&seen);
    wait_until("reading goes on", || processed(&seen) > before + 40).await;
    producer.stop();
    let counts = eventhubs::event_counts(&hub);
    let total: usize = counts.iter().map(|(_, n)| *n as usize).sum();
    let deadline = Instant::now() + DEADLINE;
    while processed(&seen) != total {
        if Instant::now() > deadline {
            let seen = seen.lock().unwrap();
            let mut per: BTreeMap<&String, (usize, i64)> = BTreeMap::new();
            for (p, s) in seen.processed.keys() {
                let e = per.entry(p).or_default();
                e.0 += 1;
                e.1 = e.1.max(*s);
            }
            let owned: Vec<_> = fleet
                .iter()
                .map(|(p, _)| (p.owner_id().to_owned(), p.owned(), p.stats()))
                .collect();
            panic!("not every event processed: per partition (count, max) {per:?} of {counts:?}; owned {owned:?}; resumed {:?}; stopped {:?}", seen.resumed, seen.stopped);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut handovers = 0;
    for (processor, reading) in fleet {
        handovers += processor.stats().handovers;
        processor.stop().await.unwrap();
        reading.await.unwrap();
    }
    let seen = seen.lock().unwrap();
    let twice: Vec<_> = seen.processed.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "processed more than once: {twice:?}");
    assert_eq!(seen.processed.len(), total, "every event processed");
    // a gave 4 to b, then a and b gave c its share: at least 6 handovers (c takes 2 or 3).
    assert!(handovers >= 6, "partitions moved ({handovers} handovers)");
    eprintln!(
        "3 processors, 8 partitions, 4 cuts: {total} events processed once each, {handovers} handovers"
    );
}
