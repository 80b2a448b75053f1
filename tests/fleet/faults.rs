//! One consumer under one Event Hubs fault, on real events: the fault injected through the
//! local endpoint's control plane while a producer appends to every partition, then every
//! (partition, sequence number) the consumer processed counted. `tests/consumer_faults.rs`
//! asserts this crate's consumer's rows; `benches/fault_table.rs` measures every kind's.

use super::*;
use eventhub_checkpointstore::Checkpoint;
use eventhub_checkpointstore_testkit::eventhubs::{create_hub, HubSpec, Producer};

/// The partition the faults hit; the others are read undisturbed alongside.
const TARGET: &str = "0";
const PARTITIONS: usize = 4;
/// How long a fault that lasts (refused receivers, paused delivery) lasts.
const LASTING: Duration = Duration::from_secs(5);
/// How long a consumer is given to read the target partition again: far beyond the bound
/// documented for this crate's processor, so a slow machine does not decide a row.
const GIVEN: Duration = Duration::from_secs(90);

/// What the endpoint does to the consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The target partition's receiver detached with `amqp:link:detach-forced`.
    DetachForced,
    /// ... with `com.microsoft:server-busy`.
    ServerBusy,
    /// ... with `amqp:internal-error`.
    InternalError,
    /// The target partition's receiver detached and new ones refused (server busy) for 5 s.
    ReceiversRefused,
    /// Delivery on the target partition paused for 5 s (receivers stay attached).
    Paused,
    /// Every connection the consumer has to the hub closed with `amqp:internal-error`.
    ConnectionClosed,
    /// Every connection the consumer has to the hub cut (no AMQP close), receivers refused for 1 s.
    ConnectionCut,
    /// Events past the target partition's checkpoint expire while the consumer is stopped
    /// (retention): restarted, it must start at the first retained event.
    Expired,
    /// The target partition's checkpoint lies past its end (the hub was recreated, or the
    /// checkpoint is wrong): the service refuses that start.
    CheckpointPastEnd,
}

impl Fault {
    pub(crate) const ALL: [Fault; 9] = [
        Fault::DetachForced,
        Fault::ServerBusy,
        Fault::InternalError,
        Fault::ReceiversRefused,
        Fault::Paused,
        Fault::ConnectionClosed,
        Fault::ConnectionCut,
        Fault::Expired,
        Fault::CheckpointPastEnd,
    ];

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Fault::DetachForced => "link detached: amqp:link:detach-forced",
            Fault::ServerBusy => "link detached: com.microsoft:server-busy",
            Fault::InternalError => "link detached: amqp:internal-error",
            Fault::ReceiversRefused => "link detached, new receivers refused 5 s (server-busy)",
            Fault::Paused => "delivery paused 5 s",
            Fault::ConnectionClosed => "connections closed: amqp:internal-error",
            Fault::ConnectionCut => "connections cut (no close), receivers refused 1 s",
            Fault::Expired => "events past the checkpoint expired while stopped",
            Fault::CheckpointPastEnd => "checkpoint past the end of the partition",
        }
    }

    /// Injects the fault (the lasting ones for their whole length).
    fn inject(self, hub: &str) {
        let detach = |condition: &str| {
            eventhubs::detach_receivers(hub, TARGET, condition);
        };
        match self {
            Fault::DetachForced => detach("amqp:link:detach-forced"),
            Fault::ServerBusy => detach("com.microsoft:server-busy"),
            Fault::InternalError => detach("amqp:internal-error"),
            Fault::ReceiversRefused => {
                eventhubs::partition_fault(
                    hub,
                    TARGET,
                    &format!("refuse?ms={}", LASTING.as_millis()),
                );
                detach("amqp:link:detach-forced");
                // The fault is its length: refused until then.
                std::thread::sleep(LASTING);
            }
            Fault::Paused => {
                eventhubs::partition_fault(hub, TARGET, "pause");
                std::thread::sleep(LASTING);
                eventhubs::partition_fault(hub, TARGET, "resume");
            }
            Fault::ConnectionClosed => {
                eventhubs::end_connections(hub, Some("amqp:internal-error"), Duration::ZERO);
            }
            Fault::ConnectionCut => {
                eventhubs::end_connections(hub, None, Duration::from_secs(1));
            }
            Fault::Expired | Fault::CheckpointPastEnd => unreachable!("set up around a restart"),
        }
    }
}

/// What one consumer did under one fault.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) fault: Fault,
    pub(crate) kind: &'static str,
    /// Events of the hub nobody processed (expired ones excluded: retention took them).
    pub(crate) lost: usize,
    /// Events processed more than once.
    pub(crate) twice: usize,
    /// From the fault's end until the target partition's first event appended after it was
    /// processed; `None`: not within [`GIVEN`].
    pub(crate) resumed_after: Option<Duration>,
    /// With `resumed_after` `None`: whether the consumer still held the target partition's
    /// claim (claimed but unread) at the end.
    pub(crate) claimed_unread: bool,
    /// Where the consumer resumed the target partition after a restart (Expired,
    /// CheckpointPastEnd), and the first retained event.
    pub(crate) resumed_at: Option<i64>,
    pub(crate) begin: Option<i64>,
    /// What the consumer said about the target partition (its `lost` lines and errors).
    pub(crate) said: Vec<String>,
}

