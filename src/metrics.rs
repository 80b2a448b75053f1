//! Metrics (feature `metrics`): what a fleet is watched by, through the [`metrics`][facade]
//! facade.
//!
//! [facade]: https://docs.rs/metrics/0.24
//!
//! Install any `metrics` recorder (a Prometheus exporter, an OpenTelemetry bridge, StatsD) and
//! the stores, the balancer and the checkpointer report into it; without one, the facade's calls
//! reach its no-op recorder. Without the feature, nothing is compiled in.
//!
//! Names: the two that Java's blob store reports keep its names, so dashboards built for a Java
//! fleet read a Rust one; the rest follow them under `messaging.eventhubs.`. OpenTelemetry's
//! messaging conventions define no checkpoint-store metrics, but their attributes are used:
//!
//! | name | kind, unit | what it counts | attributes beyond the scope's |
//! |---|---|---|---|
//! | `messaging.eventhubs.checkpoint_store.operation.duration` | histogram, s | every store operation, retries included | `store` (`blob`, `table`, `memory`), `operation`, `outcome` (`ok`, `error`), `error.type` (the HTTP status, or `timeout`, `transport`, `invalid_input`, …) |
//! | `messaging.eventhubs.checkpoint_store.claims` | counter | claims sent | `outcome`: `won`, `lost` (someone else wrote first: normal), `failed` |
//! | `messaging.eventhubs.checkpoint.sequence_number` | gauge | the last sequence number this process checkpointed, per partition (Java's gauge) | `messaging.destination.partition.id` |
//! | `messaging.eventhubs.checkpoints` | counter | the checkpointer's positions | `result`: `written`, `coalesced` (recorded and superseded by a later write), `stale` (not written: the stored checkpoint is newer), `failed` |
//! | `messaging.eventhubs.ownership.changes` | counter | the balancer's ownership changes | `change`: `taken` (free or expired), `stolen` (from a live owner), `lost`, `relinquished`; `messaging.client.id` (the owner id) |
//! | `messaging.eventhubs.ownership.owned` | gauge | partitions the balancer owns | `messaging.client.id` |
//! | `messaging.eventhubs.handover.holds` | counter | partitions taken from a live owner and held until it hands them over | `messaging.client.id` |
//! | `messaging.eventhubs.processor.events` | counter | events the [`Processor`](crate::processor::Processor) handed to the application | `messaging.destination.partition.id` |
//! | `messaging.eventhubs.processor.batches` | counter | batches it handed to the application | |
//! | `messaging.eventhubs.processor.sequence_number` | gauge | the last event's sequence number it handed out, per partition | `messaging.destination.partition.id` |
//! | `messaging.eventhubs.processor.enqueued_time` | gauge, s | the last event's enqueued time it handed out (Unix seconds), per partition | `messaging.destination.partition.id` |
//! | `messaging.eventhubs.processor.reconnects` | counter | consumer clients it replaced after a failure | `messaging.client.id` |
//! | `messaging.eventhubs.processor.partitions_stopped` | counter | partitions whose events ended | `reason`: `handed_over`, `lost`, `shutdown`, `failed` (given up: unreadable for the stall timeout); `messaging.client.id` |
//!
//! The scope's attributes, on every metric: `messaging.system` (`eventhubs`), `server.address`
//! (the namespace), `messaging.destination.name` (the event hub), `messaging.consumer.group.name`.
//! The per-partition gauge has one series per partition this process checkpointed.
//!
//! [`describe`] registers each metric's description and unit with the installed recorder.
//!
//! ```
//! use eventhub_checkpointstore::{metrics, CheckpointStore, InMemoryCheckpointStore, Scope};
//! use metrics_util::debugging::{DebugValue, DebuggingRecorder};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> eventhub_checkpointstore::Result<()> {
//! // Any recorder; this one keeps the figures in memory.
//! let recorder = DebuggingRecorder::new();
//! let snapshotter = recorder.snapshotter();
//! recorder.install().expect("no other recorder installed");
//! metrics::describe();
//!
//! let store = InMemoryCheckpointStore::new();
//! let scope = Scope::new("myns.servicebus.windows.net", "telemetry", "$Default");
//! store.claim_ownership(&[scope.ownership("0", "consumer-1")]).await?;
//!
//! let claims_won: u64 = snapshotter
//!     .snapshot()
//!     .into_vec()
//!     .into_iter()
//!     .filter(|(key, ..)| key.key().name() == metrics::CLAIMS)
//!     .map(|(.., value)| match value {
//!         DebugValue::Counter(n) => n,
//!         _ => 0,
//!     })
//!     .sum();
//! assert_eq!(claims_won, 1);
//! # Ok(()) }
//! ```

