//! A fleet at scale: K consumers, each a `PartitionBalancer` with a `Checkpointer` on a
//! `BlobCheckpointStore` of its own, tasks of one process (or separate processes), share N
//! partitions against Azurite. Per row: the time until the fleet holds its fair share in the
//! store (every partition's record owned, every consumer at ⌊N/K⌋ or ⌈N/K⌉), in intervals and in
//! the fleet's cycles per consumer (quick ones included), and until every consumer processes all
//! it owns (no partition held for a handover, which is when the steady state starts); ownership
//! changes until the fair share (first claims included), as each consumer's claims made them
//! (Python's, which do not count, as seen at looks four times an interval: a lower bound); in the
//! steady state after it, the storage requests per minute (total and per consumer, by kind), the
//! CPU per consumer and the changes that still happen.
//!
//! ```sh
//! scripts/bench.sh fleet                 # every row
//! FLEET_ROWS=256x16 scripts/bench.sh fleet
//! FLEET_ROWS=1024x64 FLEET_STRATEGIES=greedy scripts/bench.sh fleet
//! FLEET_ROWS= FLEET_PROCESSES=256x16 scripts/bench.sh fleet   # consumers as separate processes
//! ```
//!
//! By design a steady consumer sends one listing per cycle (one page per 5,000 records) and one
//! renewal per partition it owns, nothing else but its checkpoints: the "expected" column.
//! The time to fair share is given both in intervals (wall time) and in cycles: a slower
//! emulator stretches cycles, not their count.

use eventhub_checkpointstore::azure_core::http::Etag;
use eventhub_checkpointstore::balancer::{BalancerOptions, PartitionBalancer, Strategy};
use eventhub_checkpointstore::checkpointer::{Checkpointer, CheckpointerOptions};
use eventhub_checkpointstore::Result as StoreResult;
use eventhub_checkpointstore::{
    BlobCheckpointStore, BlobCheckpointStoreOptions, CheckpointStore, Ownership, Scope,
};
use eventhub_checkpointstore_testkit::hooked::{Hooked, Hooks};
use eventhub_checkpointstore_testkit::{self as common, Recorder};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{
    atomic::{AtomicU32, AtomicU64, Ordering},
    Arc, Mutex,
};
use std::time::{Duration, Instant};

/// The steady state is measured over this many cycles, and at least `STEADY_AT_LEAST`.
const STEADY_CYCLES: u32 = 3;
const STEADY_AT_LEAST: Duration = Duration::from_secs(30);
/// Positions each consumer records per owned partition per second, written every 10 s.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(10);

struct Consumer {
    balancer: Arc<PartitionBalancer>,
    checkpointer: Arc<Checkpointer>,
    recorder: Recorder,
    /// The ownership changes its claims made (see `CountingChanges`).
    changes: Arc<AtomicU64>,
}

/// Hooks on a consumer's store that count, exactly, the ownership changes its claims make: a
/// claim that lands for an owner other than the one the record had at the version it was
/// conditional on (a first claim, a claim of a relinquished or expired record, a steal).
/// Renewals and relinquishing change no owner. (Looking at the store's records now and then would
/// miss a partition that moved twice between two looks.)
struct CountingChanges {
    /// Each partition's owner at the version this consumer last saw, listed or claimed.
    seen: Mutex<HashMap<String, (Option<Etag>, String)>>,
    changes: Arc<AtomicU64>,
}

impl CountingChanges {
    fn saw(&self, records: &[Ownership]) {
        let mut seen = self.seen.lock().unwrap();
        for o in records {
            let owner = o.owner_id.clone().unwrap_or_default();
            seen.insert(o.partition_id.clone(), (o.etag.clone(), owner));
        }
    }
}

impl Hooks for CountingChanges {
    fn listed(&self, records: &[Ownership]) {
        self.saw(records);
    }

    fn claimed(&self, ownership: &[Ownership], claimed: &[Ownership]) {
        let changed = {
            let seen = self.seen.lock().unwrap();
            let owner_before = |partition: &str| {
                let asked = ownership.iter().find(|o| o.partition_id == partition)?;
                match (&asked.etag, seen.get(partition)) {
                    // A first claim: nobody owned it.
                    (None, _) => Some(""),
                    // Conditional on a version this consumer saw: that version's owner.
                    (Some(etag), Some((at, owner))) if at.as_ref() == Some(etag) => {
                        Some(owner.as_str())
                    }
                    (Some(_), _) => None,
                }
            };
            claimed
                .iter()
                .filter(|won| {
                    let now = won.owner_id.as_deref().unwrap_or_default();
                    !now.is_empty() && owner_before(&won.partition_id) != Some(now)
                })
                .count()
        };
        self.changes.fetch_add(changed as u64, Ordering::Relaxed);
        self.saw(claimed);
    }
}

