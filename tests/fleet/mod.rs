//! The fleet harness of the end-to-end tests (`tests/processor.rs`, `tests/consumer_faults.rs`):
//! consumers of every kind in OS processes of their own, real events from the local Event Hubs
//! endpoint, ownership and checkpoints in Azurite, every (partition, sequence number) each
//! processed counted.
//!
//! A test binary is its own helper: a test starts copies of itself running only that test with
//! `E2E_NODE` set, which makes the copy one consumer (`node`). A node prints one line per fact:
//! `claimed P`, `event P SEQ`, `checkpoint P SEQ` once the store acknowledged it, `lost P WHY`,
//! and `stopped` after a graceful shutdown (its stdin closing asks for one).

// Each test binary uses the part it needs.
#![allow(dead_code)]

pub(crate) mod faults;

use eventhub_checkpointstore::{BlobCheckpointStore, CheckpointStore, Scope, TableCheckpointStore};
use eventhub_checkpointstore_testkit::{self as common, eventhubs};
use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    io::{BufRead, BufReader, Write},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

pub(crate) const CHECKPOINT_EVERY: i64 = 25;
pub(crate) const INTERVAL: Duration = Duration::from_secs(1);
pub(crate) const EXPIRATION: Duration = Duration::from_secs(4);
pub(crate) const DEADLINE: Duration = Duration::from_secs(120);
/// What marks a node's lines in its output.
pub(crate) const MARK: &str = "@node ";
/// How the official processor 0.15 says it is wedged: it keeps renewing its claims and reads
/// nothing, and never recovers, because its client caches AMQP sessions and a connection that
/// died. Two ways in, both upstream: (1) a partition revoked while a receive is in flight has
/// its receiver dropped without a detach handshake; the peer's reply then ends the partition's
/// session, which stays cached, so the same processor can never read that partition again
/// ("Illegal session state"); (2) a stolen or refused link makes the client clear every session
/// of its connection, or a session's teardown races the peer's replies and the client closes
/// the connection, and it does not reconnect ("Connection must have been closed"). The
/// scenarios avoid the ways in they can (a processor never gets back a partition taken from it,
/// no partition moves between a live Rust processor and a live Python one); if a wedge shows
/// anyway, the failure names it.
pub(crate) const WEDGE_SIGNS: [&str; 2] =
    ["Illegal session state", "Connection must have been closed"];
/// How a consumer of this crate's own says it reopens a partition whose reader failed.
pub(crate) const REOPENING: &str = "reopening after: ";

// ---------------------------------------------------------------------------------------------
// A node: one processor process.

pub(crate) mod node {
    use super::*;
    use azure_messaging_eventhubs::processor::PartitionClient;
    use futures::StreamExt;