/// Store operations, retries included: a histogram in seconds.
#[cfg(feature = "metrics")]
pub const OPERATION_DURATION: &str = "messaging.eventhubs.checkpoint_store.operation.duration";
/// Ownership claims sent, by `outcome`: a counter.
#[cfg(feature = "metrics")]
pub const CLAIMS: &str = "messaging.eventhubs.checkpoint_store.claims";
/// The last sequence number this process checkpointed, per partition: a gauge (Java's name).
#[cfg(feature = "metrics")]
pub const CHECKPOINT_SEQUENCE_NUMBER: &str = "messaging.eventhubs.checkpoint.sequence_number";
/// The checkpointer's positions, by `result`: a counter.
#[cfg(feature = "metrics")]
pub const CHECKPOINTS: &str = "messaging.eventhubs.checkpoints";
/// The balancer's ownership changes, by `change`: a counter.
#[cfg(feature = "metrics")]
pub const OWNERSHIP_CHANGES: &str = "messaging.eventhubs.ownership.changes";
/// Partitions the balancer owns: a gauge.
#[cfg(feature = "metrics")]
pub const OWNED: &str = "messaging.eventhubs.ownership.owned";
/// Partitions taken from a live owner and held for its handover: a counter.
#[cfg(feature = "metrics")]
pub const HANDOVER_HOLDS: &str = "messaging.eventhubs.handover.holds";

/// Events the processor handed to the application (feature `eventhubs`): a counter.
#[cfg(feature = "metrics")]
pub const PROCESSOR_EVENTS: &str = "messaging.eventhubs.processor.events";

/// Batches the processor handed to the application.
#[cfg(feature = "metrics")]
pub const PROCESSOR_BATCHES: &str = "messaging.eventhubs.processor.batches";

/// The sequence number of the last event the processor handed out, per partition.
#[cfg(feature = "metrics")]
pub const PROCESSOR_SEQUENCE_NUMBER: &str = "messaging.eventhubs.processor.sequence_number";

/// The enqueued time (Unix seconds) of the last event the processor handed out, per partition.
#[cfg(feature = "metrics")]
pub const PROCESSOR_ENQUEUED_TIME: &str = "messaging.eventhubs.processor.enqueued_time";

/// Consumer clients the processor replaced after a failure.
#[cfg(feature = "metrics")]
pub const PROCESSOR_RECONNECTS: &str = "messaging.eventhubs.processor.reconnects";

/// Partitions whose events ended, by reason.
#[cfg(feature = "metrics")]
pub const PROCESSOR_PARTITIONS_STOPPED: &str = "messaging.eventhubs.processor.partitions_stopped";

use crate::error::Error;
use crate::model::Checkpoint;
use crate::scope::Scope;
use std::time::Duration;

/// Registers each metric's description and unit with the installed recorder (a Prometheus
/// exporter prints them as `# HELP`). Call it once after installing the recorder.
#[cfg(feature = "metrics")]
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_histogram!(
        OPERATION_DURATION,
        Unit::Seconds,
        "Duration of checkpoint store operations, retries included"
    );
    describe_counter!(
        CLAIMS,
        "Ownership claims sent, by outcome (won, lost, failed)"
    );
    describe_gauge!(
        CHECKPOINT_SEQUENCE_NUMBER,
        "Last successfully checkpointed sequence number"
    );
    describe_counter!(
        CHECKPOINTS,
        "Checkpointer positions: written, coalesced, stale (the stored one is newer), failed"
    );
    describe_counter!(
        OWNERSHIP_CHANGES,
        "Ownership changes: taken, stolen, lost, relinquished"
    );
    describe_gauge!(OWNED, "Partitions owned by this consumer");
    describe_counter!(
        HANDOVER_HOLDS,
        "Partitions taken from a live owner and held until it hands them over"
    );
    describe_counter!(
        PROCESSOR_EVENTS,
        "Events the processor handed to the application"
    );
    describe_counter!(
        PROCESSOR_BATCHES,
        "Batches the processor handed to the application"
    );
    describe_gauge!(
        PROCESSOR_SEQUENCE_NUMBER,
        "Sequence number of the last event handed out"
    );
    describe_gauge!(
        PROCESSOR_ENQUEUED_TIME,
        Unit::Seconds,
        "Enqueued time (Unix seconds) of the last event handed out"
    );
    describe_counter!(
        PROCESSOR_RECONNECTS,
        "Consumer clients replaced after a failure"
    );
    describe_counter!(
        PROCESSOR_PARTITIONS_STOPPED,
        "Partitions whose events ended: handed_over, lost, shutdown, failed"
    );
}