impl Consumer {
    /// A balancer over `partitions` with a checkpointer writing every `CHECKPOINT_EVERY`, on
    /// `store` (whose requests `recorder` sees, if installed).
    fn new(
        store: BlobCheckpointStore,
        scope: &Scope,
        owner: &str,
        partitions: usize,
        interval: Duration,
        strategy: Strategy,
        recorder: Recorder,
    ) -> Self {
        let changes = Arc::new(AtomicU64::new(0));
        let counting = CountingChanges {
            seen: Mutex::default(),
            changes: changes.clone(),
        };
        let store: Arc<dyn CheckpointStore> = Arc::new(Hooked::new(store, counting));
        let options = CheckpointerOptions {
            every_events: None,
            every: Some(CHECKPOINT_EVERY),
        };
        let checkpointer =
            Arc::new(Checkpointer::new(store.clone(), scope.clone(), options).unwrap());
        let options = BalancerOptions {
            interval,
            expiration: interval * 6,
            strategy,
            ..Default::default()
        };
        let ids = (0..partitions).map(|p| p.to_string());
        let balancer = PartitionBalancer::new(store, scope.clone(), owner, ids, options)
            .unwrap()
            .with_checkpointer(checkpointer.clone());
        Consumer {
            balancer: Arc::new(balancer),
            checkpointer,
            recorder,
            changes,
        }
    }

    /// Runs the balancer (`run`: jittered cycles, quick cycles, handover writes) and, once a
    /// second, records a position for every partition it may process, until `stop` turns true.
    fn start(
        &self,
        stop: tokio::sync::watch::Receiver<bool>,
        on_cycle: impl FnMut(&StoreResult<BTreeSet<String>>) + Send + 'static,
    ) -> [tokio::task::JoinHandle<()>; 2] {
        let balancer = self.balancer.clone();
        let mut stopped = stop.clone();
        let run = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            let _ = balancer.run(shutdown, on_cycle).await;
        });
        let (balancer, checkpointer) = (self.balancer.clone(), self.checkpointer.clone());
        let mut stop = stop;
        let record = tokio::spawn(async move {
            let mut seq = 0i64;
            loop {
                seq += 1;
                for partition in balancer.ready() {
                    let _ = checkpointer
                        .record(&partition, Some((seq * 1024).to_string()), Some(seq))
                        .await;
                }
                let _ = checkpointer.flush_due().await;
                tokio::select! {
                    _ = stop.changed() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        });
        [run, record]
    }
}

/// Requests one consumer sent, by kind.
#[derive(Default, Clone, Copy)]
struct Kinds {
    listings: u64,
    claims: u64,
    checkpoints: u64,
    other: u64,
}

impl Kinds {
    fn of(recorder: &Recorder) -> Self {
        let mut kinds = Kinds::default();
        for sent in recorder.take() {
            kinds.count(sent.operation() == "list", sent.url.path());
        }
        kinds
    }

    /// Counts one request: a listing, or a write to the record at `path`.
    fn count(&mut self, listing: bool, path: &str) {
        if listing {
            self.listings += 1;
        } else if path.contains("/ownership/") {
            self.claims += 1;
        } else if path.contains("/checkpoint/") {
            self.checkpoints += 1;
        } else {
            self.other += 1;
        }
    }

    fn add(&mut self, other: Kinds) {
        self.listings += other.listings;
        self.claims += other.claims;
        self.checkpoints += other.checkpoints;
        self.other += other.other;
    }

    fn total(&self) -> u64 {
        self.listings + self.claims + self.checkpoints + self.other
    }
}

struct Row {
    partitions: usize,
    consumers: usize,
    /// The strategy, or the Python reference.
    who: String,
    interval: Duration,
    /// Wall time from the start to the fair share, in intervals.
    intervals_to_fair_share: Option<f64>,
    /// ... until every consumer processes all it owns (no partition held for a handover).
    intervals_to_ready: Option<f64>,
    cycles_to_fair_share: Option<u32>,
    changes: u64,
    steady: Kinds,
    steady_minutes: f64,
    cpu_per_consumer: f64,
    changes_in_steady_state: u64,
}