    /// One fact on stdout, marked: the test harness prints its own text around the node's.
    pub(crate) fn say(line: std::fmt::Arguments) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{MARK}{line}").and_then(|()| out.flush());
    }

    /// With `E2E_TRACE`, the node's logs on stderr (a file of its own with `E2E_LOG_DIR`);
    /// without, its `ERROR` events as `error ...` lines, which the tally counts as errors.
    pub(crate) fn trace() {
        if std::env::var("E2E_TRACE").is_ok() {
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::DEBUG)
                .with_writer(std::io::stderr)
                .init();
        } else {
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::ERROR)
                .with_ansi(false)
                .with_writer(|| ErrorLine(Vec::new()))
                .init();
        }
    }

    /// One log event, said as an `error` line once written.
    struct ErrorLine(Vec<u8>);

    impl Write for ErrorLine {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Drop for ErrorLine {
        fn drop(&mut self) {
            let text = String::from_utf8_lossy(&self.0);
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                say(format_args!("error {line}"));
            }
        }
    }

    pub fn is_node() -> bool {
        std::env::var("E2E_NODE").is_ok()
    }

    /// Turns true when stdin closes: how the conductor asks a node to stop.
    pub(crate) fn stdin_closed() -> tokio::sync::watch::Receiver<bool> {
        let (closed, stop) = tokio::sync::watch::channel(false);
        std::thread::spawn(move || {
            let mut sink = String::new();
            while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
            let _ = closed.send(true);
        });
        stop
    }

    /// Runs the node the environment describes until stdin closes.
    pub fn run() {
        if std::env::var("E2E_KIND").as_deref() == Ok("balancer") {
            balancer::run()
        } else {
            run_processor()
        }
    }

    /// A consumer of this crate's own: the public [`Processor`] over the blob store, through
    /// its pull API (each partition's events until it must stop).
    ///
    /// [`Processor`]: eventhub_checkpointstore::processor::Processor
    mod balancer {
        use super::*;
        use eventhub_checkpointstore::{
            balancer::Strategy,
            checkpointer::CheckpointerOptions,
            processor::{BoxError, EventHandler, PartitionContext, Processor, StopReason},
        };

        pub fn run() {
            let var = |name: &str| std::env::var(name).unwrap();
            trace();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let store = store(&var("E2E_STORE"));
                let (hub, group) = (var("E2E_HUB"), var("E2E_GROUP"));
                let processor = Arc::new(
                    Processor::builder()
                        .interval(INTERVAL)
                        .expiration(EXPIRATION)
                        .strategy(Strategy::Greedy)
                        .handover_intervals(2)
                        // Every 25th event, never by time: the checkpoints the test expects.
                        .checkpointer_options(CheckpointerOptions {
                            every_events: std::num::NonZeroU64::new(CHECKPOINT_EVERY as u64),
                            every: None,
                        })
                        .owner_id(var("E2E_NODE"))
                        .start(store, eventhubs::connection(&hub, &group))
                        .await
                        .unwrap(),
                );
                if std::env::var("E2E_API").as_deref() == Ok("handler") {
                    let mut stop = stdin_closed();
                    let shutdown = async move {
                        let _ = stop.wait_for(|stopped| *stopped).await;
                    };
                    processor.run(Report, shutdown).await.unwrap();
                } else {
                    pull(&processor).await;
                }
                let stats = processor.stats();
                say(format_args!("note stats {stats:?}"));
                say(format_args!("stopped"));
            });
        }

        fn store(arg: &str) -> Arc<dyn eventhub_checkpointstore::CheckpointStore> {
            let connection = common::connection_string();
            match arg.split_once(':') {
                Some(("blob", container)) => Arc::new(
                    BlobCheckpointStore::from_connection_string(&connection, container, None)
                        .unwrap(),
                ),
                Some(("table", table)) => Arc::new(
                    TableCheckpointStore::from_connection_string(&connection, table, None).unwrap(),
                ),
                other => panic!("E2E_STORE {other:?}"),
            }
        }

        /// The pull API: each partition's events until it must stop, every one checkpointed
        /// (the processor writes every `CHECKPOINT_EVERY`th); stops when stdin closes.
        async fn pull(processor: &Arc<Processor>) {
            let stopping = tokio::spawn({
                let (processor, mut stop) = (processor.clone(), stdin_closed());
                async move {
                    let _ = stop.wait_for(|stopped| *stopped).await;
                    processor.stop().await
                }
            });
            let mut readers = tokio::task::JoinSet::new();
            while let Some(mut partition) = processor.next_partition().await {
                say(format_args!("claimed {}", partition.partition_id()));
                readers.spawn(async move {
                    let p = partition.partition_id().to_owned();
                    while let Some(event) = partition.next_event().await {
                        let seq = event.sequence_number().unwrap();
                        say(format_args!("event {p} {seq}"));
                        match partition.checkpoint(&event).await {
                            Ok(true) => say(format_args!("checkpoint {p} {seq}")),
                            Ok(false) => {}
                            Err(err) => say(format_args!("note checkpoint {p} {seq}: {err}")),
                        }
                    }
                    say(format_args!("lost {p} {:?}", partition.stop_reason()));
                });
            }
            while readers.join_next().await.is_some() {}
            // The readers have stopped; the last positions are written and the partitions
            // relinquished.
            stopping.await.unwrap().unwrap();
        }

        /// The handler API: each batch's events reported, the batch checkpointed by the
        /// processor once `process_events` returns.
        struct Report;

        #[async_trait::async_trait]
        impl EventHandler for Report {
            async fn process_events(
                &self,
                partition: &PartitionContext,
                events: Vec<azure_messaging_eventhubs::models::ReceivedEventData>,
            ) -> Result<(), BoxError> {
                for event in &events {
                    let seq = event
                        .sequence_number()
                        .ok_or("an event with no sequence number")?;
                    say(format_args!("event {} {seq}", partition.partition_id));
                }
                Ok(())
            }

            async fn process_error(&self, partition: &PartitionContext, error: BoxError) {
                say(format_args!("error {}: {error}", partition.partition_id));
            }

            async fn partition_opened(&self, partition: &PartitionContext) {
                say(format_args!("claimed {}", partition.partition_id));
            }

            async fn partition_closed(&self, partition: &PartitionContext, reason: StopReason) {
                say(format_args!("lost {} {reason:?}", partition.partition_id));
            }
        }
    }

    /// The official processor, until stdin closes.
    pub(crate) fn run_processor() {
        let var = |name: &str| std::env::var(name).unwrap();
        trace();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Partition streams are not `Send`: everything runs on one thread.
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, async {
            let store: Arc<dyn azure_messaging_eventhubs::CheckpointStore + Send + Sync> =
                match var("E2E_STORE").split_once(':') {
                    Some(("blob", container)) => Arc::new(
                        BlobCheckpointStore::from_connection_string(
                            &common::connection_string(),
                            container,
                            None,
                        )
                        .unwrap(),
                    ),
                    Some(("table", table)) => Arc::new(
                        TableCheckpointStore::from_connection_string(
                            &common::connection_string(),
                            table,
                            None,
                        )
                        .unwrap(),
                    ),
                    other => panic!("E2E_STORE {other:?}"),
                };
            let consumer = eventhubs::consumer_client(&var("E2E_HUB"), &var("E2E_GROUP")).await;
            let max = std::env::var("E2E_MAX_PARTITIONS").ok();
            let max = max.map(|max| max.parse().unwrap());
            let processor =
                eventhubs::official_processor(consumer, store, INTERVAL, EXPIRATION, max).await;
            // The processor's loop ends on its first failed cycle (0.15): say so at once, or
            // a node that stopped claiming looks like a slow one.
            let running = tokio::task::spawn_local({
                let processor = processor.clone();
                async move {
                    let result = processor.run().await;
                    if let Err(err) = &result {
                        say(format_args!("error run ended {err}"));
                    }
                    result
                }
            });
            let mut stop = stdin_closed();
            loop {
                tokio::select! {
                    client = processor.next_partition_client() => match client {
                        Ok(client) => {
                            tokio::task::spawn_local(consume(client));
                        }
                        Err(err) => say(format_args!("error next_partition_client {err}")),
                    },
                    _ = stop.wait_for(|stopped| *stopped) => break,
                }
            }
            processor.shutdown().await.unwrap();
            let _ = running.await;
            say(format_args!("stopped"));
        });
    }

    /// Processes one partition: every event is reported, and every `CHECKPOINT_EVERY`th (by
    /// sequence number) checkpointed.
    async fn consume(client: Arc<PartitionClient>) {
        let partition = client.get_partition_id().to_owned();
        say(format_args!("claimed {partition}"));
        let why = process(&client, &partition).await;
        // Closing the partition client takes it out of the processor's map: without it, the
        // processor never hands this partition out again, should it get it back.
        if let Ok(client) = Arc::try_unwrap(client) {
            let _ = client.close().await;
        }
        say(format_args!("lost {partition} {why}"));
    }

    /// Processes one partition until its stream ends; why it ended.
    async fn process(client: &PartitionClient, partition: &str) -> String {
        let mut events = client.stream_events();
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(event) => event,
                Err(err) => return err.to_string(),
            };
            let Some(seq) = event.sequence_number() else {
                continue;
            };
            say(format_args!("event {partition} {seq}"));
            if seq % CHECKPOINT_EVERY == CHECKPOINT_EVERY - 1 {
                match client.update_checkpoint(&event).await {
                    Ok(()) => say(format_args!("checkpoint {partition} {seq}")),
                    Err(err) => say(format_args!("checkpoint-failed {partition} {seq} {err}")),
                }
            }
        }
        "the stream ended".into()
    }
}

