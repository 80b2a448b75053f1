//! The processor's engine, on a thread of its own (the 0.15 client's receivers are not `Send`):
//! it runs the balancer and the checkpointer, opens a receiver for each partition the balancer
//! has ready and feeds its events to the application's [`PartitionClient`], replaces a consumer
//! client whose connection died, and gives up a partition it cannot read.

use super::options::{ProcessorBuilder, StartPosition};
use super::partition::{PartitionClient, PartitionState, StopReason};
use super::{Connection, Processor, ProcessorStats};
use crate::balancer::PartitionBalancer;
use crate::checkpointer::Checkpointer;
use crate::error::{Error, Result};
use crate::metrics;
use crate::store::CheckpointStore;
use azure_messaging_eventhubs::{
    models::ReceivedEventData, ConsumerClient, OpenReceiverOptions, StartLocation,
    StartPosition as ClientStart,
};
use futures::StreamExt;
use std::{
    cell::{Cell, RefCell},
    collections::BTreeMap,
    rc::Rc,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};
use tokio::{
    sync::{mpsc, oneshot, watch, Notify},
    task::JoinSet,
};

/// How often the engine looks at what the balancer has ready.
const LOOK: Duration = Duration::from_millis(100);
/// The first pause after a partition's receiver failed, doubled at each failure in a row.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(4);
/// How long opening a client or a receiver may take before it counts as failed.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long asking for a partition's properties, or closing a receiver, may take before the
/// client counts as dead.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// The shortest silence that makes a receiver suspect (the interval when longer): a receiver
/// just opened on a loaded machine may take a second to deliver.
const MIN_QUIET: Duration = Duration::from_secs(2);
/// Tries at opening the first client and reading the hub's partitions before `start` fails.
const START_TRIES: u32 = 5;
/// How long, in ownership expirations, nothing is taken from an owner that kept reading a
/// partition taken from it (see `PartitionBalancer::give_back`): long enough that a fleet does
/// not churn, short enough that a consumer restarted under the same owner id is balanced again.
const UNMOVABLE_EXPIRATIONS: u32 = 10;
/// Events read ahead of the application, per partition.
const READ_AHEAD: usize = 256;

/// What the application's side asks of the engine.
pub(super) enum Command {
    /// Write a partition's recorded position (a write fell due as it was recorded).
    Write {
        partition_id: String,
        reply: oneshot::Sender<Result<bool>>,
    },
}

/// What the engine and the application's handles share (`Send + Sync`).
pub(super) struct Shared {
    pub(super) balancer: Arc<PartitionBalancer>,
    pub(super) checkpointer: Arc<Checkpointer>,
    pub(super) commands: mpsc::UnboundedSender<Command>,
    /// Partition clients handed out and not yet ended or dropped: stopping waits for them.
    pub(super) in_use: watch::Sender<usize>,
    handover: bool,
    counters: Counters,
}

#[derive(Default)]
struct Counters {
    events: AtomicU64,
    batches: AtomicU64,
    partitions: AtomicU64,
    reconnects: AtomicU64,
    stalls: AtomicU64,
    handovers: AtomicU64,
    lost: AtomicU64,
}