/// Whether `owners` (each partition's owner in the store) is the fair share of `partitions` over
/// `consumers`: every partition owned, every consumer at ⌊N/K⌋ or ⌈N/K⌉ (one that owns nothing is
/// not in `owners` at all).
fn fair(owners: &BTreeMap<String, String>, partitions: usize, consumers: usize) -> bool {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for owner in owners.values() {
        *counts.entry(owner).or_default() += 1;
    }
    let (low, high) = (partitions / consumers, partitions.div_ceil(consumers));
    owners.len() == partitions
        && counts.len() <= consumers
        && (counts.len() == consumers || low == 0)
        && counts.values().all(|&n| n >= low && n <= high)
}

/// The balancing interval for `partitions` x `consumers`: Azurite (one Node.js thread) lists
/// some 10,000 records a second and serves ~1,000 writes, so a cycle's listings by every consumer
/// must fit with the renewals and checkpoints of every partition (at 1,024 x 16 with 5 s it sat
/// at 100% CPU).
fn interval_for(partitions: usize, consumers: usize) -> Duration {
    match (partitions, partitions * consumers) {
        (_, 0..=4096) => Duration::from_secs(2),
        (0..=512, _) => Duration::from_secs(5),
        (_, 0..=16384) => Duration::from_secs(10),
        _ => Duration::from_secs(30),
    }
}

/// Who owns each partition, by the store's records (none: not owned).
async fn owners(store: &BlobCheckpointStore, scope: &Scope) -> BTreeMap<String, String> {
    match store.list_ownership(scope).await {
        Ok(listed) => listed
            .into_iter()
            .filter_map(|o| Some((o.partition_id, o.owner_id.filter(|id| !id.is_empty())?)))
            .collect(),
        // A listing that failed says nothing: the next look tries again.
        Err(_) => BTreeMap::new(),
    }
}

/// What watching a fleet until its fair share saw.
struct ToFairShare {
    /// Who owned what when it stopped watching.
    owners: BTreeMap<String, String>,
    /// First claims plus every move between consumers: as the consumers counted them, or, for
    /// consumers that do not count (Python's), as seen at each look (a lower bound).
    changes: u64,
    /// The fleet's cycles per consumer until then; `None` if not reached in 40 intervals and two
    /// per partition of the share (balanced takes about one per partition).
    cycles: Option<u32>,
    /// Wall time from `started` until then, in intervals.
    intervals: Option<f64>,
}

/// Looks at the store's ownership records of `scope` four times an interval until they show the
/// fair share of `partitions` over `consumers`.
async fn until_fair_share(
    store: &BlobCheckpointStore,
    scope: &Scope,
    probes: &Probes<'_>,
    (partitions, consumers): (usize, usize),
    interval: Duration,
    started: Instant,
) -> ToFairShare {
    let mut watched = ToFairShare {
        owners: BTreeMap::new(),
        changes: 0,
        cycles: None,
        intervals: None,
    };
    let give_up = started + interval * (40 + 2 * partitions.div_ceil(consumers)) as u32;
    while Instant::now() < give_up {
        tokio::time::sleep(interval / 4).await;
        let now = owners(store, scope).await;
        watched.changes += moved(&watched.owners, &now);
        watched.owners = now;
        if fair(&watched.owners, partitions, consumers) {
            if let Some(counted) = (probes.counted)() {
                watched.changes = counted;
            }
            let per_consumer = probes.cycles.load(Ordering::Relaxed) as f64 / consumers as f64;
            watched.cycles = Some(per_consumer.ceil() as u32);
            watched.intervals = Some(started.elapsed().as_secs_f64() / interval.as_secs_f64());
            break;
        }
    }
    watched
}

/// Waits until every consumer processes all it owns (`all_ready`): partitions moved on the way to
/// the fair share are held until their givers handed them over. Wall time from `started`, in
/// intervals; `None` if not within 20 intervals more.
async fn until_ready(
    all_ready: &dyn Fn() -> bool,
    interval: Duration,
    started: Instant,
) -> Option<f64> {
    let give_up = Instant::now() + interval * 20;
    while Instant::now() < give_up {
        if all_ready() {
            return Some(started.elapsed().as_secs_f64() / interval.as_secs_f64());
        }
        tokio::time::sleep(interval / 4).await;
    }
    None
}