// ---------------------------------------------------------------------------------------------
// The conductor side: nodes started, their lines tallied.

/// What every node reported, in arrival order per node.
#[derive(Default)]
pub(crate) struct Tally {
    /// (partition, sequence number) -> the nodes that processed it, in order.
    pub(crate) processed: BTreeMap<(String, i64), Vec<String>>,
    /// Per node and partition: the last event it processed, and its last acknowledged checkpoint.
    pub(crate) last: HashMap<(String, String), i64>,
    pub(crate) acked: HashMap<(String, String), i64>,
    /// Per node and partition: the first event it processed after each claim.
    pub(crate) resumed: Vec<(String, String, i64)>,
    /// Per node: partitions claimed and not lost since.
    pub(crate) holding: HashMap<String, BTreeSet<String>>,
    /// Partitions whose first event after a claim is still to come, per node.
    pub(crate) awaiting_first: HashMap<String, BTreeSet<String>>,
    pub(crate) stopped: BTreeSet<String>,
    pub(crate) errors: Vec<String>,
    /// Every `lost` line: (node, partition, why).
    pub(crate) losses: Vec<(String, String, String)>,
    /// Every `claimed` line, in order: (node, partition).
    pub(crate) claims: Vec<(String, String)>,
    /// Every checkpoint acknowledged: (node, partition, sequence number).
    pub(crate) acks: BTreeSet<(String, String, i64)>,
    /// Errors a client reported and recovered from (Python's `on_error`).
    pub(crate) notes: Vec<String>,
    /// (node, partition) that failed to reopen with the client's dead-session error.
    pub(crate) wedged: BTreeSet<(String, String)>,
}