/// What a checkpointer did with a position.
#[derive(Clone, Copy)]
pub(crate) enum CheckpointResult {
    Written,
    Coalesced,
    Stale,
    Failed,
}

/// A balancer's ownership change.
#[derive(Clone, Copy)]
pub(crate) enum Change {
    Taken,
    Stolen,
    Lost,
    Relinquished,
}

#[cfg(feature = "metrics")]
fn scope_labels(scope: &Scope) -> Vec<metrics::Label> {
    vec![
        metrics::Label::from_static_parts("messaging.system", "eventhubs"),
        metrics::Label::new("server.address", scope.fully_qualified_namespace.clone()),
        metrics::Label::new("messaging.destination.name", scope.eventhub_name.clone()),
        metrics::Label::new(
            "messaging.consumer.group.name",
            scope.consumer_group.clone(),
        ),
    ]
}

/// A store operation on `scope` took `elapsed` and ended with `error` (none: ok).
#[allow(unused_variables)]
pub(crate) fn operation(
    store: &'static str,
    operation: &'static str,
    scope: Option<&Scope>,
    elapsed: Duration,
    error: Option<&Error>,
) {
    #[cfg(feature = "metrics")]
    {
        let mut labels = scope.map(scope_labels).unwrap_or_default();
        labels.push(metrics::Label::from_static_parts("store", store));
        labels.push(metrics::Label::from_static_parts("operation", operation));
        match error {
            None => labels.push(metrics::Label::from_static_parts("outcome", "ok")),
            Some(err) => {
                labels.push(metrics::Label::from_static_parts("outcome", "error"));
                labels.push(metrics::Label::new("error.type", error_type(err)));
            }
        }
        metrics::histogram!(OPERATION_DURATION, labels).record(elapsed.as_secs_f64());
    }
}

/// The claims of one call on `scope`: won, lost and failed.
#[allow(unused_variables)]
pub(crate) fn claims(scope: Option<&Scope>, won: u64, lost: u64, failed: u64) {
    #[cfg(feature = "metrics")]
    for (outcome, count) in [("won", won), ("lost", lost), ("failed", failed)] {
        if count > 0 {
            let mut labels = scope.map(scope_labels).unwrap_or_default();
            labels.push(metrics::Label::from_static_parts("outcome", outcome));
            metrics::counter!(CLAIMS, labels).increment(count);
        }
    }
}

/// `checkpoint` is stored now (written by this process).
#[allow(unused_variables)]
pub(crate) fn checkpointed(checkpoint: &Checkpoint) {
    #[cfg(feature = "metrics")]
    if let Some(sequence_number) = checkpoint.sequence_number {
        let mut labels = scope_labels(&checkpoint.scope);
        labels.push(metrics::Label::new(
            "messaging.destination.partition.id",
            checkpoint.partition_id.clone(),
        ));
        metrics::gauge!(CHECKPOINT_SEQUENCE_NUMBER, labels).set(sequence_number as f64);
    }
}

/// The checkpointer of `scope` handled `count` positions so.
#[allow(unused_variables)]
pub(crate) fn checkpoints(scope: &Scope, result: CheckpointResult, count: u64) {
    #[cfg(feature = "metrics")]
    if count > 0 {
        let mut labels = scope_labels(scope);
        let result = match result {
            CheckpointResult::Written => "written",
            CheckpointResult::Coalesced => "coalesced",
            CheckpointResult::Stale => "stale",
            CheckpointResult::Failed => "failed",
        };
        labels.push(metrics::Label::from_static_parts("result", result));
        metrics::counter!(CHECKPOINTS, labels).increment(count);
    }
}