/// Partitions whose owner differs between `before` and `after` (first claims included).
fn moved(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> u64 {
    after
        .iter()
        .filter(|(p, c)| before.get(*p) != Some(c))
        .count() as u64
}

/// How the bench reads a running fleet, whether its consumers are tasks of this process or
/// processes of their own.
struct Probes<'a> {
    /// The fleet's cycles so far.
    cycles: &'a AtomicU32,
    /// The ownership changes the consumers' claims made, if they count them (Python's do not).
    counted: &'a dyn Fn() -> Option<u64>,
    /// Whether every consumer processes all it owns.
    all_ready: &'a dyn Fn() -> bool,
    /// The requests the fleet sent since the last call.
    take_requests: &'a dyn Fn() -> Kinds,
    /// The consumers' CPU seconds so far.
    cpu_secs: &'a dyn Fn() -> f64,
}

/// Measures a fleet of `consumers` over `partitions` started at `started` (`who` names it in the
/// row): the store's records of `scope` until the fair share, then until every consumer is ready,
/// then the steady state over a few cycles (requests, CPU, ownership changes that still happen).
async fn measure(
    who: String,
    (container, scope): (&str, &Scope),
    (partitions, consumers): (usize, usize),
    interval: Duration,
    started: Instant,
    probes: &Probes<'_>,
) -> Row {
    // Through a store of its own, whose requests nobody counts.
    let watcher = common::store_on(container, None);
    let size = (partitions, consumers);
    let watched = until_fair_share(&watcher, scope, probes, size, interval, started).await;
    let ready = until_ready(probes.all_ready, interval, started).await;

    (probes.take_requests)();
    let cpu_before = (probes.cpu_secs)();
    let steady_started = Instant::now();
    tokio::time::sleep((interval * STEADY_CYCLES).max(STEADY_AT_LEAST)).await;
    let steady_secs = steady_started.elapsed().as_secs_f64();
    let cpu = (probes.cpu_secs)() - cpu_before;
    let steady = (probes.take_requests)();
    let changes_in_steady_state = match (probes.counted)() {
        Some(counted) => counted.saturating_sub(watched.changes),
        None => moved(&watched.owners, &owners(&watcher, scope).await),
    };
    eprintln!(
        "  {partitions} x {consumers} {who}: {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Row {
        partitions,
        consumers,
        who,
        interval,
        intervals_to_fair_share: watched.intervals,
        intervals_to_ready: ready,
        cycles_to_fair_share: watched.cycles,
        changes: watched.changes,
        steady,
        steady_minutes: steady_secs / 60.0,
        cpu_per_consumer: cpu / consumers as f64 / steady_secs,
        changes_in_steady_state,
    }
}

async fn row(partitions: usize, consumers: usize, strategy: Strategy) -> Row {
    let interval = interval_for(partitions, consumers);
    let container = common::fresh_container().await;
    let scope = Scope::new("fleet", format!("n{partitions}k{consumers}"), "$Default");
    let fleet: Vec<Consumer> = (0..consumers)
        .map(|c| {
            let recorder = Recorder::default();
            let store = common::store_on(
                &container,
                Some(recorder.install(BlobCheckpointStoreOptions::default())),
            );
            let owner = format!("consumer-{c}");
            Consumer::new(
                store, &scope, &owner, partitions, interval, strategy, recorder,
            )
        })
        .collect();

    let started = Instant::now();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    let cycles = Arc::new(AtomicU32::new(0));
    for consumer in &fleet {
        let cycles = cycles.clone();
        tasks.extend(consumer.start(stop.clone(), move |_| {
            cycles.fetch_add(1, Ordering::Relaxed);
        }));
    }

    let probes = Probes {
        cycles: &cycles,
        counted: &|| {
            Some(
                fleet
                    .iter()
                    .map(|c| c.changes.load(Ordering::Relaxed))
                    .sum(),
            )
        },
        all_ready: &|| {
            fleet
                .iter()
                .all(|c| c.balancer.ready() == c.balancer.owned())
        },
        take_requests: &|| {
            let mut kinds = Kinds::default();
            for consumer in &fleet {
                kinds.add(Kinds::of(&consumer.recorder));
            }
            kinds
        },
        cpu_secs: &|| cpu_time::ProcessTime::now().as_duration().as_secs_f64(),
    };
    let size = (partitions, consumers);
    let place = (container.as_str(), &scope);
    let who = format!("{strategy:?}");
    let row = measure(who, place, size, interval, started, &probes).await;
    let _ = stop_tx.send(true);
    for task in tasks {
        let _ = task.await;
    }
    row
}