impl Tally {
    pub(crate) fn absorb(&mut self, node: &str, line: &str) {
        let words: Vec<&str> = line.splitn(3, ' ').collect();
        let key = |p: &str| (node.to_owned(), p.to_owned());
        match words.as_slice() {
            ["claimed", p] => {
                self.claims.push((node.into(), p.to_string()));
                self.holding
                    .entry(node.into())
                    .or_default()
                    .insert(p.to_string());
                self.awaiting_first
                    .entry(node.into())
                    .or_default()
                    .insert(p.to_string());
            }
            ["event", p, seq] => {
                let seq: i64 = seq.parse().unwrap();
                self.processed
                    .entry((p.to_string(), seq))
                    .or_default()
                    .push(node.into());
                self.last.insert(key(p), seq);
                if self
                    .awaiting_first
                    .get_mut(node)
                    .is_some_and(|a| a.remove(*p))
                {
                    self.resumed.push((node.into(), p.to_string(), seq));
                }
            }
            ["checkpoint", p, seq] => {
                let seq: i64 = seq.parse().unwrap();
                self.acks.insert((node.into(), p.to_string(), seq));
                self.acked.insert(key(p), seq);
            }
            ["lost", p, why] => {
                self.holding.entry(node.into()).or_default().remove(*p);
                self.losses
                    .push((node.into(), p.to_string(), why.to_string()));
                if WEDGE_SIGNS.iter().any(|sign| why.contains(sign)) && !why.starts_with(REOPENING)
                {
                    self.wedged.insert(key(p));
                }
            }
            ["note", ..] => self.notes.push(format!("{node}: {line}")),
            ["stopped"] => {
                self.stopped.insert(node.into());
            }
            _ => self.errors.push(format!("{node}: {line}")),
        }
    }

    /// Events of `hub` (with `counts` per partition) processed by nobody.
    pub(crate) fn missing(&self, counts: &[(String, u64)]) -> Vec<(String, i64)> {
        counts
            .iter()
            .flat_map(|(p, n)| (0..*n as i64).map(move |s| (p.clone(), s)))
            .filter(|k| !self.processed.contains_key(k))
            .collect()
    }

    /// Whether every partition `node` holds (at least one) has reached event `last` and its
    /// acknowledged checkpoint `acked`.
    pub(crate) fn reached(&self, node: &str, last: i64, acked: i64) -> bool {
        self.holding.get(node).is_some_and(|h| {
            !h.is_empty()
                && h.iter().all(|p| {
                    let key = (node.to_owned(), p.clone());
                    self.last.get(&key) == Some(&last) && self.acked.get(&key) == Some(&acked)
                })
        })
    }

    /// Whether every partition `node` holds (at least one) has reached event `last`, past a
    /// checkpoint it had acknowledged.
    pub(crate) fn read_past_checkpoints(&self, node: &str, last: i64) -> bool {
        self.holding.get(node).is_some_and(|h| {
            !h.is_empty()
                && h.iter().all(|p| {
                    let key = (node.to_owned(), p.clone());
                    self.last.get(&key) == Some(&last)
                        && self.acked.get(&key).is_some_and(|acked| *acked < last)
                })
        })
    }

    /// Partitions one of this crate's processors took from a consumer that kept reading them,
    /// could not read, and gave back (see `PartitionBalancer::give_back`), with the processor that
    /// gave each back: its last `lost` line for the partition says `Failed`, and the node reading
    /// it claimed it before that processor last did and holds it still. (The 0.15 client's
    /// receivers carry no owner level, so JavaScript's consumer, which stops reading only when a
    /// receiver with one displaces it, keeps reading what is taken from it.)
    pub(crate) fn given_back(&self) -> BTreeMap<String, String> {
        let last_losses: BTreeMap<(&String, &String), &String> = (self.losses.iter())
            .map(|(node, p, why)| ((node, p), why))
            .collect();
        let mut given = BTreeMap::new();
        for ((giver, p), why) in last_losses {
            if why != "Some(Failed)" {
                continue;
            }
            let claimed_at =
                |node: &str| self.claims.iter().rposition(|(n, q)| n == node && q == p);
            let reader = self.holding.iter().find(|(n, held)| {
                *n != giver
                    && held.contains(p)
                    && claimed_at(n).is_some_and(|at| claimed_at(giver).is_some_and(|g| at < g))
            });
            if reader.is_some() {
                given.insert(p.clone(), giver.clone());
            }
        }
        given
    }