/// Runs one consumer of `kind` (started by `start`) under `fault`; test `test` is the binary's
/// node entry point.
pub(crate) fn run(test: &'static str, kind: &'static str, start: Start, fault: Fault) -> Row {
    let hub = create_hub(
        "fault",
        HubSpec {
            partitions: PARTITIONS,
            preload: 20,
            rate: 0.0,
            total: None,
        },
    );
    let (store_arg, store) = blob_store();
    let scope = scope(&hub);
    if fault == Fault::CheckpointPastEnd {
        let past = Checkpoint::new(
            scope.clone(),
            TARGET,
            Some((100_000 * 1024).to_string()),
            Some(100_000),
        );
        runtime().block_on(store.update_checkpoint(&past)).unwrap();
    }
    let producer = Producer::start(&hub, PARTITIONS);
    let mut fleet = Fleet::new(test, &hub, &store_arg);
    start(&mut fleet, "a");
    let reading_all = |t: &Tally| {
        (0..PARTITIONS)
            .filter(|p| p.to_string() != TARGET || fault != Fault::CheckpointPastEnd)
            .all(|p| t.last.contains_key(&("a".to_owned(), p.to_string())))
    };
    fleet.until("the consumer reads every partition", reading_all);
    match fault {
        Fault::Expired => {
            // Stopped with its checkpoints written (graceful), then events come and go.
            producer.stop();
            fleet.until("the consumer has read every event", |t| {
                t.missing(&eventhubs::event_counts(&hub)).is_empty()
            });
            fleet.stop("a");
            let checkpoint = checkpoints(&store, &scope)[TARGET].unwrap_or(-1);
            eventhubs::append(&hub, TARGET, 100);
            let begin = Some(eventhubs::expire(&hub, TARGET, checkpoint + 21));
            let before = fleet.tally.lock().unwrap().resumed.len();
            start(&mut fleet, "b");
            let resumed_at = fleet.first_within(GIVEN, |t| {
                t.resumed[before..]
                    .iter()
                    .find(|(n, p, _)| n == "b" && p == TARGET)
                    .map(|(_, _, seq)| *seq)
            });
            return finish(fleet, fault, kind, &hub, &store, None, resumed_at, begin);
        }
        Fault::CheckpointPastEnd => {
            // Nothing to wait for but what the consumer makes of it: it gives the partition up,
            // or reads something of it (which it must not), or neither for 20 s.
            fleet.first_within(Duration::from_secs(20), |t| {
                let read = t.processed.keys().any(|(p, _)| p == TARGET);
                (read || t.losses.iter().any(|(_, p, _)| p == TARGET)).then_some(())
            });
            producer.stop();
            let read = (fleet.tally.lock().unwrap().processed.keys())
                .any(|(p, _)| p == TARGET)
                .then_some(Duration::ZERO);
            return finish(fleet, fault, kind, &hub, &store, read, None, None);
        }
        _ => fault.inject(&hub),
    }
    // Reading resumed: an event appended after the fault ended is processed.
    let appended: u64 = eventhubs::event_counts(&hub)
        .into_iter()
        .find(|(p, _)| p == TARGET)
        .map_or(0, |(_, n)| n);
    let ended = Instant::now();
    let resumed_after = fleet.first_within(GIVEN, |t| {
        t.processed
            .range((TARGET.to_owned(), appended as i64)..)
            .next()
            .is_some_and(|((p, _), _)| p == TARGET)
            .then(|| ended.elapsed())
    });
    producer.stop();
    if resumed_after.is_some() {
        // Everything read, however long the consumer takes after a fault it recovered from.
        let counts = eventhubs::event_counts(&hub);
        fleet.until("every event is processed", |t| {
            t.missing(&counts).is_empty()
        });
    }
    finish(fleet, fault, kind, &hub, &store, resumed_after, None, None)
}

#[allow(clippy::too_many_arguments)]
fn finish(
    mut fleet: Fleet,
    fault: Fault,
    kind: &'static str,
    hub: &str,
    store: &BlobCheckpointStore,
    resumed_after: Option<Duration>,
    resumed_at: Option<i64>,
    begin: Option<i64>,
) -> Row {
    let claimed_unread = resumed_after.is_none()
        && fault != Fault::Expired
        && owners(store, &scope(hub)).contains_key(TARGET);
    let counts = eventhubs::event_counts(hub);
    // Expired events were taken by retention, not lost by the consumer.
    let lost = |t: &Tally| {
        t.missing(&counts)
            .into_iter()
            .filter(|(p, seq)| !(p == TARGET && begin.is_some_and(|b| *seq < b)))
            .count()
    };
    if resumed_at.is_some() {
        fleet.until("every retained event is processed", |t| lost(t) == 0);
    }
    fleet.stop_all();
    let tally = fleet.tally.lock().unwrap();
    let said = tally
        .errors
        .iter()
        .cloned()
        .chain(
            tally
                .losses
                .iter()
                .filter(|(_, p, _)| p == TARGET)
                .map(|(node, p, why)| format!("{node}: lost {p} {why}")),
        )
        .collect();
    Row {
        fault,
        kind,
        lost: lost(&tally),
        twice: tally.twice().len(),
        resumed_after,
        claimed_unread,
        resumed_at,
        begin,
        said,
    }
}