/// Set (to the strategy) in the processes of `FLEET_PROCESSES` rows: the bench's binary is then
/// one consumer ([`consumer_process`]).
const CONSUMER_PROCESS: &str = "FLEET_CONSUMER_PROCESS";

fn main() {
    if let Ok(strategy) = std::env::var(CONSUMER_PROCESS) {
        return consumer_process(&strategy);
    }
    let rows: Vec<(usize, usize)> = match std::env::var("FLEET_ROWS") {
        Ok(rows) => parse_rows(&rows),
        Err(_) => vec![
            (32, 4),
            (32, 32),
            (256, 16),
            (256, 64),
            (1024, 16),
            (1024, 64),
        ],
    };
    // `FLEET_STRATEGIES=greedy`: one strategy only (balanced needs about a cycle per partition of
    // the share, long at 1,024 x 64).
    let strategies: Vec<Strategy> = match std::env::var("FLEET_STRATEGIES").as_deref() {
        Ok("greedy") => vec![Strategy::Greedy],
        Ok("balanced") => vec![Strategy::Balanced],
        _ => vec![Strategy::Greedy, Strategy::Balanced],
    };
    // `FLEET_PYTHON=256x16`: Python's load balancer as the reference (needs `PYTHON_PEER`, which
    // `scripts/bench.sh fleet` sets when FLEET_PYTHON is given).
    let python_rows = parse_rows(std::env::var("FLEET_PYTHON").ok().as_deref().unwrap_or(""));
    // `FLEET_PROCESSES=256x16`: this crate's consumers as separate processes.
    let process_rows = parse_rows(
        std::env::var("FLEET_PROCESSES")
            .ok()
            .as_deref()
            .unwrap_or(""),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("| N | K | strategy | interval | intervals to fair share | all ready | cycles (quick ones too) | ownership changes until then | changes after | requests/min (total) | per consumer: listings | claims | checkpoints | expected listings + claims | CPU per consumer |");
    println!("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    // Each row printed as it is measured.
    runtime.block_on(async {
        for &(n, k) in &rows {
            for &strategy in &strategies {
                print_row(&row(n, k, strategy).await);
            }
        }
        for &(n, k) in &process_rows {
            for &strategy in &strategies {
                let who = processes::Who::Rust(strategy);
                print_row(&processes::row(n, k, who).await);
            }
        }
        for &(n, k) in &python_rows {
            print_row(&processes::row(n, k, processes::Who::Python).await);
        }
    });
}

/// One consumer as a process of its own, for the `FLEET_PROCESSES` rows: `Consumer` as the rows
/// of tasks run it, its arguments those of `tools/python-peer/balancer.py` (connection string,
/// container, namespace, event hub, consumer group, owner, interval and expiration in seconds,
/// partitions; the expiration is six intervals, as everywhere here). Prints `[owned, ready,
/// ownership changes its claims made]` as a JSON line per cycle; stops, relinquishing, when stdin
/// closes.
fn consumer_process(strategy: &str) {
    use tokio::io::AsyncReadExt;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [connection, container, namespace, hub, group, owner, interval, _, partitions] = &args[..]
    else {
        panic!("a consumer process takes 9 arguments, not {args:?}");
    };
    let strategy = match strategy {
        "Greedy" => Strategy::Greedy,
        _ => Strategy::Balanced,
    };
    let interval = Duration::from_secs(interval.parse().unwrap());
    let partitions: usize = partitions.parse().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = BlobCheckpointStore::from_connection_string(connection, container, None)
            .expect("a valid connection string");
        let scope = Scope::new(namespace, hub, group);
        let consumer = Consumer::new(
            store,
            &scope,
            owner,
            partitions,
            interval,
            strategy,
            Recorder::default(),
        );
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let (balancer, changes) = (consumer.balancer.clone(), consumer.changes.clone());
        let tasks = consumer.start(stop, move |_| {
            let changes = changes.load(Ordering::Relaxed);
            let line = serde_json::json!([balancer.owned(), balancer.ready(), changes]);
            println!("{line}");
        });
        let _ = tokio::io::stdin().read_to_end(&mut Vec::new()).await;
        let _ = stop_tx.send(true);
        for task in tasks {
            let _ = task.await;
        }
    });
}