impl Shared {
    /// Ends `state` for `reason` (unless it has ended): counted, logged, measured once.
    pub(super) fn end(&self, state: &PartitionState, reason: StopReason) {
        if !state.end(reason) {
            return;
        }
        let counter = match reason {
            StopReason::HandedOver => Some(&self.counters.handovers),
            StopReason::Lost => Some(&self.counters.lost),
            StopReason::Failed => Some(&self.counters.stalls),
            StopReason::Shutdown => None,
        };
        if let Some(counter) = counter {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        tracing::debug!(owner_id = %self.balancer.owner_id(), partition = %state.partition_id, ?reason, "partition stopped");
        metrics::partition_stopped(
            self.balancer.scope(),
            self.balancer.owner_id(),
            &state.partition_id,
            reason_name(reason),
        );
    }

    /// The end of a partition the balancer no longer has ready, if it has none: handed over
    /// (its last position goes to its taker) or, with handover off, lost.
    pub(super) fn left(&self, state: &PartitionState) -> Option<StopReason> {
        if self.balancer.is_ready(&state.partition_id) {
            return None;
        }
        let reason = if self.handover {
            StopReason::HandedOver
        } else {
            StopReason::Lost
        };
        self.end(state, reason);
        state.ended()
    }

    /// One event handed to the application.
    pub(super) fn handed_out(&self, partition_id: &str, event: &ReceivedEventData) {
        self.counters.events.fetch_add(1, Ordering::Relaxed);
        metrics::processed(
            self.balancer.scope(),
            partition_id,
            event.sequence_number(),
            event.enqueued_time(),
        );
    }

    /// One batch handed to the application.
    pub(super) fn batch(&self) {
        self.counters.batches.fetch_add(1, Ordering::Relaxed);
        metrics::batch(self.balancer.scope());
    }

    pub(super) fn stats(&self) -> ProcessorStats {
        let c = &self.counters;
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        ProcessorStats {
            events: get(&c.events),
            batches: get(&c.batches),
            partitions_opened: get(&c.partitions),
            reconnects: get(&c.reconnects),
            stalls: get(&c.stalls),
            handovers: get(&c.handovers),
            lost: get(&c.lost),
        }
    }
}

fn reason_name(reason: StopReason) -> &'static str {
    match reason {
        StopReason::HandedOver => "handed_over",
        StopReason::Lost => "lost",
        StopReason::Shutdown => "shutdown",
        StopReason::Failed => "failed",
    }
}

/// Starts the engine's thread; returns once it has the hub's partitions (or failed to).
pub(super) async fn start(
    options: ProcessorBuilder,
    store: Arc<dyn CheckpointStore>,
    connection: Connection,
) -> Result<Processor> {
    let (started, starting) = oneshot::channel();
    std::thread::Builder::new()
        .name("eventhubs-processor".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(err) => {
                    let _ = started.send(Err(Error::event_hubs(format!(
                        "could not start the processor's runtime: {err}"
                    ))));
                    return;
                }
            };
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, run(options, store, connection, started));
        })
        .map_err(|err| {
            Error::event_hubs(format!("could not start the processor's thread: {err}"))
        })?;
    starting.await.unwrap_or_else(|_| {
        Err(Error::event_hubs(
            "the processor's thread ended while starting",
        ))
    })
}

/// A consumer client, and which one it is (a failed reader replaces only the client it used).
type Client = (u64, Rc<ConsumerClient>);

struct Engine {
    shared: Arc<Shared>,
    connection: Connection,
    options: ProcessorBuilder,
    store: Arc<dyn CheckpointStore>,
    client: RefCell<Option<Client>>,
    clients_opened: Cell<u64>,
    /// One client or receiver opens at a time: the 0.15 client authorizes each receiver on a
    /// CBS session of its own, and concurrent ones make its connection fail far more often.
    opening: tokio::sync::Mutex<()>,
    active: RefCell<BTreeMap<String, Reader>>,
    partitions: mpsc::UnboundedSender<PartitionClient>,
    /// The application's checkpoints being recorded: all are done before the last writes.
    checkpoints: RefCell<JoinSet<()>>,
    /// The last listing of checkpoints by readers that opened a receiver again, and when it
    /// began.
    listed: tokio::sync::Mutex<Option<(Instant, Rc<Vec<crate::Checkpoint>>)>>,
}