/// The balancer `owner` of `scope` had `count` partitions change so.
#[allow(unused_variables)]
pub(crate) fn ownership_changes(scope: &Scope, owner: &str, change: Change, count: usize) {
    #[cfg(feature = "metrics")]
    if count > 0 {
        let mut labels = owner_labels(scope, owner);
        let change = match change {
            Change::Taken => "taken",
            Change::Stolen => "stolen",
            Change::Lost => "lost",
            Change::Relinquished => "relinquished",
        };
        labels.push(metrics::Label::from_static_parts("change", change));
        metrics::counter!(OWNERSHIP_CHANGES, labels).increment(count as u64);
    }
}

/// The balancer `owner` of `scope` owns `count` partitions now.
#[allow(unused_variables)]
pub(crate) fn owned(scope: &Scope, owner: &str, count: usize) {
    #[cfg(feature = "metrics")]
    metrics::gauge!(OWNED, owner_labels(scope, owner)).set(count as f64);
}

/// The balancer `owner` of `scope` holds `count` partitions taken from live owners.
#[allow(unused_variables)]
pub(crate) fn handover_holds(scope: &Scope, owner: &str, count: usize) {
    #[cfg(feature = "metrics")]
    if count > 0 {
        metrics::counter!(HANDOVER_HOLDS, owner_labels(scope, owner)).increment(count as u64);
    }
}

/// The processor of `scope` handed out an event of `partition`.
#[cfg(feature = "eventhubs")]
#[allow(unused_variables)]
pub(crate) fn processed(
    scope: &Scope,
    partition: &str,
    sequence_number: Option<i64>,
    enqueued: Option<std::time::SystemTime>,
) {
    #[cfg(feature = "metrics")]
    {
        let mut labels = scope_labels(scope);
        labels.push(metrics::Label::new(
            "messaging.destination.partition.id",
            partition.to_owned(),
        ));
        metrics::counter!(PROCESSOR_EVENTS, labels.clone()).increment(1);
        if let Some(sequence_number) = sequence_number {
            metrics::gauge!(PROCESSOR_SEQUENCE_NUMBER, labels.clone()).set(sequence_number as f64);
        }
        if let Some(since) = enqueued.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()) {
            metrics::gauge!(PROCESSOR_ENQUEUED_TIME, labels).set(since.as_secs_f64());
        }
    }
}

/// The processor of `scope` handed out a batch.
#[cfg(feature = "eventhubs")]
#[allow(unused_variables)]
pub(crate) fn batch(scope: &Scope) {
    #[cfg(feature = "metrics")]
    metrics::counter!(PROCESSOR_BATCHES, scope_labels(scope)).increment(1);
}

/// The processor `owner` of `scope` replaced its consumer client.
#[cfg(feature = "eventhubs")]
#[allow(unused_variables)]
pub(crate) fn reconnected(scope: &Scope, owner: &str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(PROCESSOR_RECONNECTS, owner_labels(scope, owner)).increment(1);
}

/// The processor `owner` of `scope` stopped reading `partition` for `reason`.
#[cfg(feature = "eventhubs")]
#[allow(unused_variables)]
pub(crate) fn partition_stopped(scope: &Scope, owner: &str, partition: &str, reason: &'static str) {
    #[cfg(feature = "metrics")]
    {
        let mut labels = owner_labels(scope, owner);
        labels.push(metrics::Label::new(
            "messaging.destination.partition.id",
            partition.to_owned(),
        ));
        labels.push(metrics::Label::from_static_parts("reason", reason));
        metrics::counter!(PROCESSOR_PARTITIONS_STOPPED, labels).increment(1);
    }
}

#[cfg(feature = "metrics")]
fn owner_labels(scope: &Scope, owner: &str) -> Vec<metrics::Label> {
    let mut labels = scope_labels(scope);
    labels.push(metrics::Label::new("messaging.client.id", owner.to_owned()));
    labels
}

/// A low-cardinality name for what went wrong: the HTTP status, or the kind of failure.
#[cfg(feature = "metrics")]
fn error_type(err: &Error) -> String {
    let kind = match err {
        Error::Service { status, .. } => return status.to_string(),
        Error::InvalidInput { .. } => "invalid_input",
        Error::Transport { .. } => "transport",
        Error::Timeout { .. } => "timeout",
        Error::Authentication { .. } => "authentication",
        Error::NoRuntime { .. } => "no_runtime",
        Error::Conflict { .. } => "conflict",
        Error::UnexpectedResponse { .. } => "unexpected_response",
        #[cfg(feature = "eventhubs")]
        Error::EventHubs { .. } => "event_hubs",
        #[allow(unreachable_patterns)]
        _ => "other",
    };
    kind.to_owned()
}