/// `NxK,NxK`.
fn parse_rows(rows: &str) -> Vec<(usize, usize)> {
    rows.split(',')
        .filter_map(|r| {
            let (n, k) = r.split_once('x')?;
            Some((n.parse().ok()?, k.parse().ok()?))
        })
        .collect()
}

fn print_row(r: &Row) {
    let intervals =
        |i: Option<f64>| i.map_or_else(|| "not reached".to_owned(), |i| format!("{i:.1}"));
    let per = |n: u64| n as f64 / r.steady_minutes / r.consumers as f64;
    let per_minute = 60.0 / r.interval.as_secs_f64();
    // One listing per page per cycle, and one renewal per owned partition per cycle.
    let expected_listings = r.partitions.div_ceil(5000) as f64 * per_minute;
    let expected_claims = r.partitions as f64 / r.consumers as f64 * per_minute;
    println!(
        "| {} | {} | {} | {} s | {} | {} | {} | {} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} + {:.1} | {:.1}% |",
        r.partitions,
        r.consumers,
        r.who,
        r.interval.as_secs(),
        intervals(r.intervals_to_fair_share),
        intervals(r.intervals_to_ready),
        r.cycles_to_fair_share
            .map_or_else(|| "not reached".to_owned(), |c| c.to_string()),
        r.changes,
        r.changes_in_steady_state,
        r.steady.total() as f64 / r.steady_minutes,
        per(r.steady.listings),
        per(r.steady.claims),
        per(r.steady.checkpoints),
        expected_listings,
        expected_claims,
        r.cpu_per_consumer * 100.0,
    );
}

/// Rows of K separate processes over N partitions: this crate's consumers (this bench's binary
/// again, as [`consumer_process`]), or, as the reference, Python's load balancer
/// (azure-eventhub's `OwnershipManager`, greedy, over its blob store;
/// `tools/python-peer/balancer.py`, pinned as in the mixed-fleet test), which records no
/// checkpoints (a balancer only). Measured as the rows of tasks: the store's records, their
/// cycles from what each prints per cycle, their requests counted on the wire by a proxy in front
/// of Azurite, their CPU from /proc.
mod processes {
    use super::*;
    use eventhub_checkpointstore::ConnectionString;
    use std::sync::Mutex;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

    /// Who the processes of a row are.
    #[derive(Clone, Copy)]
    pub(super) enum Who {
        Python,
        Rust(Strategy),
    }

