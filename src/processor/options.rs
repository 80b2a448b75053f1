//! How a [`Processor`](super::Processor) balances, checkpoints, and where it starts: its builder.

use super::{connection::Connection, Processor};
use crate::balancer::{BalancerOptions, Strategy};
use crate::checkpointer::CheckpointerOptions;
use crate::error::{Error, Result};
use crate::store::CheckpointStore;
use std::{collections::BTreeMap, num::NonZeroU64, sync::Arc, time::Duration};
use time::OffsetDateTime;

/// Where a partition that has no checkpoint starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartPosition {
    /// Its oldest retained event (the default, as .NET's and Java's processors: nothing in the
    /// partition is skipped).
    #[default]
    Earliest,
    /// The first event enqueued after the partition is opened.
    Latest,
    /// The event with this sequence number, and those after it.
    SequenceNumber(i64),
    /// The first event enqueued at or after this time.
    EnqueuedTime(OffsetDateTime),
}

/// Builds a [`Processor`]: `Processor::builder()`, options, then
/// [`start`](Self::start).
///
/// ```
/// use eventhub_checkpointstore::processor::{Processor, StartPosition};
/// use std::time::Duration;
///
/// let builder = Processor::builder()
///     .interval(Duration::from_secs(5))
///     .expiration(Duration::from_secs(20))
///     .checkpoint_every_events(100)
///     .checkpoint_every(Duration::from_secs(10))
///     .start_position(StartPosition::Latest)
///     .start_position_for("0", StartPosition::SequenceNumber(1_000));
/// ```
#[derive(Clone, Debug)]
pub struct ProcessorBuilder {
    pub(super) balancer: BalancerOptions,
    pub(super) checkpointer: CheckpointerOptions,
    pub(super) start: StartPosition,
    pub(super) start_for: BTreeMap<String, StartPosition>,
    pub(super) owner_id: Option<String>,
    pub(super) owner_level: Option<i64>,
    pub(super) stall_timeout: Option<Duration>,
    pub(super) prefetch: Option<u32>,
    pub(super) max_batch_size: usize,
    pub(super) max_wait_time: Duration,
}

impl Default for ProcessorBuilder {
    fn default() -> Self {
        Self {
            balancer: BalancerOptions::default(),
            checkpointer: CheckpointerOptions::default(),
            start: StartPosition::Earliest,
            start_for: BTreeMap::new(),
            owner_id: None,
            owner_level: Some(0),
            stall_timeout: None,
            prefetch: None,
            max_batch_size: 100,
            max_wait_time: Duration::from_millis(200),
        }
    }
}