/// A partition being read.
struct Reader {
    state: Arc<PartitionState>,
    wake: Rc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

/// How one receiver's reading ended.
enum Outcome {
    /// The partition ended (its reason is set).
    Ended,
    /// The application dropped its partition client.
    Dropped,
    /// The receiver could not be opened or failed; whether it had read well before.
    Failed { why: String, healthy: bool },
    /// The receiver opened behind the stored checkpoint (another consumer read further): it is
    /// opened again after it.
    Behind,
}

async fn run(
    options: ProcessorBuilder,
    store: Arc<dyn CheckpointStore>,
    connection: Connection,
    started: oneshot::Sender<Result<Processor>>,
) {
    let prepared = async {
        let (client, partition_ids) = first_client(&connection).await?;
        let scope = connection.scope();
        let owner_id = options
            .owner_id
            .clone()
            .unwrap_or_else(|| crate::azure_core::Uuid::new_v4().to_string());
        let checkpointer = Arc::new(Checkpointer::new(
            store.clone(),
            scope.clone(),
            options.checkpointer,
        )?);
        let balancer = PartitionBalancer::new(
            store.clone(),
            scope,
            owner_id,
            partition_ids.clone(),
            options.balancer.clone(),
        )?
        .with_checkpointer(checkpointer.clone());
        Ok((client, partition_ids, Arc::new(balancer), checkpointer))
    };
    let (client, partition_ids, balancer, checkpointer) = match prepared.await {
        Ok(prepared) => prepared,
        Err(err) => {
            let _ = started.send(Err(err));
            return;
        }
    };
    let (commands_tx, commands) = mpsc::unbounded_channel();
    let (partitions_tx, partitions_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop) = watch::channel(false);
    let (done_tx, done) = oneshot::channel();
    let shared = Arc::new(Shared {
        handover: options.balancer.handover_intervals > 0,
        balancer,
        checkpointer,
        commands: commands_tx,
        in_use: watch::channel(0).0,
        counters: Counters::default(),
    });
    let processor = Processor::new(
        shared.clone(),
        partitions_rx,
        stop_tx,
        done,
        partition_ids,
        &options,
    );
    if started.send(Ok(processor)).is_err() {
        // The caller is gone: nothing was claimed yet.
        return;
    }
    let engine = Rc::new(Engine {
        shared,
        connection,
        options,
        store,
        client: RefCell::new(Some((1, Rc::new(client)))),
        clients_opened: Cell::new(1),
        opening: tokio::sync::Mutex::new(()),
        active: RefCell::new(BTreeMap::new()),
        partitions: partitions_tx,
        checkpoints: RefCell::new(JoinSet::new()),
        listed: tokio::sync::Mutex::new(None),
    });
    let result = engine.work(stop, commands).await;
    let _ = done_tx.send(result);
}

/// Opens a consumer client on `connection`, within [`OPEN_TIMEOUT`].
async fn open_client(connection: &Connection) -> std::result::Result<ConsumerClient, String> {
    match tokio::time::timeout(OPEN_TIMEOUT, connection.open()).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(err)) => Err(format!("opening a consumer client: {err}")),
        Err(_) => Err(format!(
            "opening a consumer client: no answer within {OPEN_TIMEOUT:?}"
        )),
    }
}

/// The first consumer client and the hub's partition ids (a new client after a failure), in
/// [`START_TRIES`] tries.
async fn first_client(connection: &Connection) -> Result<(ConsumerClient, Vec<String>)> {
    let mut last = String::new();
    for attempt in 0..START_TRIES {
        if attempt > 0 {
            tokio::time::sleep(FIRST_BACKOFF * 2u32.pow(attempt)).await;
        }
        let client = match open_client(connection).await {
            Ok(client) => client,
            Err(why) => {
                last = why;
                continue;
            }
        };
        match tokio::time::timeout(OPEN_TIMEOUT, client.get_eventhub_properties()).await {
            Ok(Ok(properties)) if !properties.partition_ids.is_empty() => {
                return Ok((client, properties.partition_ids))
            }
            Ok(Ok(_)) => last = "the event hub has no partitions".into(),
            Ok(Err(err)) => last = err.to_string(),
            Err(_) => last = format!("no answer within {OPEN_TIMEOUT:?}"),
        }
    }
    let scope = connection.scope();
    Err(Error::event_hubs(format!(
        "could not read the partitions of event hub {} in {} after {START_TRIES} tries: {last}",
        scope.eventhub_name, scope.fully_qualified_namespace
    )))
}

impl Engine {
    /// The current consumer client, opened if there is none.
    async fn client(&self) -> std::result::Result<Client, String> {
        if let Some(client) = self.client.borrow().clone() {
            return Ok(client);
        }
        let _opening = self.opening.lock().await;
        if let Some(client) = self.client.borrow().clone() {
            return Ok(client);
        }
        let client = open_client(&self.connection).await?;
        let generation = self.clients_opened.get() + 1;
        self.clients_opened.set(generation);
        let client = (generation, Rc::new(client));
        *self.client.borrow_mut() = Some(client.clone());
        Ok(client)
    }