    pub(super) async fn row(partitions: usize, consumers: usize, who: Who) -> Row {
        let interval = interval_for(partitions, consumers);
        let container = common::fresh_container().await;
        let upstream = ConnectionString::parse(&common::connection_string())
            .unwrap()
            .blob_endpoint()
            .unwrap()
            .clone();
        let upstream_addr = format!(
            "{}:{}",
            upstream.host_str().unwrap(),
            upstream.port().unwrap()
        );
        let counts = Arc::new(Mutex::new(Kinds::default()));
        let proxy = counting_proxy(upstream_addr, counts.clone()).await;
        let connection = format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={};BlobEndpoint=http://{proxy}/devstoreaccount1;",
            eventhub_checkpointstore::DEVELOPMENT_ACCOUNT_KEY
        );
        let (hub, label) = match who {
            Who::Python => (
                format!("py-n{partitions}k{consumers}"),
                "Python greedy".to_owned(),
            ),
            Who::Rust(strategy) => (
                format!("proc-n{partitions}k{consumers}"),
                format!("{strategy:?}, processes"),
            ),
        };
        let cycles = Arc::new(AtomicU32::new(0));
        // Whether each process processes all it owns, as of its last cycle.
        let ready = Arc::new(Mutex::new(vec![false; consumers]));
        // The ownership changes each of this crate's processes counted, as of its last cycle.
        let changes = Arc::new(Mutex::new(vec![0u64; consumers]));
        let mut children = Vec::new();
        let started = Instant::now();
        for c in 0..consumers {
            let mut command = match who {
                Who::Python => {
                    let python = std::env::var("PYTHON_PEER").expect(
                        "PYTHON_PEER is not set: run with FLEET_PYTHON through scripts/bench.sh fleet",
                    );
                    let mut command = tokio::process::Command::new(python);
                    command.arg(concat!(
                        env!("CARGO_MANIFEST_DIR"),
                        "/tools/python-peer/balancer.py"
                    ));
                    command
                }
                Who::Rust(strategy) => {
                    let mut command =
                        tokio::process::Command::new(std::env::current_exe().unwrap());
                    command.env(CONSUMER_PROCESS, format!("{strategy:?}"));
                    command
                }
            };
            let mut child = command
                .args([
                    &connection,
                    &container,
                    "fleet",
                    &hub,
                    "$Default",
                    &format!("process-{c}"),
                    &interval.as_secs().to_string(),
                    &(interval.as_secs() * 6).to_string(),
                    &partitions.to_string(),
                ])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .expect("start a consumer process");
            let stdout = child.stdout.take().unwrap();
            let (cycles, ready, changes) = (cycles.clone(), ready.clone(), changes.clone());
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    // One line per cycle: the partitions it owns (Python, which holds nothing
                    // back), or those, the ones it processes and the changes its claims made
                    // (this crate's).
                    type Line = (Vec<String>, Vec<String>, u64);
                    let all_ready = match serde_json::from_str::<Vec<String>>(&line) {
                        Ok(_) => true,
                        Err(_) => match serde_json::from_str::<Line>(&line) {
                            Ok((owned, processed, made)) => {
                                changes.lock().unwrap()[c] = made;
                                owned == processed
                            }
                            Err(_) => continue,
                        },
                    };
                    ready.lock().unwrap()[c] = all_ready;
                    cycles.fetch_add(1, Ordering::Relaxed);
                }
            });
            children.push(child);
        }

        let scope = Scope::new("fleet", &hub, "$Default");
        let pids: Vec<u32> = children.iter().filter_map(|c| c.id()).collect();
        let probes = Probes {
            cycles: &cycles,
            counted: &|| match who {
                Who::Python => None,
                Who::Rust(_) => Some(changes.lock().unwrap().iter().sum()),
            },
            all_ready: &|| ready.lock().unwrap().iter().all(|r| *r),
            take_requests: &|| std::mem::take(&mut *counts.lock().unwrap()),
            cpu_secs: &|| cpu_ticks(&pids) as f64 / common::cpu::TICKS_PER_SECOND,
        };
        let size = (partitions, consumers);
        let place = (container.as_str(), &scope);
        let row = measure(label, place, size, interval, started, &probes).await;
        for child in &mut children {
            drop(child.stdin.take());
        }
        for mut child in children {
            let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
        }
        row
    }

    /// User + system CPU ticks of `pids` (those still running).
    fn cpu_ticks(pids: &[u32]) -> u64 {
        pids.iter()
            .filter_map(|pid| common::cpu::ticks(&pid.to_string()))
            .sum()
    }

    /// A TCP proxy to `upstream` that counts the HTTP requests passing through by kind, from
    /// their request lines.
    async fn counting_proxy(upstream: String, counts: Arc<Mutex<Kinds>>) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, counts) = (upstream.clone(), counts.clone());
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let requests = async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        // A line cut between two reads is joined before it is looked at.
                        let mut carry = Vec::new();
                        while let Ok(n @ 1..) = client_read.read(&mut buf).await {
                            carry.extend_from_slice(&buf[..n]);
                            let complete =
                                carry.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                            for line in carry[..complete].split(|&b| b == b'\n') {
                                count(line, &counts);
                            }
                            carry.drain(..complete);
                            if server_write.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = server_write.shutdown().await;
                    };
                    let responses = async move {
                        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                        let _ = client_write.shutdown().await;
                    };
                    tokio::join!(requests, responses);
                });
            }
        });
        addr
    }

    fn count(line: &[u8], counts: &Mutex<Kinds>) {
        let Ok(line) = std::str::from_utf8(line) else {
            return;
        };
        let Some((method, rest)) = line.split_once(' ') else {
            return;
        };
        if !matches!(method, "GET" | "PUT" | "HEAD" | "DELETE" | "POST")
            || !rest.trim_end().ends_with("HTTP/1.1")
        {
            return;
        }
        counts
            .lock()
            .unwrap()
            .count(rest.contains("comp=list"), rest);
    }
}
