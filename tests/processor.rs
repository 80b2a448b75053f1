//! The official Rust `EventProcessor` (`azure_messaging_eventhubs` 0.15) with this crate's stores,
//! end to end: real events from the local Event Hubs endpoint, processors in OS processes of their
//! own, ownership and checkpoints in Azurite. Every (partition, sequence number) each processor
//! processes is counted.
//!
//! The test binary is its own helper: a test starts copies of itself running only that test with
//! `E2E_NODE` set, which makes the copy one processor (`node`). A node prints one line per fact:
//! `claimed P`, `event P SEQ`, `checkpoint P SEQ` once the store acknowledged it, `lost P WHY`,
//! and `stopped` after a graceful shutdown (its stdin closing asks for one).

use eventhub_checkpointstore::{BlobCheckpointStore, CheckpointStore, Scope, TableCheckpointStore};
use eventhub_checkpointstore_testkit::{
    self as common,
    eventhubs::{self, create_hub, HubSpec},
};
use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    io::{BufRead, BufReader, Write},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

const CHECKPOINT_EVERY: i64 = 25;
const INTERVAL: Duration = Duration::from_secs(1);
const EXPIRATION: Duration = Duration::from_secs(4);
const DEADLINE: Duration = Duration::from_secs(120);
/// What marks a node's lines in its output.
const MARK: &str = "@node ";
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
const WEDGE_SIGNS: [&str; 2] = ["Illegal session state", "Connection must have been closed"];
/// How a consumer of this crate's own says it reopens a partition whose reader failed.
const REOPENING: &str = "reopening after: ";

// ---------------------------------------------------------------------------------------------
// A node: one processor process.

mod node {
    use super::*;
    use azure_messaging_eventhubs::processor::PartitionClient;
    use futures::StreamExt;