    /// Drops client `generation` after a failure on it, so the next reader opens a new one:
    /// the 0.15 client can lose its AMQP connection (a race between a link's or session's
    /// teardown and the peer's replies) and then never reconnect.
    fn replace_client(&self, generation: u64, why: &str) {
        let mut slot = self.client.borrow_mut();
        if slot.as_ref().is_some_and(|(g, _)| *g == generation) {
            *slot = None;
            self.shared
                .counters
                .reconnects
                .fetch_add(1, Ordering::Relaxed);
            metrics::reconnected(
                self.shared.balancer.scope(),
                self.shared.balancer.owner_id(),
            );
            tracing::info!(owner_id = %self.shared.balancer.owner_id(), why, "replacing the consumer client");
        }
    }

    /// Balances and reads until asked to stop; then stops reading, waits for the application
    /// to let go of its partitions (at most an interval), and relinquishes them, their last
    /// positions written first.
    async fn work(
        self: Rc<Self>,
        mut stop: watch::Receiver<bool>,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) -> Result<()> {
        let shared = self.shared.clone();
        let (stop_balancer, balancer_stopped) = oneshot::channel::<()>();
        let balancer = shared.balancer.clone();
        let balancing = tokio::task::spawn_local(async move {
            balancer
                .run(
                    async {
                        let _ = balancer_stopped.await;
                    },
                    |_| {},
                )
                .await
        });
        let (stop_checkpointer, checkpointer_stopped) = oneshot::channel::<()>();
        let checkpointer = shared.checkpointer.clone();
        let checkpointing = tokio::task::spawn_local(async move {
            checkpointer
                .run(async {
                    let _ = checkpointer_stopped.await;
                })
                .await
        });
        let mut look = tokio::time::interval(LOOK);
        loop {
            tokio::select! {
                _ = look.tick() => self.look().await,
                Some(command) = commands.recv() => self.command(command),
                stopping = stop.wait_for(|stop| *stop) => {
                    // Asked to stop, or the processor handle is gone.
                    let _ = stopping;
                    break;
                }
            }
        }
        tracing::debug!(owner_id = %shared.balancer.owner_id(), "stopping");
        for reader in self.active.borrow().values() {
            shared.end(&reader.state, StopReason::Shutdown);
            reader.wake.notify_one();
        }
        // The application finishes what it holds (and checkpoints it) before the last writes.
        let mut in_use = shared.in_use.subscribe();
        let grace = tokio::time::sleep(self.options.balancer.interval);
        tokio::pin!(grace);
        loop {
            tokio::select! {
                let_go = in_use.wait_for(|n| *n == 0) => { let _ = let_go; break; }
                Some(command) = commands.recv() => self.command(command),
                () = &mut grace => {
                    tracing::warn!(owner_id = %shared.balancer.owner_id(), "the application still held partitions an interval after the processor was asked to stop");
                    break;
                }
            }
        }
        let readers: Vec<_> = std::mem::take(&mut *self.active.borrow_mut())
            .into_values()
            .map(|r| r.task)
            .collect();
        for task in readers {
            let _ = task.await;
        }
        // Writes already asked for go out before the last positions are written.
        while let Ok(command) = commands.try_recv() {
            self.command(command);
        }
        let mut recording = std::mem::take(&mut *self.checkpoints.borrow_mut());
        while recording.join_next().await.is_some() {}
        let _ = stop_balancer.send(());
        let relinquished = balancing
            .await
            .unwrap_or_else(|err| Err(Error::event_hubs(format!("the balancer failed: {err}"))));
        let _ = stop_checkpointer.send(());
        let flushed = checkpointing.await.unwrap_or(Ok(()));
        let client = self.client.borrow_mut().take();
        if let Some((_, client)) = client {
            if let Ok(client) = Rc::try_unwrap(client) {
                let _ = client.close().await;
            }
        }
        relinquished.and(flushed)
    }