    /// Events processed again because a partition was taken from a live consumer by one that
    /// started at once (every other language's processor takes so, and Python's, JavaScript's and
    /// the official processor give up only at their next cycle or when displaced): from where the
    /// taker resumed to the last event the old owner processed, once per such take-over (an
    /// event can be processed a third time when its partition is taken again before anybody
    /// checkpointed past it). Each such taker must have resumed
    /// right after a checkpoint somebody acknowledged. Take-overs of `victims`' partitions after
    /// their deaths are left to [`Victim::reprocessed`]; a move between two of `handing_over`
    /// (this crate's processors, which hand over) must reprocess nothing.
    pub(crate) fn taken_from_the_living(
        &self,
        victims: &[&Victim],
        handing_over: &[&str],
    ) -> Vec<(String, i64)> {
        let mut again = Vec::new();
        for (i, (taker, p, resumed)) in self.resumed.iter().enumerate() {
            // Who processed `seq` just before the taker did.
            let before_taker = |seq: i64| {
                let by = self.processed.get(&(p.clone(), seq))?;
                let at = by.iter().position(|n| n == taker)?;
                by[..at].last()
            };
            let Some(giver) = before_taker(*resumed) else {
                continue;
            };
            let died = victims
                .iter()
                .any(|v| v.name == *giver && i >= v.resumes_before && v.partitions.contains(p));
            if died {
                continue;
            }
            assert!(
                !(handing_over.contains(&giver.as_str()) && handing_over.contains(&taker.as_str())),
                "partition {p}: handed over from {giver} to {taker}, yet {resumed} processed twice"
            );
            assert!(
                (self.acks.iter()).any(|(_, q, seq)| q == p && *seq == resumed - 1),
                "partition {p}: {taker} took it from {giver}, alive, and resumed at {resumed}, \
                 not right after an acknowledged checkpoint"
            );
            again.extend(
                (*resumed..)
                    .map_while(|seq| (before_taker(seq) == Some(giver)).then(|| (p.clone(), seq))),
            );
        }
        again
    }

    /// Events processed more than once.
    pub(crate) fn twice(&self) -> Vec<(&(String, i64), &Vec<String>)> {
        self.processed
            .iter()
            .filter(|(_, by)| by.len() > 1)
            .collect()
    }
}

/// How a test starts a node of one kind: [`Fleet::start`], [`Fleet::start_balancer`]...
pub(crate) type Start = fn(&mut Fleet, &str);

/// A fleet of nodes over one hub, group and store.
pub(crate) struct Fleet {
    pub(crate) test: &'static str,
    pub(crate) hub: String,
    pub(crate) group: String,
    pub(crate) store: String,
    pub(crate) tally: Arc<Mutex<Tally>>,
    pub(crate) nodes: Vec<(String, Child)>,
    /// Each node's stdout reader, which ends once the node has exited and its last line is in
    /// the tally.
    pub(crate) readers: HashMap<String, std::thread::JoinHandle<()>>,
}

impl Fleet {
    pub(crate) fn new(test: &'static str, hub: &str, store: &str) -> Self {
        Self {
            test,
            hub: hub.to_owned(),
            group: "$Default".into(),
            store: store.to_owned(),
            tally: Arc::default(),
            nodes: Vec::new(),
            readers: HashMap::new(),
        }
    }

    /// Starts node `name`: the official Rust processor, in a copy of this test binary running
    /// only `self.test`.
    pub(crate) fn start(&mut self, name: &str) {
        self.start_limited(name, None);
    }

    /// Starts node `name`: a consumer of this crate's own (`node::balancer`), through the
    /// processor's pull API.
    pub(crate) fn start_balancer(&mut self, name: &str) {
        let mut command = self.node(name);
        command.env("E2E_KIND", "balancer");
        self.spawn(name, command);
    }

    /// Starts node `name` as [`Fleet::start_balancer`] does, through the handler API
    /// ([`Processor::run`](eventhub_checkpointstore::processor::Processor::run)).
    pub(crate) fn start_handler(&mut self, name: &str) {
        let mut command = self.node(name);
        command
            .env("E2E_KIND", "balancer")
            .env("E2E_API", "handler");
        self.spawn(name, command);
    }