    /// One fact on stdout, marked: the test harness prints its own text around the node's.
    fn say(line: std::fmt::Arguments) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{MARK}{line}").and_then(|()| out.flush());
    }

    /// With `E2E_TRACE`, the node's logs on stderr (a file of its own with `E2E_LOG_DIR`).
    fn trace() {
        if std::env::var("E2E_TRACE").is_ok() {
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::DEBUG)
                .with_writer(std::io::stderr)
                .init();
        }
    }

    pub fn is_node() -> bool {
        std::env::var("E2E_NODE").is_ok()
    }

    /// Turns true when stdin closes: how the conductor asks a node to stop.
    fn stdin_closed() -> tokio::sync::watch::Receiver<bool> {
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
    fn run_processor() {
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
struct Tally {
    /// (partition, sequence number) -> the nodes that processed it, in order.
    processed: BTreeMap<(String, i64), Vec<String>>,
    /// Per node and partition: the last event it processed, and its last acknowledged checkpoint.
    last: HashMap<(String, String), i64>,
    acked: HashMap<(String, String), i64>,
    /// Per node and partition: the first event it processed after each claim.
    resumed: Vec<(String, String, i64)>,
    /// Per node: partitions claimed and not lost since.
    holding: HashMap<String, BTreeSet<String>>,
    /// Partitions whose first event after a claim is still to come, per node.
    awaiting_first: HashMap<String, BTreeSet<String>>,
    stopped: BTreeSet<String>,
    errors: Vec<String>,
    /// Errors a client reported and recovered from (Python's `on_error`).
    notes: Vec<String>,
    /// (node, partition) that failed to reopen with the client's dead-session error.
    wedged: BTreeSet<(String, String)>,
}

impl Tally {
    fn absorb(&mut self, node: &str, line: &str) {
        let words: Vec<&str> = line.splitn(3, ' ').collect();
        let key = |p: &str| (node.to_owned(), p.to_owned());
        match words.as_slice() {
            ["claimed", p] => {
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
                self.acked.insert(key(p), seq.parse().unwrap());
            }
            ["lost", p, why] => {
                self.holding.entry(node.into()).or_default().remove(*p);
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
    fn missing(&self, counts: &[(String, u64)]) -> Vec<(String, i64)> {
        counts
            .iter()
            .flat_map(|(p, n)| (0..*n as i64).map(move |s| (p.clone(), s)))
            .filter(|k| !self.processed.contains_key(k))
            .collect()
    }

    /// Events processed more than once.
    fn twice(&self) -> Vec<(&(String, i64), &Vec<String>)> {
        self.processed
            .iter()
            .filter(|(_, by)| by.len() > 1)
            .collect()
    }
}

/// How a test starts a node of one kind: [`Fleet::start`], [`Fleet::start_balancer`]...
type Start = fn(&mut Fleet, &str);

/// A fleet of nodes over one hub, group and store.
struct Fleet {
    test: &'static str,
    hub: String,
    group: String,
    store: String,
    tally: Arc<Mutex<Tally>>,
    nodes: Vec<(String, Child)>,
    /// Each node's stdout reader, which ends once the node has exited and its last line is in
    /// the tally.
    readers: HashMap<String, std::thread::JoinHandle<()>>,
}

impl Fleet {
    fn new(test: &'static str, hub: &str, store: &str) -> Self {
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
    fn start(&mut self, name: &str) {
        self.start_limited(name, None);
    }

    /// Starts node `name`: a consumer of this crate's own (`node::balancer`), through the
    /// processor's pull API.
    fn start_balancer(&mut self, name: &str) {
        let mut command = self.node(name);
        command.env("E2E_KIND", "balancer");
        self.spawn(name, command);
    }

    /// Starts node `name` as [`Fleet::start_balancer`] does, through the handler API
    /// ([`Processor::run`](eventhub_checkpointstore::processor::Processor::run)).
    fn start_handler(&mut self, name: &str) {
        let mut command = self.node(name);
        command
            .env("E2E_KIND", "balancer")
            .env("E2E_API", "handler");
        self.spawn(name, command);
    }

    /// Starts node `name` as [`Fleet::start`] does; with `max_partitions`, its processor sees
    /// only that many of the hub's partitions (the first ones).
    fn start_limited(&mut self, name: &str, max_partitions: Option<usize>) {
        let mut command = self.node(name);
        if let Some(max) = max_partitions {
            command.env("E2E_MAX_PARTITIONS", max.to_string());
        }
        self.spawn(name, command);
    }

    /// A copy of this test binary running only `self.test`, as node `name` of this fleet.
    fn node(&self, name: &str) -> Command {
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
    fn start_python(&mut self, name: &str) {
        let container = self
            .store
            .strip_prefix("blob:")
            .expect("Python's store is a blob store");
        let mut command = Command::new(python());
        command
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tools/python-peer/consumer.py"
            ))
            .args([
                common::connection_string().as_str(),
                container,
                &eventhubs::amqp_url(),
                &self.hub,
                &self.group,
                &INTERVAL.as_secs_f64().to_string(),
                &EXPIRATION.as_secs_f64().to_string(),
                &CHECKPOINT_EVERY.to_string(),
            ]);
        self.spawn(name, command);
    }

    fn spawn(&mut self, name: &str, mut command: Command) {
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
    fn drain(&mut self, name: &str) {
        if let Some(reader) = self.readers.remove(name) {
            reader.join().expect("a node's reader");
        }
    }

    /// Waits until `done` holds of the tally (checked every 200 ms), or fails with `what`.
    fn until(&self, what: &str, done: impl Fn(&Tally) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !done(&self.tally.lock().unwrap()) {
            self.check(what, deadline);
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until the owners' shares of the partitions, by the store, are `shares` (in any
    /// order: the official processor and Python's consumer name themselves), unchanged over
    /// three intervals, with every partition owned. (An official processor learns of a loss at
    /// its partition's next event only, so its own account may lag.)
    fn settle(&self, store: &dyn CheckpointStore, shares: &[usize]) {
        let mut shares = shares.to_vec();
        shares.sort_unstable();
        let partitions: usize = shares.iter().sum();
        let deadline = Instant::now() + DEADLINE;
        let mut stable = (BTreeMap::new(), 0);
        while stable.1 < 3 {
            let owners = owners(store, &scope(&self.hub));
            let mut per: BTreeMap<&String, usize> = BTreeMap::new();
            for owner in owners.values() {
                *per.entry(owner).or_default() += 1;
            }
            let mut held: Vec<usize> = per.into_values().collect();
            held.sort_unstable();
            let settled = owners.len() == partitions && held == shares;
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
    fn check(&self, what: &str, deadline: Instant) {
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
    fn kill(&mut self, name: &str) -> Victim {
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
    fn stop(&mut self, name: &str) {
        let (_, child) = self.nodes.iter_mut().find(|(n, _)| n == name).unwrap();
        drop(child.stdin.take());
        let status = child.wait().unwrap();
        assert!(status.success(), "node {name} exited with {status}");
        self.drain(name);
    }

    /// Graceful stop of every node still running: its stdin closes.
    fn stop_all(&mut self) {
        for (name, child) in &mut self.nodes {
            if child.try_wait().unwrap().is_none() {
                drop(child.stdin.take());
                let status = child.wait().unwrap();
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
struct Victim {
    name: String,
    partitions: BTreeSet<String>,
    last: BTreeMap<String, i64>,
    acked: BTreeMap<String, i64>,
    /// How many resumes the tally held when it died: later ones are take-overs.
    resumes_before: usize,
}

impl Victim {
    /// Checks that each of its partitions was taken over right after a checkpoint it wrote: its
    /// last acknowledged one, or a later one it did not live to see acknowledged. Returns the
    /// events its death has processed twice: those it processed past where each was resumed.
    fn reprocessed(&self, tally: &Tally) -> BTreeSet<(String, i64)> {
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

/// The Python of the peer venv (`scripts/python-peer.sh`, which `scripts/test.sh` runs).
fn python() -> String {
    std::env::var("PYTHON_PEER").unwrap_or_else(|_| {
        panic!(
            "PYTHON_PEER is not set. Run the tests with scripts/test.sh, which installs Python's \
             consumer with scripts/python-peer.sh, or set it to the python that prints."
        )
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// Owner of each partition with a live claim, by the store.
fn owners(store: &dyn CheckpointStore, scope: &Scope) -> BTreeMap<String, String> {
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
fn checkpoints(store: &dyn CheckpointStore, scope: &Scope) -> BTreeMap<String, Option<i64>> {
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

fn blob_store() -> (String, BlobCheckpointStore) {
    let container = runtime().block_on(common::fresh_container());
    let store = common::store_on(&container, None);
    (format!("blob:{container}"), store)
}

fn table_store() -> (String, TableCheckpointStore) {
    let table = common::unique_container();
    let store =
        TableCheckpointStore::from_connection_string(&common::connection_string(), &table, None)
            .unwrap();
    runtime().block_on(store.create_table_if_missing()).unwrap();
    (format!("table:{table}"), store)
}

fn scope(hub: &str) -> Scope {
    Scope::new(eventhubs::NAMESPACE, hub, "$Default")
}

fn all_processed(counts: &[(String, u64)]) -> impl Fn(&Tally) -> bool + '_ {
    move |t| t.missing(counts).is_empty()
}

// ---------------------------------------------------------------------------------------------
// The scenarios.

/// Two consumers share 8 partitions while events keep coming: `a` claims all 8, `b` joins and
/// takes half of them, the producer runs on. Every event is processed, the partitions end split
/// 4/4, and the final checkpoints are at the last events. Returns the events processed more than
/// once, each by both consumers.
fn share(test: &'static str, start: Start) -> Vec<(String, i64)> {
    let hub = create_hub(
        "share",
        HubSpec {
            partitions: 8,
            preload: 50,
            rate: 10.0,
            total: Some(250),
        },
    );
    let (store_arg, store) = blob_store();
    let mut fleet = Fleet::new(test, &hub, &store_arg);
    start(&mut fleet, "a");
    fleet.until("a claims all 8 partitions", |t| {
        t.holding.get("a").is_some_and(|h| h.len() == 8)
    });
    start(&mut fleet, "b");
    let counts = || eventhubs::event_counts(&hub);
    fleet.until("b processes events", |t| {
        t.last.keys().any(|(n, _)| n == "b")
    });
    // The producer runs 20 s; then everything must be processed and the split settled.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let done = counts().iter().all(|(_, n)| *n == 250)
            && fleet.tally.lock().unwrap().missing(&counts()).is_empty();
        let split: Vec<usize> = {
            let owners = owners(&store, &scope(&hub));
            let mut per: BTreeMap<String, usize> = BTreeMap::new();
            for owner in owners.values() {
                *per.entry(owner.clone()).or_default() += 1;
            }
            per.into_values().collect()
        };
        if done && split == [4, 4] {
            break;
        }
        let missing = fleet.tally.lock().unwrap().missing(&counts()).len();
        fleet.check(
            &format!("settled (split {split:?}, {missing} missing)"),
            deadline,
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    fleet.stop_all();
    let tally = fleet.tally.lock().unwrap();
    assert_eq!(tally.stopped.len(), 2, "both stopped gracefully");
    assert!(tally.errors.is_empty(), "{:?}", tally.errors);
    let last = checkpoints(&store, &scope(&hub));
    assert_eq!(last.len(), 8);
    assert!(
        last.values().all(|s| *s == Some(249)),
        "final checkpoints at the last events: {last:?}"
    );
    let twice = tally.twice();
    for ((p, seq), by) in &twice {
        assert!(
            by.iter().any(|n| n == "a") && by.iter().any(|n| n == "b"),
            "partition {p} event {seq} processed by {by:?}: more than once by one consumer"
        );
    }
    twice.into_iter().map(|(key, _)| key.clone()).collect()
}

/// [`share`] with the official processor: the events processed twice while partitions moved
/// are counted and reported. With no epoch on its receivers (client 0.15), a processor that
/// lost a partition reads it on until its next cycle (the service does not cut it off), while
/// the new owner resumes from the last checkpoint: each move reprocesses what the old owner
/// read past its last checkpoint.
#[test]
fn two_processors_share_a_hub_and_end_at_the_last_events() {
    const TEST: &str = "two_processors_share_a_hub_and_end_at_the_last_events";
    if node::is_node() {
        return node::run();
    }
    let twice = share(TEST, Fleet::start);
    eprintln!(
        "two official processors, 8 partitions x 250 events: {} events processed twice while partitions moved",
        twice.len()
    );
}

/// [`share`] with consumers built on this crate's balancer and checkpointer: no event is
/// processed twice. A partition leaves the giver's `ready()` before anyone else may take it; the
/// giver stops processing it there, writes its last position and releases it, and the taker
/// resumes from that position.
#[test]
fn balancer_consumers_share_a_hub_without_processing_an_event_twice() {
    const TEST: &str = "balancer_consumers_share_a_hub_without_processing_an_event_twice";
    if node::is_node() {
        return node::run();
    }
    let twice = share(TEST, Fleet::start_balancer);
    assert!(
        twice.is_empty(),
        "processed twice while partitions moved between live consumers: {twice:?}"
    );
}

/// Consumers of this crate's own scale out 1 -> 2 -> 4 and back in to 2 (two stopped gracefully)
/// while events keep coming: every event is processed exactly once, each step's split settles
/// (every consumer its fair share), and the last checkpoints are at the last events.
#[test]
fn our_consumers_scale_out_and_in_without_processing_an_event_twice() {
    const TEST: &str = "our_consumers_scale_out_and_in_without_processing_an_event_twice";
    if node::is_node() {
        return node::run();
    }
    let hub = create_hub(
        "scale",
        HubSpec {
            partitions: 8,
            preload: 20,
            rate: 0.0,
            total: None,
        },
    );
    let (store_arg, store) = blob_store();
    let mut fleet = Fleet::new(TEST, &hub, &store_arg);
    // Events arrive all along, whatever the machine's speed: two per partition every 100 ms
    // until every step has settled.
    let producer = eventhubs::Producer::start(&hub, 8);
    fleet.start_balancer("a");
    fleet.settle(&store, &[8]);
    fleet.start_balancer("b");
    fleet.settle(&store, &[4, 4]);
    fleet.start_balancer("c");
    fleet.start_balancer("d");
    fleet.settle(&store, &[2, 2, 2, 2]);
    fleet.stop("c");
    fleet.stop("d");
    fleet.settle(&store, &[4, 4]);
    producer.stop();
    let counts = eventhubs::event_counts(&hub);
    fleet.until("every event processed", all_processed(&counts));
    fleet.stop_all();

    let tally = fleet.tally.lock().unwrap();
    assert_eq!(tally.stopped.len(), 4, "all four stopped gracefully");
    assert!(tally.errors.is_empty(), "{:?}", tally.errors);
    assert!(
        tally.twice().is_empty(),
        "processed twice while partitions moved: {:?}",
        tally.twice()
    );
    let moves = tally.resumed.len() - 8;
    // 4 moves at each step, at least.
    assert!(moves >= 12, "the partitions moved {moves} times");
    let last = checkpoints(&store, &scope(&hub));
    let expected: BTreeMap<String, Option<i64>> = counts
        .iter()
        .map(|(p, n)| (p.clone(), Some(*n as i64 - 1)))
        .collect();
    assert_eq!(last, expected, "the last checkpoints at the last events");
    eprintln!(
        "scale 1 -> 2 -> 4 -> 2: {} events, {moves} partition moves, none processed twice",
        counts.iter().map(|(_, n)| n).sum::<u64>()
    );
}

/// One processor is SIGKILLed mid-stream: the survivor takes its partitions over from the stored
/// checkpoints once their claims expire. Every event is processed, and the events processed twice
/// are exactly those the killed one processed past the checkpoints its partitions were resumed
/// from: its last acknowledged ones (or a later one it wrote and did not live to see
/// acknowledged).
///
/// `a` starts alone and claims all 8 partitions, `b` then takes 4 of them, and `a` is the one
/// killed: the survivor never gets back a partition taken from it (see [`WEDGE_SIGNS`]).
#[test]
fn a_killed_processors_partitions_resume_from_its_checkpoints() {
    const TEST: &str = "a_killed_processors_partitions_resume_from_its_checkpoints";
    if node::is_node() {
        return node::run();
    }
    let (store_arg, store) = blob_store();
    killed_consumer_is_taken_over(TEST, Fleet::start, store_arg, &store);
}

/// [`a_killed_processors_partitions_resume_from_its_checkpoints`] with consumers of this crate's
/// own, on the table store.
#[test]
fn our_killed_consumers_partitions_resume_from_its_table_checkpoints() {
    const TEST: &str = "our_killed_consumers_partitions_resume_from_its_table_checkpoints";
    if node::is_node() {
        return node::run();
    }
    let (store_arg, store) = table_store();
    killed_consumer_is_taken_over(TEST, Fleet::start_balancer, store_arg, &store);
}

fn killed_consumer_is_taken_over(
    test: &'static str,
    start: Start,
    store_arg: String,
    store: &dyn CheckpointStore,
) {
    let hub = create_hub(
        "kill",
        HubSpec {
            partitions: 8,
            preload: 0,
            rate: 0.0,
            total: None,
        },
    );
    let mut fleet = Fleet::new(test, &hub, &store_arg);
    start(&mut fleet, "a");
    fleet.until("a claims all 8 partitions", |t| {
        t.holding.get("a").is_some_and(|h| h.len() == 8)
    });
    start(&mut fleet, "b");
    // No events yet: the two settle on 4 partitions each before anything is processed.
    fleet.settle(store, &[4, 4]);
    // A partition taken from a processor (0.15 sends no epoch) is dropped by it at its next
    // event only: one event each, then the two hold 4 each.
    for p in 0..8 {
        eventhubs::append(&hub, &p.to_string(), 1);
    }
    fleet.until("the split reaches the processors", |t| {
        ["a", "b"]
            .iter()
            .all(|n| t.holding.get(*n).is_some_and(|h| h.len() == 4))
            && (0..8).all(|p| t.processed.contains_key(&(p.to_string(), 0)))
    });
    // From here on, only the kill may cause reprocessing.
    let settled_at = 1;
    let produce = |batches: usize| {
        for _ in 0..batches {
            for p in 0..8 {
                eventhubs::append(&hub, &p.to_string(), 4);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    produce(30);
    fleet.until("a processed half the events", |t| {
        t.holding["a"].iter().all(|p| {
            t.last
                .get(&("a".into(), p.clone()))
                .is_some_and(|s| *s >= 60)
        })
    });
    let a = fleet.kill("a");
    assert_eq!(a.partitions.len(), 4, "a held 4 partitions when it died");
    produce(20);
    let counts = eventhubs::event_counts(&hub);
    fleet.until("every event processed", all_processed(&counts));
    fleet.stop_all();

    let tally = fleet.tally.lock().unwrap();
    let expected = a.reprocessed(&tally);
    let twice: BTreeSet<(String, i64)> = tally
        .twice()
        .into_iter()
        .filter(|((_, seq), _)| *seq >= settled_at)
        .map(|(key, _)| key.clone())
        .collect();
    assert_eq!(
        twice, expected,
        "processed twice vs what a processed past the checkpoints its partitions resumed from"
    );
    eprintln!(
        "kill: a held {:?}, processed up to {:?}, acknowledged {:?}; {} events processed twice",
        a.partitions,
        a.last,
        a.acked,
        tally.twice().len()
    );
}

/// A stopped fleet, restarted, resumes from its checkpoints: not from the start of the
/// partitions, and not from their end. `first` runs first, `second` after it stopped.
fn restart_resumes_from_checkpoints(
    test: &'static str,
    (first, second): (Start, Start),
    store_arg: String,
    store: &dyn CheckpointStore,
) {
    let hub = create_hub(
        "restart",
        HubSpec {
            partitions: 4,
            preload: 100,
            rate: 0.0,
            total: None,
        },
    );
    let mut fleet = Fleet::new(test, &hub, &store_arg);
    first(&mut fleet, "first");
    let counts = eventhubs::event_counts(&hub);
    fleet.until("the first run processes everything", all_processed(&counts));
    // The official processor writes only the checkpoints it is asked for, and nothing at its
    // stop: wait for the last one. This crate's processor writes the last positions at its stop.
    fleet.until("and checkpoints the last events", |t| {
        t.acked.keys().all(|(node, _)| node != "first")
            || (0..4).all(|p| t.acked.get(&("first".into(), p.to_string())) == Some(&99))
    });
    fleet.stop_all();
    assert_eq!(
        checkpoints(store, &scope(&hub)),
        (0..4).map(|p| (p.to_string(), Some(99))).collect(),
        "the first run's checkpoints"
    );
    for p in 0..4 {
        eventhubs::append(&hub, &p.to_string(), 50);
    }
    second(&mut fleet, "second");
    let counts = eventhubs::event_counts(&hub);
    fleet.until(
        "the second run processes the new events",
        all_processed(&counts),
    );
    fleet.stop_all();
    let tally = fleet.tally.lock().unwrap();
    let resumed: BTreeMap<&str, i64> = tally
        .resumed
        .iter()
        .filter(|(n, _, _)| n == "second")
        .map(|(_, p, seq)| (p.as_str(), *seq))
        .collect();
    assert_eq!(
        resumed,
        (0..4).map(|p| (["0", "1", "2", "3"][p], 100)).collect(),
        "the restarted processor's first event of each partition"
    );
    assert!(tally.twice().is_empty(), "{:?}", tally.twice());
    assert!(tally.errors.is_empty(), "{:?}", tally.errors);
}

#[test]
fn a_restarted_fleet_resumes_from_its_blob_checkpoints() {
    const TEST: &str = "a_restarted_fleet_resumes_from_its_blob_checkpoints";
    if node::is_node() {
        return node::run();
    }
    let (store_arg, store) = blob_store();
    restart_resumes_from_checkpoints(TEST, (Fleet::start, Fleet::start), store_arg, &store);
}

#[test]
fn a_restarted_fleet_resumes_from_its_table_checkpoints() {
    const TEST: &str = "a_restarted_fleet_resumes_from_its_table_checkpoints";
    if node::is_node() {
        return node::run();
    }
    let (store_arg, store) = table_store();
    restart_resumes_from_checkpoints(TEST, (Fleet::start, Fleet::start), store_arg, &store);
}

/// This crate's processor, stopped and restarted: the first run through the pull API, the
/// second through the handler API. On the blob store; the table store's run swaps the APIs.
#[test]
fn our_restarted_fleet_resumes_from_its_blob_checkpoints() {
    const TEST: &str = "our_restarted_fleet_resumes_from_its_blob_checkpoints";
    if node::is_node() {
        return node::run();
    }
    let (store_arg, store) = blob_store();
    let runs: (Start, Start) = (Fleet::start_balancer, Fleet::start_handler);
    restart_resumes_from_checkpoints(TEST, runs, store_arg, &store);
}

#[test]
fn our_restarted_fleet_resumes_from_its_table_checkpoints() {
    const TEST: &str = "our_restarted_fleet_resumes_from_its_table_checkpoints";
    if node::is_node() {
        return node::run();
    }
    let (store_arg, store) = table_store();
    let runs: (Start, Start) = (Fleet::start_handler, Fleet::start_balancer);
    restart_resumes_from_checkpoints(TEST, runs, store_arg, &store);
}

/// A mixed fleet on real events: Python's `EventHubConsumerClient` with its blob store and the
/// official Rust processor with ours share one consumer group through one container, split its
/// partitions, and each side resumes from checkpoints the other wrote. The Rust processor starts
/// on partitions 0-3 and the Python consumer joins and takes 4-7; both process and checkpoint;
/// the Rust processor is killed and Python takes 0-3 over from the Rust checkpoints; then the
/// Python consumer is killed and a new Rust processor takes all 8 over from Python's. Every event
/// is processed at least once, each take-over starts right after the checkpoint it resumed from,
/// and the events processed twice are exactly those a killed consumer processed past it.
///
/// No partition moves between two live consumers of different languages, because the Rust
/// client 0.15 does not survive it (verified here, and reported by name if it happens): its
/// receivers carry no epoch, so Event Hubs refuses one while Python's (epoch 0) holds the
/// partition, and a Python receiver taking a partition from it makes the client tear down every
/// receiver of its connection, after which none of its partitions reads again ([`WEDGE_SIGNS`]).
/// Hence the first Rust processor's partition limit, which leaves Python unowned partitions to
/// claim instead of live ones to steal.
#[test]
fn python_and_rust_consumers_share_a_group_and_resume_from_each_other() {
    const TEST: &str = "python_and_rust_consumers_share_a_group_and_resume_from_each_other";
    if node::is_node() {
        return node::run();
    }
    let hub = create_hub(
        "mixed",
        HubSpec {
            partitions: 8,
            preload: 30,
            rate: 0.0,
            total: None,
        },
    );
    let (store_arg, store) = blob_store();
    let mut fleet = Fleet::new(TEST, &hub, &store_arg);
    let all = || (0..8).map(|p| p.to_string());
    let append = |n: usize| {
        all().for_each(|p| {
            eventhubs::append(&hub, &p, n);
        })
    };
    let acked_at = |node: &'static str, seq: i64| {
        move |t: &Tally| {
            t.holding.get(node).is_some_and(|h| {
                h.iter()
                    .all(|p| t.acked.get(&(node.into(), p.clone())) == Some(&seq))
            })
        }
    };
    let holds = |node: &'static str, partitions: &'static [&'static str]| {
        move |t: &Tally| {
            t.holding
                .get(node)
                .is_some_and(|h| h.iter().map(String::as_str).eq(partitions.iter().copied()))
        }
    };
    const LOW: &[&str] = &["0", "1", "2", "3"];
    const HIGH: &[&str] = &["4", "5", "6", "7"];
    const ALL: &[&str] = &["0", "1", "2", "3", "4", "5", "6", "7"];

    // 1. Rust on partitions 0-3, checkpoints at 24.
    fleet.start_limited("rust", Some(4));
    fleet.until("Rust processes and checkpoints partitions 0-3", |t| {
        holds("rust", LOW)(t) && acked_at("rust", 24)(t)
    });
    // 2. Python joins and claims the other four.
    fleet.start_python("py");
    fleet.until("Python processes and checkpoints partitions 4-7", |t| {
        holds("py", HIGH)(t) && acked_at("py", 24)(t) && holds("rust", LOW)(t)
    });
    // 3. The two split what follows: checkpoints at 49 on each side.
    append(30);
    fleet.until("each side checkpoints its partitions at 49", |t| {
        acked_at("rust", 49)(t) && acked_at("py", 49)(t)
    });
    // 4. Rust dies after processing 10 more (past its checkpoints at 49); Python takes its
    //    partitions over from them.
    append(10);
    fleet.until("Rust processes the new events", |t| {
        LOW.iter()
            .all(|p| t.last.get(&("rust".into(), p.to_string())) == Some(&69))
    });
    fleet.kill("rust");
    fleet.until("Python takes all 8", holds("py", ALL));
    append(10);
    fleet.until("Python checkpoints all 8 at 74", acked_at("py", 74));
    // 5. Python dies after processing 10 more; a new Rust processor takes everything over from
    //    Python's checkpoints once Python's claims expire.
    append(10);
    fleet.until("Python processes the new events", |t| {
        all().all(|p| t.last.get(&("py".into(), p)) == Some(&89))
    });
    fleet.kill("py");
    fleet.start("rust2");
    let counts = eventhubs::event_counts(&hub);
    fleet.until("every event processed", all_processed(&counts));
    fleet.until("the new Rust processor holds all 8", holds("rust2", ALL));
    fleet.stop_all();

    let tally = fleet.tally.lock().unwrap();
    let first = |node: &str, p: &str| {
        tally
            .resumed
            .iter()
            .find(|(n, q, _)| n == node && q == p)
            .map(|(_, _, seq)| *seq)
    };
    for p in all() {
        let low = LOW.contains(&p.as_str());
        let (started, python_from) = if low { ("rust", 50) } else { ("py", 0) };
        assert_eq!(
            first(started, &p),
            Some(0),
            "partition {p}: {started} started it"
        );
        assert_eq!(
            first("py", &p),
            Some(python_from),
            "partition {p}: where Python resumed (from the Rust checkpoint at 49 for 0-3)"
        );
        assert_eq!(
            first("rust2", &p),
            Some(75),
            "partition {p}: where the new Rust processor resumed (from Python's checkpoint at 74)"
        );
        let twice: Vec<i64> = tally
            .twice()
            .into_iter()
            .filter(|((q, _), _)| *q == p)
            .map(|((_, seq), _)| *seq)
            .collect();
        // What the killed Rust processor read past 49, and what the killed Python read past 74.
        let expected: Vec<i64> = if low {
            (50..=69).chain(75..=89).collect()
        } else {
            (75..=89).collect()
        };
        assert_eq!(twice, expected, "partition {p}: the events processed twice");
    }
    assert!(tally.errors.is_empty(), "{:?}", tally.errors);
    let last = checkpoints(&store, &scope(&hub));
    assert_eq!(
        last.values().collect::<Vec<_>>(),
        vec![&Some(74); 8],
        "the stored checkpoints: Python's last (the new Rust processor has not reached 99)"
    );
    eprintln!(
        "mixed fleet: {} events processed more than once; notes from Python: {:?}",
        tally.twice().len(),
        tally.notes
    );
}

/// This crate's processor in one consumer group beside the official processor (over our blob
/// store) and Python's consumer, on one container and real events: the three split 12
/// partitions 4/4/4 and hold it; each kind, killed, is taken over from its checkpoints by
/// another kind; every event is processed, and the events processed twice are exactly those a
/// killed consumer processed past the checkpoints its partitions resumed from.
///
/// Kept clear of the official client's wedges ([`WEDGE_SIGNS`]): it sees partitions 0-3 only
/// (its partition limit), which is its fair share all along, so nobody steals from it and it
/// claims nothing new. The one live move is this crate's consumer taking its share from
/// Python's (owner level 0 on both: the newer receiver wins) at a checkpoint, with nothing read
/// past it, so it reprocesses nothing.
///
/// 1. The official processor takes 0-3; Python joins and takes six of 4-11 (its share of 12
///    between two), processing and checkpointing everything (25 events each, checkpoints at 24).
/// 2. Ours joins: two free partitions and two from Python. The split settles at 4/4/4.
/// 3. 35 more events each (checkpoints at 49, 50-59 read past them); the official processor is
///    killed; Python and ours take two each from its checkpoints.
/// 4. 25 more (checkpoints at 74, 75-84 past); Python is killed; ours takes its six.
/// 5. 25 more (checkpoints at 99, 100-109 past); ours is killed; a new Python consumer takes all
///    twelve from ours' and reads 10 more.
#[test]
fn our_consumer_shares_a_group_with_the_official_processor_and_python() {
    const TEST: &str = "our_consumer_shares_a_group_with_the_official_processor_and_python";
    if node::is_node() {
        return node::run();
    }
    let hub = create_hub(
        "three",
        HubSpec {
            partitions: 12,
            preload: CHECKPOINT_EVERY as usize,
            rate: 0.0,
            total: None,
        },
    );
    let (store_arg, store) = blob_store();
    let mut fleet = Fleet::new(TEST, &hub, &store_arg);
    let append = |n: usize| {
        for p in 0..12 {
            eventhubs::append(&hub, &p.to_string(), n);
        }
    };
    // Every partition `node` holds has reached `last` and its checkpoint at `acked`.
    let reached = |node: &'static str, last: i64, acked: i64| {
        move |t: &Tally| {
            t.holding.get(node).is_some_and(|h| {
                h.iter().all(|p| {
                    let key = (node.to_owned(), p.clone());
                    t.last.get(&key) == Some(&last) && t.acked.get(&key) == Some(&acked)
                })
            })
        }
    };
    let holds = |node: &'static str, n: usize| {
        move |t: &Tally| t.holding.get(node).is_some_and(|h| h.len() == n)
    };

    // 1.
    fleet.start_limited("official", Some(4));
    fleet.until("the official processor checkpoints 0-3", |t| {
        holds("official", 4)(t) && reached("official", 24, 24)(t)
    });
    fleet.start_python("python");
    fleet.until("Python checkpoints six partitions", |t| {
        holds("python", 6)(t) && reached("python", 24, 24)(t)
    });
    // 2.
    fleet.start_balancer("ours");
    fleet.settle(&store, &[4, 4, 4]);
    fleet.until("each holds 4, by its own account", |t| {
        ["official", "python", "ours"]
            .iter()
            .all(|n| holds(n, 4)(t))
    });
    // 3.
    append(35);
    fleet.until("everyone reads past the checkpoints at 49", |t| {
        ["official", "python", "ours"]
            .iter()
            .all(|n| reached(n, 59, 49)(t))
    });
    let official = fleet.kill("official");
    fleet.settle(&store, &[6, 6]);
    let counts = eventhubs::event_counts(&hub);
    fleet.until(
        "the official processor's events processed",
        all_processed(&counts),
    );
    // 4.
    append(25);
    fleet.until(
        "Python reads past its checkpoints at 74",
        reached("python", 84, 74),
    );
    let python = fleet.kill("python");
    fleet.settle(&store, &[12]);
    // 5.
    append(25);
    fleet.until("ours reads past its checkpoints at 99", |t| {
        holds("ours", 12)(t) && reached("ours", 109, 99)(t)
    });
    let ours = fleet.kill("ours");
    fleet.start_python("python2");
    append(10);
    fleet.until("the new Python consumer takes all 12 over", |t| {
        (0..12).all(|p| t.last.get(&("python2".into(), p.to_string())) == Some(&119))
    });
    let counts = eventhubs::event_counts(&hub);
    fleet.until("every event processed", all_processed(&counts));
    fleet.stop_all();

    let tally = fleet.tally.lock().unwrap();
    let mut expected = BTreeSet::new();
    for victim in [&official, &python, &ours] {
        expected.extend(victim.reprocessed(&tally));
    }
    let twice: BTreeSet<(String, i64)> =
        tally.twice().into_iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(
        twice, expected,
        "processed twice vs what the killed consumers processed past the checkpoints resumed from"
    );
    let thrice: Vec<_> = tally
        .processed
        .iter()
        .filter(|(_, by)| by.len() > 2)
        .collect();
    assert!(thrice.is_empty(), "processed three times: {thrice:?}");
    assert!(tally.errors.is_empty(), "{:?}", tally.errors);
    assert_eq!(
        (
            official.partitions.len(),
            python.partitions.len(),
            ours.partitions.len()
        ),
        (4, 6, 12),
        "what each held when it was killed"
    );
    eprintln!(
        "three kinds: {} events processed twice, all by take-overs of killed consumers; notes: {:?}",
        twice.len(),
        tally.notes
    );
}