    fn command(&self, command: Command) {
        match command {
            Command::Write {
                partition_id,
                reply,
            } => {
                let checkpointer = self.shared.checkpointer.clone();
                self.checkpoints.borrow_mut().spawn_local(async move {
                    let written = checkpointer.flush(&partition_id).await;
                    let _ = reply.send(written);
                });
            }
        }
    }

    /// Ends the partitions the balancer no longer has ready, and starts those it has newly.
    async fn look(self: &Rc<Self>) {
        let ready = self.shared.balancer.ready();
        {
            let mut active = self.active.borrow_mut();
            for reader in active.values() {
                if self.shared.left(&reader.state).is_some() {
                    reader.wake.notify_one();
                }
            }
            active.retain(|_, reader| !reader.task.is_finished());
        }
        while self.checkpoints.borrow_mut().try_join_next().is_some() {}
        let new: Vec<String> = {
            let active = self.active.borrow();
            ready
                .into_iter()
                .filter(|p| !active.contains_key(p))
                .collect()
        };
        if new.is_empty() {
            return;
        }
        let stored = match self
            .store
            .list_checkpoints(self.shared.balancer.scope())
            .await
        {
            Ok(stored) => stored,
            Err(err) => {
                tracing::warn!(error = %err, "listing checkpoints to resume partitions; trying again");
                return;
            }
        };
        for partition_id in new {
            // Ready still? The listing took time.
            if !self.shared.balancer.is_ready(&partition_id) {
                continue;
            }
            let after = stored_sequence(&stored, &partition_id);
            let start = self.options.start_of(&partition_id);
            let state = Arc::new(PartitionState::new(partition_id.clone()));
            let (events, received) = mpsc::channel(READ_AHEAD);
            let client = PartitionClient::new(state.clone(), self.shared.clone(), received, after);
            if self.partitions.send(client).is_err() {
                // Nobody takes partitions any more: the processor is stopping.
                return;
            }
            self.shared
                .counters
                .partitions
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(owner_id = %self.shared.balancer.owner_id(), partition = %partition_id, ?after, "partition resumed");
            let wake = Rc::new(Notify::new());
            let task = tokio::task::spawn_local(self.clone().read(
                state.clone(),
                wake.clone(),
                events,
                start,
                after,
            ));
            self.active
                .borrow_mut()
                .insert(partition_id, Reader { state, wake, task });
        }
    }