impl ProcessorBuilder {
    /// Time between balancing cycles. Default 10 s (see [`BalancerOptions::interval`]).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.balancer.interval = interval;
        self
    }

    /// A claim not renewed for this long is expired: others take its partitions. Must exceed
    /// the interval. Default 30 s.
    pub fn expiration(mut self, expiration: Duration) -> Self {
        self.balancer.expiration = expiration;
        self
    }

    /// How fast partitions are taken. Default [`Strategy::Balanced`].
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.balancer.strategy = strategy;
        self
    }

    /// Cooperative handover (see [`BalancerOptions::handover_intervals`]): a partition taken from
    /// a live consumer is read once that consumer has stopped and written its last position, so
    /// nothing is processed twice. `0` steals as the other processors do. Default 2.
    pub fn handover_intervals(mut self, intervals: u32) -> Self {
        self.balancer.handover_intervals = intervals;
        self
    }

    /// Every balancer option at once.
    pub fn balancer_options(mut self, options: BalancerOptions) -> Self {
        self.balancer = options;
        self
    }

    /// Write a partition's checkpoint once this many events were checkpointed since its last
    /// write (`0`: only by time and when the partition is given up). Default 100.
    pub fn checkpoint_every_events(mut self, events: u64) -> Self {
        self.checkpointer.every_events = NonZeroU64::new(events);
        self
    }

    /// Write a partition's checkpoint once its oldest unwritten position is this old; `None`:
    /// only by count and when the partition is given up. Default 10 s.
    ///
    /// ```
    /// # use eventhub_checkpointstore::processor::Processor;
    /// # use std::time::Duration;
    /// let by_time = Processor::builder().checkpoint_every(Duration::from_secs(30));
    /// let by_count_only = Processor::builder().checkpoint_every(None);
    /// ```
    pub fn checkpoint_every(mut self, every: impl Into<Option<Duration>>) -> Self {
        self.checkpointer.every = every.into();
        self
    }

    /// Every checkpointer option at once.
    pub fn checkpointer_options(mut self, options: CheckpointerOptions) -> Self {
        self.checkpointer = options;
        self
    }

    /// Where a partition without a checkpoint starts. Default [`StartPosition::Earliest`].
    pub fn start_position(mut self, start: StartPosition) -> Self {
        self.start = start;
        self
    }

    /// Where partition `partition_id` starts when it has no checkpoint, overriding
    /// [`start_position`](Self::start_position).
    pub fn start_position_for(
        mut self,
        partition_id: impl Into<String>,
        start: StartPosition,
    ) -> Self {
        self.start_for.insert(partition_id.into(), start);
        self
    }

    /// This consumer's owner id in the ownership records. Default: a new random id.
    pub fn owner_id(mut self, owner_id: impl Into<String>) -> Self {
        self.owner_id = Some(owner_id.into());
        self
    }

    /// The owner level (epoch) asked for this consumer's receivers. Default `Some(0)`, as the
    /// other languages' processors. The 0.15 client does not send it yet, so today the receivers
    /// carry none whatever this says; what follows from that, and what the processor does about
    /// it, is in `docs/processor.md`, "Owner level".
    /// `None` asks for no owner level.
    pub fn owner_level(mut self, owner_level: Option<i64>) -> Self {
        self.owner_level = owner_level;
        self
    }

    /// How long a partition may go unread (no receiver could be opened, or each failed at
    /// once) before this consumer gives it up for another to take. Default twice the
    /// interval.
    pub fn stall_timeout(mut self, timeout: Duration) -> Self {
        self.stall_timeout = Some(timeout);
        self
    }

    /// The receivers' prefetch count (events the client buffers ahead of the application).
    /// Default: the client's.
    pub fn prefetch(mut self, prefetch: u32) -> Self {
        self.prefetch = Some(prefetch);
        self
    }

    /// The most events in one batch of [`Processor::run`] and
    /// [`PartitionClient::next_batch`](super::PartitionClient::next_batch)'s default. Default
    /// 100.
    pub fn max_batch_size(mut self, events: usize) -> Self {
        self.max_batch_size = events;
        self
    }

    /// How long [`Processor::run`] gathers a batch after its first event. Default 200 ms.
    pub fn max_wait_time(mut self, wait: Duration) -> Self {
        self.max_wait_time = wait;
        self
    }

    /// Checks the options, opens a consumer client on `connection`, reads the hub's partitions
    /// and starts balancing and reading on a thread of its own. Returns once the partitions
    /// are known; a client that cannot be opened (after a few tries) or a hub that cannot be
    /// read is the error.
    pub async fn start(
        self,
        store: Arc<dyn CheckpointStore>,
        connection: Connection,
    ) -> Result<Processor> {
        self.balancer.validate()?;
        self.checkpointer.validate()?;
        if self.stall_timeout.is_some_and(|t| t.is_zero()) {
            return Err(Error::invalid_input(
                "the stall timeout must be greater than zero",
            ));
        }
        if self.max_batch_size == 0 {
            return Err(Error::invalid_input("max_batch_size must be at least 1"));
        }
        if self.owner_id.as_deref() == Some("") {
            return Err(Error::invalid_input(
                "owner_id must not be empty (an empty owner means \"unowned\")",
            ));
        }
        super::engine::start(self, store, connection).await
    }

    /// The stall timeout in force.
    pub(super) fn stall(&self) -> Duration {
        self.stall_timeout
            .unwrap_or_else(|| self.balancer.interval.saturating_mul(2))
    }

    /// Where `partition` starts without a checkpoint.
    pub(super) fn start_of(&self, partition: &str) -> StartPosition {
        self.start_for.get(partition).copied().unwrap_or(self.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InMemoryCheckpointStore;

    #[tokio::test]
    async fn bad_options_are_refused_before_any_client_is_opened() {
        let connection = Connection::from_fn("ns", "hub", || {
            Box::pin(async { panic!("no client is opened for options that are refused") })
        });
        let zero = Duration::ZERO;
        let refused = [
            Processor::builder().interval(zero),
            Processor::builder().expiration(Duration::from_secs(1)),
            Processor::builder().checkpoint_every(zero),
            Processor::builder().stall_timeout(zero),
            Processor::builder().max_batch_size(0),
            Processor::builder().owner_id(""),
        ];
        for builder in refused {
            let described = format!("{builder:?}");
            let started = builder
                .start(Arc::new(InMemoryCheckpointStore::new()), connection.clone())
                .await;
            assert!(
                matches!(started, Err(Error::InvalidInput { .. })),
                "{described}: {started:?}"
            );
        }
    }

    #[test]
    fn time_based_checkpoints_can_be_turned_off_and_back_on() {
        let off = Processor::builder().checkpoint_every(None);
        assert_eq!(off.checkpointer.every, None);
        assert_eq!(off.checkpointer.every_events, NonZeroU64::new(100));
        let on = off.checkpoint_every(Duration::from_secs(3));
        assert_eq!(on.checkpointer.every, Some(Duration::from_secs(3)));
    }
}