    /// Starts node `name` as [`Fleet::start`] does; with `max_partitions`, its processor sees
    /// only that many of the hub's partitions (the first ones).
    pub(crate) fn start_limited(&mut self, name: &str, max_partitions: Option<usize>) {
        let mut command = self.node(name);
        if let Some(max) = max_partitions {
            command.env("E2E_MAX_PARTITIONS", max.to_string());
        }
        self.spawn(name, command);
    }

    /// A copy of this test binary running only `self.test`, as node `name` of this fleet.
    pub(crate) fn node(&self, name: &str) -> Command {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args([self.test, "--exact", "--nocapture", "--test-threads=1"])
            .env("E2E_NODE", name)
            .env("E2E_HUB", &self.hub)
            .env("E2E_GROUP", &self.group)
            .env("E2E_STORE", &self.store);
        command
    }

    /// Starts node `name`: Python's `EventHubConsumerClient` with its blob checkpoint store
    /// (`tools/python-peer/consumer.py`), on the same container.
    pub(crate) fn start_python(&mut self, name: &str) {
        let mut command = Command::new(python());
        command.arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tools/python-peer/consumer.py"
        ));
        self.peer_args(&mut command);
        self.spawn(name, command);
    }

    /// Starts node `name`: JavaScript's `EventHubConsumerClient` with its blob checkpoint store
    /// (`tools/js-peer/consumer.js`), on the same container.
    pub(crate) fn start_js(&mut self, name: &str) {
        let mut command = Command::new("node");
        command.arg(format!("{}/consumer.js", js_peer()));
        self.peer_args(&mut command);
        self.spawn(name, command);
    }

    /// What the other languages' consumers take, in this order: the storage connection string,
    /// the container, the endpoint, the hub, the group, interval, expiration, checkpoint every.
    fn peer_args(&self, command: &mut Command) {
        let container = self
            .store
            .strip_prefix("blob:")
            .expect("the other languages' stores are blob stores");
        command.args([
            common::connection_string().as_str(),
            container,
            &eventhubs::amqp_url(),
            &self.hub,
            &self.group,
            &INTERVAL.as_secs_f64().to_string(),
            &EXPIRATION.as_secs_f64().to_string(),
            &CHECKPOINT_EVERY.to_string(),
        ]);
    }

    pub(crate) fn spawn(&mut self, name: &str, mut command: Command) {
        if let Ok(dir) = std::env::var("E2E_LOG_DIR") {
            let err = std::fs::File::create(format!("{dir}/{}-{name}.err", self.test)).unwrap();
            command.stderr(err);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start a processor");
        let stdout = child.stdout.take().unwrap();
        let tally = self.tally.clone();
        let node = name.to_owned();
        let mut log = std::env::var("E2E_LOG_DIR")
            .ok()
            .map(|dir| std::fs::File::create(format!("{dir}/{}-{name}.log", self.test)).unwrap());
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(log) = log.as_mut() {
                    let _ = writeln!(log, "{line}");
                }
                // The test harness prints its own text around the node's.
                if let Some(at) = line.find(MARK) {
                    tally
                        .lock()
                        .unwrap()
                        .absorb(&node, &line[at + MARK.len()..]);
                }
            }
        });
        self.nodes.push((name.to_owned(), child));
        self.readers.insert(name.to_owned(), reader);
    }

    /// Waits for node `name`'s last lines to be tallied (it has exited).
    pub(crate) fn drain(&mut self, name: &str) {
        if let Some(reader) = self.readers.remove(name) {
            reader.join().expect("a node's reader");
        }
    }

    /// Waits until `done` holds of the tally (checked every 200 ms), or fails with `what`.
    pub(crate) fn until(&self, what: &str, done: impl Fn(&Tally) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !done(&self.tally.lock().unwrap()) {
            self.check(what, deadline);
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// What `found` first sees in the tally (checked every 100 ms), or `None` once `within` has
    /// passed: for what a consumer may rightly never do, where [`until`](Self::until) fails.
    pub(crate) fn first_within<T>(
        &self,
        within: Duration,
        found: impl Fn(&Tally) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(found) = found(&self.tally.lock().unwrap()) {
                return Some(found);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the owners' shares of the partitions, by the store, are `shares` (in any
    /// order: the official processor and Python's consumer name themselves), unchanged over
    /// three intervals, with every partition owned. (An official processor learns of a loss at
    /// its partition's next event only, so its own account may lag.)
    /// The split may differ from `shares` by partitions this crate's processors gave back to a
    /// consumer that kept reading them ([`Tally::given_back`]): counted as the giver's, some of
    /// them must make it `shares` (the processor takes nothing from that consumer for a while, so
    /// it cannot even the split out; without the 0.15 client's missing owner level it would hold
    /// them).
    pub(crate) fn settle(&self, store: &dyn CheckpointStore, shares: &[usize]) {
        let mut shares = shares.to_vec();
        shares.sort_unstable();
        let partitions: usize = shares.iter().sum();
        let deadline = Instant::now() + DEADLINE;
        let mut stable = (BTreeMap::new(), 0);
        while stable.1 < 3 {
            let owners = owners(store, &scope(&self.hub));
            let given: Vec<(String, String)> = self
                .tally
                .lock()
                .unwrap()
                .given_back()
                .into_iter()
                .collect();
            // Any subset of what was given back counted as its giver's (our nodes' owner ids are
            // their names); the empty subset first.
            let fair = (0..1u32 << given.len().min(8)).any(|subset| {
                let mut per: BTreeMap<&String, usize> = BTreeMap::new();
                for (partition, owner) in &owners {
                    let counted = given
                        .iter()
                        .enumerate()
                        .find(|(i, (p, _))| subset & (1 << i) != 0 && p == partition)
                        .map_or(owner, |(_, (_, giver))| giver);
                    *per.entry(counted).or_default() += 1;
                }
                let mut held: Vec<usize> = per.into_values().collect();
                held.sort_unstable();
                held == shares
            });
            let settled = owners.len() == partitions && fair;
            stable = if settled && owners == stable.0 {
                (owners, stable.1 + 1)
            } else {
                (owners, 0)
            };
            self.check(&format!("settle at {shares:?}: {:?}", stable.0), deadline);
            std::thread::sleep(INTERVAL);
        }
    }

    /// Fails, saying why, once a client is wedged or `deadline` has passed.
    pub(crate) fn check(&self, what: &str, deadline: Instant) {
        let tally = self.tally.lock().unwrap();
        assert!(
            tally.wedged.is_empty(),
            "{what}: the client 0.15 cannot reopen (node, partition) {:?}: its cached AMQP \
             session for the partition or its connection is dead ({WEDGE_SIGNS:?}); the processor keeps the claim \
             and reads nothing",
            tally.wedged
        );
        assert!(
            Instant::now() < deadline,
            "{what}: not within {DEADLINE:?}; errors {:?}; holding {:?}; last events {:?}",
            tally.errors,
            tally.holding,
            tally.last
        );
    }

    /// SIGKILL: no shutdown, no last checkpoint. What the node held and how far it got.
    pub(crate) fn kill(&mut self, name: &str) -> Victim {
        let (_, child) = self.nodes.iter_mut().find(|(n, _)| n == name).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        self.drain(name);
        let tally = self.tally.lock().unwrap();
        let partitions = tally.holding.get(name).cloned().unwrap_or_default();
        let key = |p: &String| (name.to_owned(), p.clone());
        Victim {
            name: name.to_owned(),
            last: partitions
                .iter()
                .filter_map(|p| Some((p.clone(), *tally.last.get(&key(p))?)))
                .collect(),
            acked: partitions
                .iter()
                .map(|p| (p.clone(), tally.acked.get(&key(p)).copied().unwrap_or(-1)))
                .collect(),
            partitions,
            resumes_before: tally.resumed.len(),
        }
    }

    /// Graceful stop of node `name`: its stdin closes; returns once it has exited.
    pub(crate) fn stop(&mut self, name: &str) {
        let (_, child) = self.nodes.iter_mut().find(|(n, _)| n == name).unwrap();
        drop(child.stdin.take());
        let status = child.wait().unwrap();
        assert!(status.success(), "node {name} exited with {status}");
        self.drain(name);
    }

    /// Graceful stop of every node still running: its stdin closes.
    pub(crate) fn stop_all(&mut self) {
        for (name, child) in &mut self.nodes {
            if child.try_wait().unwrap().is_none() {
                drop(child.stdin.take());
                // A node that does not stop (a wedged client's shutdown can hang) fails the
                // test by name instead of hanging it.
                let deadline = Instant::now() + DEADLINE;
                let status = loop {
                    if let Some(status) = child.try_wait().unwrap() {
                        break status;
                    }
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        panic!("node {name} did not stop within {DEADLINE:?} of being asked");
                    }
                    std::thread::sleep(Duration::from_millis(50));
                };
                assert!(status.success(), "node {name} exited with {status}");
            }
        }
        let names: Vec<String> = self.readers.keys().cloned().collect();
        for name in names {
            self.drain(&name);
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for (_, child) in &mut self.nodes {
            let _ = child.kill();
        }
    }
}

/// A SIGKILLed node: the partitions it held, and per partition the last event it processed and
/// its last acknowledged checkpoint (-1: none).
pub(crate) struct Victim {
    pub(crate) name: String,
    pub(crate) partitions: BTreeSet<String>,
    pub(crate) last: BTreeMap<String, i64>,
    pub(crate) acked: BTreeMap<String, i64>,
    /// How many resumes the tally held when it died: later ones are take-overs.
    pub(crate) resumes_before: usize,
}

impl Victim {
    /// Checks that each of its partitions was taken over right after a checkpoint it wrote: its
    /// last acknowledged one, or a later one it did not live to see acknowledged. Returns the
    /// events its death has processed twice: those it processed past where each was resumed.
    pub(crate) fn reprocessed(&self, tally: &Tally) -> BTreeSet<(String, i64)> {
        let mut twice = BTreeSet::new();
        for p in &self.partitions {
            let (taker, resumed) = tally.resumed[self.resumes_before..]
                .iter()
                .find(|(_, q, _)| q == p)
                .map(|(n, _, seq)| (n, *seq))
                .unwrap_or_else(|| panic!("nobody resumed {}'s partition {p}", self.name));
            let (acked, last) = (self.acked[p], self.last.get(p).copied().unwrap_or(-1));
            assert!(
                resumed > acked && resumed <= last + 1,
                "partition {p}: {taker} resumed at {resumed}; {}'s last acknowledged checkpoint \
                 {acked}, last event {last}",
                self.name
            );
            twice.extend((resumed..=last).map(|seq| (p.clone(), seq)));
        }
        twice
    }
}

/// The directory of JavaScript's consumer (`scripts/js-peer.sh`, which `scripts/test.sh` runs).
pub(crate) fn js_peer() -> String {
    std::env::var("JS_PEER").unwrap_or_else(|_| {
        panic!(
            "JS_PEER is not set. Run the tests with scripts/test.sh, which installs JavaScript's \
             consumer with scripts/js-peer.sh, or set it to the directory that prints."
        )
    })
}

/// The Python of the peer venv (`scripts/python-peer.sh`, which `scripts/test.sh` runs).
pub(crate) fn python() -> String {
    std::env::var("PYTHON_PEER").unwrap_or_else(|_| {
        panic!(
            "PYTHON_PEER is not set. Run the tests with scripts/test.sh, which installs Python's \
             consumer with scripts/python-peer.sh, or set it to the python that prints."
        )
    })
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// Owner of each partition with a live claim, by the store.
pub(crate) fn owners(store: &dyn CheckpointStore, scope: &Scope) -> BTreeMap<String, String> {
    runtime().block_on(async {
        let now = time::OffsetDateTime::now_utc();
        store
            .list_ownership(scope)
            .await
            .unwrap()
            .into_iter()
            .filter(|o| o.last_modified.is_some_and(|t| now - t < EXPIRATION))
            .filter_map(|o| Some((o.partition_id, o.owner_id?)))
            .collect()
    })
}

/// Each partition's checkpointed sequence number, by the store.
pub(crate) fn checkpoints(
    store: &dyn CheckpointStore,
    scope: &Scope,
) -> BTreeMap<String, Option<i64>> {
    runtime().block_on(async {
        store
            .list_checkpoints(scope)
            .await
            .unwrap()
            .into_iter()
            .map(|c| (c.partition_id, c.sequence_number))
            .collect()
    })
}

pub(crate) fn blob_store() -> (String, BlobCheckpointStore) {
    let container = runtime().block_on(common::fresh_container());
    let store = common::store_on(&container, None);
    (format!("blob:{container}"), store)
}

pub(crate) fn table_store() -> (String, TableCheckpointStore) {
    let table = common::unique_container();
    let store =
        TableCheckpointStore::from_connection_string(&common::connection_string(), &table, None)
            .unwrap();
    runtime().block_on(store.create_table_if_missing()).unwrap();
    (format!("table:{table}"), store)
}

pub(crate) fn scope(hub: &str) -> Scope {
    Scope::new(eventhubs::NAMESPACE, hub, "$Default")
}

pub(crate) fn all_processed(counts: &[(String, u64)]) -> impl Fn(&Tally) -> bool + '_ {
    move |t| t.missing(counts).is_empty()
}