    /// Reads one partition into `events` until it ends: receivers that fail are opened again
    /// after the last event passed on; a partition that cannot be read for the stall timeout is
    /// given up.
    async fn read(
        self: Rc<Self>,
        state: Arc<PartitionState>,
        wake: Rc<Notify>,
        events: mpsc::Sender<ReceivedEventData>,
        start: StartPosition,
        mut last: Option<i64>,
    ) {
        let stall = self.options.stall();
        let mut failing_since: Option<Instant> = None;
        let mut backoff = FIRST_BACKOFF;
        let mut silences = 0;
        let mut reopening = false;
        while state.ended().is_none() {
            let outcome = self
                .read_once(
                    &state,
                    &wake,
                    &events,
                    start,
                    &mut last,
                    &mut silences,
                    reopening,
                )
                .await;
            reopening = true;
            match outcome {
                Outcome::Ended => break,
                // Opened fine: a new episode, at once.
                Outcome::Behind => {
                    failing_since = None;
                    backoff = FIRST_BACKOFF;
                }
                Outcome::Dropped => {
                    // The application let go of a partition it still owns: its position so far
                    // is written, and it is handed out again from there.
                    if let Err(err) = self.shared.checkpointer.flush(&state.partition_id).await {
                        tracing::warn!(partition = %state.partition_id, error = %err, "writing the position of a dropped partition client");
                    }
                    break;
                }
                Outcome::Failed { why, healthy } => {
                    if healthy {
                        failing_since = None;
                        backoff = FIRST_BACKOFF;
                    }
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= stall {
                        self.give_up(&state, &why, last).await;
                        break;
                    }
                    tracing::debug!(partition = %state.partition_id, why, "reading failed; trying again");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = wake.notified() => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Moves `last` to the stored checkpoint when that is further, by a listing begun after
    /// `opened`: while this reader could not read, another consumer may have. One whose receivers
    /// carry an owner level keeps reading a partition taken from it (Python's until its next
    /// cycle, JavaScript's until displaced by an owner level), and the 0.15 client's receivers,
    /// which carry none, are refused meanwhile. What it checkpointed is processed, and reading
    /// resumes after it. Whether it moved.
    async fn catch_up(
        &self,
        state: &PartitionState,
        last: &mut Option<i64>,
        opened: Instant,
    ) -> bool {
        if state.ended().is_some() {
            return false;
        }
        let stored = match self.checkpoints_since(opened).await {
            Ok(stored) => stored,
            Err(err) => {
                tracing::debug!(partition = %state.partition_id, error = %err, "listing checkpoints before reading again");
                return false;
            }
        };
        let checkpoint = stored_sequence(&stored, &state.partition_id);
        if let Some(checkpoint) = checkpoint.filter(|c| last.is_none_or(|last| *c > last)) {
            tracing::info!(
                owner_id = %self.shared.balancer.owner_id(),
                partition = %state.partition_id,
                checkpoint,
                last = *last,
                "another consumer read this partition while it could not be read here: resuming after its checkpoint"
            );
            *last = Some(checkpoint);
            return true;
        }
        false
    }

    /// The scope's checkpoints by a listing begun at or after `since`: one listing serves every
    /// reader that asks meanwhile with an earlier `since` (every partition's reader asks at once
    /// when a client is replaced).
    async fn checkpoints_since(&self, since: Instant) -> Result<Rc<Vec<crate::Checkpoint>>> {
        let mut listed = self.listed.lock().await;
        if let Some((begun, stored)) = listed.as_ref() {
            if *begun >= since {
                return Ok(stored.clone());
            }
        }
        let begun = Instant::now();
        let stored = Rc::new(
            self.store
                .list_checkpoints(self.shared.balancer.scope())
                .await?,
        );
        *listed = Some((begun, stored.clone()));
        Ok(stored)
    }

    /// A partition unread for the stall timeout: the application is told to stop, and the
    /// partition relinquished (its last position written first), so another consumer takes it.
    async fn give_up(&self, state: &PartitionState, why: &str, last: Option<i64>) {
        // The 0.15 client reports a refused start as a dropped connection: the partition's
        // properties tell whether the resume point is past its end (a recreated hub, a wrong
        // checkpoint), which no retry mends and an operator must.
        if let Some(newest) = self.past_end(&state.partition_id, last).await {
            tracing::error!(
                owner_id = %self.shared.balancer.owner_id(),
                partition = %state.partition_id,
                checkpoint = last,
                last_enqueued = newest,
                "the partition's checkpoint is past its last event (was the event hub recreated?): \
                 the service refuses to start there, so nobody can read the partition until the \
                 checkpoint is moved (`eh-checkpoints set`, or delete it to start over)"
            );
        }
        self.shared.end(state, StopReason::Failed);
        let stall = self.options.stall();
        tracing::warn!(
            owner_id = %self.shared.balancer.owner_id(),
            partition = %state.partition_id,
            why,
            "partition unreadable for {stall:?}: giving it up for another consumer (back to its old \
             owner when it was taken from one)"
        );
        // Taking nothing new for an expiration: others have time to take it over. A partition
        // taken from a live owner goes back to it: that owner's receiver (with an owner level,
        // which this client's lack) is the likeliest reason it could not be read here.
        let set_aside = self.options.balancer.expiration;
        let unmovable_for = set_aside.saturating_mul(UNMOVABLE_EXPIRATIONS);
        if let Err(err) = self
            .shared
            .balancer
            .give_back(&state.partition_id, set_aside, unmovable_for)
            .await
        {
            tracing::warn!(partition = %state.partition_id, error = %err, "relinquishing an unreadable partition");
        }
    }

    /// The partition's last enqueued sequence number when `last` (where reading resumes) lies
    /// past it.
    async fn past_end(&self, partition: &str, last: Option<i64>) -> Option<i64> {
        let last = last?;
        let (_, client) = self.client().await.ok()?;
        let asked =
            tokio::time::timeout(ANSWER_TIMEOUT, client.get_partition_properties(partition));
        let newest = asked.await.ok()?.ok()?.last_enqueued_sequence_number;
        (last > newest).then_some(newest)
    }

    /// One receiver: opened after `last` (or at `start`), read until it fails or the partition
    /// ends. The receiver is closed with no receive in flight (its stream is dropped first).
    /// `reopening`: an earlier receiver of this reader failed.
    #[allow(clippy::too_many_arguments)]
    async fn read_once(
        &self,
        state: &PartitionState,
        wake: &Notify,
        events: &mpsc::Sender<ReceivedEventData>,
        start: StartPosition,
        last: &mut Option<i64>,
        silences: &mut u32,
        reopening: bool,
    ) -> Outcome {
        let partition = &state.partition_id;
        let (generation, client) = match self.client().await {
            Ok(client) => client,
            Err(why) => {
                return Outcome::Failed {
                    why,
                    healthy: false,
                }
            }
        };
        let options = OpenReceiverOptions {
            start_position: Some(client_start(*last, start)),
            owner_level: self.options.owner_level,
            prefetch: self.options.prefetch,
            ..Default::default()
        };
        let receiver = {
            let _opening = self.opening.lock().await;
            tokio::time::timeout(
                OPEN_TIMEOUT,
                client.open_receiver_on_partition(partition.clone(), Some(options)),
            )
            .await
        };
        let receiver = match receiver {
            Ok(Ok(receiver)) => receiver,
            Ok(Err(err)) => {
                let why = format!("opening a receiver: {err}");
                self.replace_client(generation, &why);
                return Outcome::Failed {
                    why,
                    healthy: false,
                };
            }
            Err(_) => {
                let why = format!("opening a receiver: no answer within {OPEN_TIMEOUT:?}");
                self.replace_client(generation, &why);
                return Outcome::Failed {
                    why,
                    healthy: false,
                };
            }
        };
        let opened = Instant::now();
        let mut read_any = false;
        // A receiver whose connection died can wait for its next event forever (0.15 does not
        // always notice a connection shut down under it): after an interval with nothing, the
        // partition's properties say whether there is anything to wait for.
        let quiet = self.options.balancer.interval.max(MIN_QUIET);
        let mut silent = false;
        // Whether a failure here is the client's (it is replaced) or this receiver's alone.
        let mut keep_client = false;
        let outcome = 'read: {
            // Checked once open, by a listing begun after that: a checkpoint written while the
            // receiver was refused or opening (another consumer's last, as it let go) is seen.
            // Reopened after it, rather than receiving what it covers again.
            if reopening && self.catch_up(state, last, opened).await {
                break 'read Outcome::Behind;
            }
            let mut stream = receiver.stream_events();
            loop {
                if state.ended().is_some() {
                    break Outcome::Ended;
                }
                let next = tokio::select! {
                    biased;
                    () = wake.notified() => continue,
                    next = stream.next() => next,
                    () = tokio::time::sleep(quiet) => {
                        match silence(&client, partition, *last, start).await {
                            None => continue,
                            Some(Silence::Behind(why)) => {
                                // The client answered: this receiver alone, unless the last
                                // one on this partition went silent too.
                                *silences += 1;
                                keep_client = *silences < 2;
                                silent = true;
                                break Outcome::Failed { why, healthy: false };
                            }
                            Some(Silence::Unanswered(why)) => {
                                silent = true;
                                break Outcome::Failed { why, healthy: false };
                            }
                        }
                    }
                };
                let event = match next {
                    None => {
                        break Outcome::Failed {
                            why: "the receiver's stream ended".into(),
                            healthy: false,
                        }
                    }
                    Some(Err(err)) => {
                        break Outcome::Failed {
                            why: err.to_string(),
                            healthy: false,
                        }
                    }
                    Some(Ok(event)) => event,
                };
                let Some(sequence_number) = event.sequence_number() else {
                    continue;
                };
                // The client re-attaches a failed link by itself, at the position it was first
                // opened at: what it delivers again was passed on already.
                if last.is_some_and(|last| sequence_number <= last) {
                    continue;
                }
                read_any = true;
                *silences = 0;
                // Room at once (the usual case), or wait for it (the application is slower than
                // the hub), or for the end.
                let event = match events.try_send(event) {
                    Ok(()) => None,
                    Err(mpsc::error::TrySendError::Closed(_)) => break Outcome::Dropped,
                    Err(mpsc::error::TrySendError::Full(event)) => Some(event),
                };
                if let Some(event) = event {
                    let permit = loop {
                        tokio::select! {
                            biased;
                            () = wake.notified() => if state.ended().is_some() { break None },
                            permit = events.reserve() => break Some(permit),
                        }
                    };
                    match permit {
                        None => break Outcome::Ended,
                        Some(Err(_)) => break Outcome::Dropped,
                        Some(Ok(permit)) => permit.send(event),
                    }
                }
                *last = Some(sequence_number);
            }
        };
        match tokio::time::timeout(ANSWER_TIMEOUT, receiver.close()).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::debug!(partition = %partition, error = %err, "closing a receiver")
            }
            Err(_) => self.replace_client(generation, "closing a receiver: no answer"),
        }
        match outcome {
            Outcome::Failed { why, .. } => {
                if !keep_client {
                    self.replace_client(generation, &why);
                }
                // A receiver that read, or lived a while (not silent: idle), was healthy: a
                // new episode starts.
                let lived = !silent && opened.elapsed() >= self.options.stall() / 2;
                Outcome::Failed {
                    why,
                    healthy: read_any || lived,
                }
            }
            other => other,
        }
    }
}

/// The sequence number `partition`'s stored checkpoint is at, if any.
fn stored_sequence(stored: &[crate::Checkpoint], partition: &str) -> Option<i64> {
    stored
        .iter()
        .find(|c| c.partition_id == partition)
        .and_then(|c| c.sequence_number)
}

/// Why a receiver that delivered nothing for a while counts as failed.
enum Silence {
    /// The partition has events past the last one delivered (or past the start, before the
    /// first): the receiver is stuck.
    Behind(String),
    /// The client could not say: its connection is in doubt.
    Unanswered(String),
}

/// Whether a receiver silent for a while is stuck. `None`: nothing to read, or no way to tell
/// (a start at the end or at a time).
async fn silence(
    client: &ConsumerClient,
    partition: &str,
    last: Option<i64>,
    start: StartPosition,
) -> Option<Silence> {
    let asked = tokio::time::timeout(ANSWER_TIMEOUT, client.get_partition_properties(partition));
    let properties = match asked.await {
        Ok(Ok(properties)) => properties,
        Ok(Err(err)) => {
            let why = format!("silent, and its properties failed: {err}");
            return Some(Silence::Unanswered(why));
        }
        Err(_) => {
            let why = format!("silent, and its properties took over {ANSWER_TIMEOUT:?}");
            return Some(Silence::Unanswered(why));
        }
    };
    let newest = properties.last_enqueued_sequence_number;
    let waiting = !properties.is_empty
        && match (last, start) {
            (Some(last), _) => newest > last,
            (None, StartPosition::Earliest) => true,
            (None, StartPosition::SequenceNumber(n)) => newest >= n,
            (None, _) => false,
        };
    waiting.then(|| {
        Silence::Behind(format!(
            "silent while the partition has events up to {newest}"
        ))
    })
}

/// Where a receiver opens: just after the last event passed on, or at the start position.
fn client_start(last: Option<i64>, start: StartPosition) -> ClientStart {
    let (location, inclusive) = match (last, start) {
        (Some(sequence_number), _) => (StartLocation::SequenceNumber(sequence_number), false),
        (None, StartPosition::Earliest) => (StartLocation::Earliest, false),
        (None, StartPosition::Latest) => (StartLocation::Latest, false),
        (None, StartPosition::SequenceNumber(n)) => (StartLocation::SequenceNumber(n), true),
        (None, StartPosition::EnqueuedTime(t)) => (StartLocation::EnqueuedTime(t.into()), true),
    };
    ClientStart {
        location,
        inclusive,
    }
}
