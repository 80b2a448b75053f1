//! Checkpointing without a storage write per event: a [`Checkpointer`] remembers the newest
//! processed position of each partition in memory and writes it every N events or T time
//! (whichever comes first), when the partition is given up, and on shutdown.
//!
//! Writing every event costs one request per event; writing every 100 costs one per 100, and a
//! consumer that takes over a partition reprocesses at most the events recorded since the last
//! write (none when the old owner flushes before it gives the partition up, which
//! [`flush`](Checkpointer::flush) and the balancer's
//! [`with_checkpointer`](crate::balancer::PartitionBalancer::with_checkpointer) do).
//!
//! A partition that was *taken* (stolen, or expired and claimed) is different: its new owner has
//! already read the checkpoint and resumed from it, so a late write cannot help it and may move
//! its checkpoint backwards once it has written its own. Such positions are
//! [discarded](Checkpointer::discard), not written, where the balancer knows the taker resumed at
//! once; and every write goes out through
//! [`advance_checkpoint`](CheckpointStore::advance_checkpoint), so a position older than the
//! stored checkpoint is never written, whoever wrote that one and whenever this consumer learns
//! of the loss (a stall past its claim's expiry, a store that was unreachable, a steal by a
//! processor that does not hold). Such a position is dropped and counted in
//! [`CheckpointerStats::refused`].
//!
//! Writes of one partition go out one at a time, each carrying the newest position at the moment
//! it is sent, so a slow write never overwrites a newer one. A write that fails leaves the
//! position pending, to go out with the next write, and its error is returned to the caller that
//! triggered it (or logged at WARN by [`run`](Checkpointer::run)); nothing is dropped silently.
//!
//! ```
//! use eventhub_checkpointstore::{
//!     checkpointer::{Checkpointer, CheckpointerOptions},
//!     CheckpointStore, InMemoryCheckpointStore, Scope,
//! };
//! use std::{num::NonZeroU64, sync::Arc};
//!
//! # futures::executor::block_on(async {
//! let store = Arc::new(InMemoryCheckpointStore::new());
//! let scope = Scope::new("ns", "hub", "$Default");
//! let options = CheckpointerOptions { every_events: NonZeroU64::new(100), ..Default::default() };
//! let checkpointer = Checkpointer::new(store.clone(), scope.clone(), options)?;
//! for sequence_number in 0..250 {
//!     // ... process the event, then:
//!     checkpointer.record("0", Some(sequence_number.to_string()), Some(sequence_number)).await?;
//! }
//! checkpointer.flush_all().await?; // on shutdown
//! assert_eq!(checkpointer.stats().writes, 3); // at 100, 200, and the flush of 249
//! let stored = store.list_checkpoints(&scope).await?;
//! assert_eq!(stored[0].sequence_number, Some(249));
//! # Ok::<(), eventhub_checkpointstore::Error>(())
//! # }).unwrap();
//! ```

use crate::error::{Error, Result};
use crate::metrics::{self, CheckpointResult};
use crate::model::Advance;
use crate::scope::Scope;
use crate::store::CheckpointStore;
use crate::sync::lock;
use std::{
    collections::HashMap,
    future::Future,
    num::NonZeroU64,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

/// When a [`Checkpointer`] writes.
///
/// ```
/// use eventhub_checkpointstore::checkpointer::CheckpointerOptions;
/// use std::{num::NonZeroU64, time::Duration};
///
/// // Every 500 events of a partition, and at least every 30 s.
/// let options = CheckpointerOptions {
///     every_events: NonZeroU64::new(500),
///     every: Some(Duration::from_secs(30)),
///     ..Default::default()
/// };
/// // Only by count (and on flushes).
/// let by_count = CheckpointerOptions { every: None, ..Default::default() };
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointerOptions {
    /// Write a partition's position once this many events were recorded for it since its last
    /// write. `None`: only by time (and flushes). Default 100.
    pub every_events: Option<NonZeroU64>,
    /// Write a partition's position once its oldest unwritten record is this old. `None`: only by
    /// count (and flushes). Checked when an event is recorded and by [`Checkpointer::run`].
    /// Default 10 s.
    pub every: Option<Duration>,
}

impl Default for CheckpointerOptions {
    fn default() -> Self {
        Self {
            every_events: NonZeroU64::new(100),
            every: Some(Duration::from_secs(10)),
        }
    }
}

impl CheckpointerOptions {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.every.is_some_and(|t| t.is_zero()) {
            return Err(Error::invalid_input(
                "the checkpoint interval must be greater than zero (None writes by count only)",
            ));
        }
        Ok(())
    }
}

/// What a [`Checkpointer`] has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckpointerStats {
    /// Positions recorded.
    pub recorded: u64,
    /// Checkpoints written to the store.
    pub writes: u64,
    /// Positions not written because the stored checkpoint was at or past them: another
    /// consumer took the partition and processed further (or an operator moved it).
    pub refused: u64,
}

/// Coalesces checkpoints of one consumer group. See the [module docs](self).
pub struct Checkpointer {
    store: Arc<dyn CheckpointStore>,
    scope: Scope,
    options: CheckpointerOptions,
    partitions: Mutex<HashMap<String, Arc<Partition>>>,
    recorded: AtomicU64,
    writes: AtomicU64,
    refused: AtomicU64,
}

/// One partition's unwritten position, and the lock that keeps its writes in order.
#[derive(Default)]
struct Partition {
    pending: Mutex<Pending>,
    writing: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Pending {
    /// The newest position recorded and not yet written: (offset, sequence number).
    newest: Option<(Option<String>, Option<i64>)>,
    /// Records since the last write.
    unwritten: u64,
    /// When the oldest of those was recorded.
    since: Option<Instant>,
    /// The sequence number last written: a position older than it is never written again.
    written: Option<i64>,
}

impl Pending {
    fn due(&self, options: &CheckpointerOptions) -> bool {
        self.newest.is_some()
            && (options
                .every_events
                .is_some_and(|n| self.unwritten >= n.get())
                || options
                    .every
                    .zip(self.since)
                    .is_some_and(|(every, since)| since.elapsed() >= every))
    }
}

impl Checkpointer {
    /// A checkpointer writing to `store` for one consumer group; checks the options, sends
    /// nothing.
    pub fn new(
        store: Arc<dyn CheckpointStore>,
        scope: impl Into<Scope>,
        options: CheckpointerOptions,
    ) -> Result<Self> {
        options.validate()?;
        Ok(Self {
            store,
            scope: scope.into(),
            options,
            partitions: Mutex::new(HashMap::new()),
            recorded: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        })
    }

    /// Records that `partition_id` was processed up to this position, and writes it if it is
    /// due. Returns whether it wrote. A position older (by sequence number) than one already
    /// recorded or written is counted but never replaces it: checkpoints only move forward.
    ///
    /// A position with neither an offset nor a sequence number is refused
    /// ([`Error::InvalidInput`]). Any other error is the failed write's: the position stays
    /// pending and goes out with the next write of the partition.
    pub async fn record(
        &self,
        partition_id: &str,
        offset: Option<String>,
        sequence_number: Option<i64>,
    ) -> Result<bool> {
        if self.note(partition_id, offset, sequence_number)? {
            let partition = self.partition(partition_id);
            self.write(partition_id, &partition).await
        } else {
            Ok(false)
        }
    }

    /// [`record`](Self::record) without the write: whether one is due now (then
    /// [`flush`](Self::flush) writes it). For a caller that writes on another task or thread
    /// than the one that records, so that recording costs no hop there.
    pub(crate) fn note(
        &self,
        partition_id: &str,
        offset: Option<String>,
        sequence_number: Option<i64>,
    ) -> Result<bool> {
        if partition_id.is_empty() {
            return Err(Error::invalid_input("partition_id must not be empty"));
        }
        // Refused now rather than at every write of the partition from here on.
        if offset.is_none() && sequence_number.is_none() {
            return Err(Error::invalid_input(
                "a checkpoint needs an offset or a sequence_number",
            ));
        }
        self.recorded.fetch_add(1, Ordering::Relaxed);
        let partition = self.partition(partition_id);
        let mut pending = lock(&partition.pending);
        let held = pending
            .newest
            .as_ref()
            .and_then(|(_, seq)| *seq)
            .max(pending.written);
        let newer = match (held, sequence_number) {
            (Some(held), Some(new)) => new >= held,
            _ => true,
        };
        if newer {
            pending.newest = Some((offset, sequence_number));
        }
        pending.unwritten += 1;
        pending.since.get_or_insert_with(Instant::now);
        Ok(pending.due(&self.options))
    }

    /// Writes `partition_id`'s pending position now, if it has one: before the partition is given
    /// up. Returns whether it wrote.
    pub async fn flush(&self, partition_id: &str) -> Result<bool> {
        let partition = lock(&self.partitions).get(partition_id).cloned();
        match partition {
            Some(partition) => self.write(partition_id, &partition).await,
            None => Ok(false),
        }
    }

    /// Forgets `partition_id`'s pending position without writing it: when the partition was
    /// taken by another consumer, which resumed from the stored checkpoint already (see the
    /// [module docs](self)). Returns whether a position was pending. Writes already under way
    /// finish.
    pub fn discard(&self, partition_id: &str) -> bool {
        let partition = lock(&self.partitions).get(partition_id).cloned();
        partition.is_some_and(|partition| {
            let mut pending = lock(&partition.pending);
            let had = pending.newest.is_some();
            pending.newest = None;
            pending.unwritten = 0;
            pending.since = None;
            had
        })
    }

    /// Writes every pending position: on shutdown. Tries every partition; the error is the first
    /// failure (the failed positions stay pending).
    pub async fn flush_all(&self) -> Result<()> {
        self.flush_where(|_| true).await
    }

    /// Writes the positions that are due by time: what [`run`](Self::run) calls.
    pub async fn flush_due(&self) -> Result<()> {
        self.flush_where(|pending| pending.due(&self.options)).await
    }

    /// Calls [`flush_due`](Self::flush_due) regularly (a quarter of `every`, at least every
    /// second, or every second with no `every`) until `shutdown` completes, then
    /// [`flush_all`](Self::flush_all), whose result it returns. Failures on the way are logged at
    /// WARN and retried at the next tick.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<()> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::NoRuntime { operation: "run" });
        }
        let tick = self.options.every.map_or(Duration::from_secs(1), |t| {
            (t / 4).min(Duration::from_secs(1))
        });
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let pause = std::pin::pin!(tokio::time::sleep(tick));
            if let futures::future::Either::Left(_) =
                futures::future::select(shutdown.as_mut(), pause).await
            {
                break;
            }
            if let Err(err) = self.flush_due().await {
                tracing::warn!(error = %err, scope = %self.scope, "checkpoint write failed; the position stays pending");
            }
        }
        self.flush_all().await
    }

    /// Positions recorded and checkpoints written so far.
    pub fn stats(&self) -> CheckpointerStats {
        CheckpointerStats {
            recorded: self.recorded.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
        }
    }

    /// Partitions with a position recorded and not yet written.
    pub fn pending(&self) -> Vec<String> {
        let mut pending: Vec<String> = lock(&self.partitions)
            .iter()
            .filter(|(_, p)| lock(&p.pending).newest.is_some())
            .map(|(id, _)| id.clone())
            .collect();
        pending.sort();
        pending
    }

    fn partition(&self, partition_id: &str) -> Arc<Partition> {
        lock(&self.partitions)
            .entry(partition_id.to_owned())
            .or_default()
            .clone()
    }

    async fn flush_where(&self, pick: impl Fn(&Pending) -> bool) -> Result<()> {
        let chosen: Vec<(String, Arc<Partition>)> = lock(&self.partitions)
            .iter()
            .filter(|(_, p)| pick(&lock(&p.pending)))
            .map(|(id, p)| (id.clone(), p.clone()))
            .collect();
        let mut first_error = None;
        for (id, partition) in chosen {
            if let Err(err) = self.write(&id, &partition).await {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Writes the newest pending position of one partition, one write at a time per partition,
    /// unless the stored checkpoint is at or past it. Returns whether it wrote.
    async fn write(&self, partition_id: &str, partition: &Partition) -> Result<bool> {
        let _in_order = partition.writing.lock().await;
        let (position, count) = {
            let pending = lock(&partition.pending);
            match &pending.newest {
                Some(position) => (position.clone(), pending.unwritten),
                // Written by the write this one waited for.
                None => return Ok(false),
            }
        };
        let checkpoint = self
            .scope
            .checkpoint(partition_id, position.0.clone(), position.1);
        let advance = match self.store.advance_checkpoint(&checkpoint).await {
            Ok(advance) => advance,
            Err(err) => {
                metrics::checkpoints(&self.scope, CheckpointResult::Failed, 1);
                return Err(err);
            }
        };
        // What the store holds now, at least: nothing older is written from here on.
        let stored = match &advance {
            Advance::Stale { stored } => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                metrics::checkpoints(&self.scope, CheckpointResult::Stale, 1);
                tracing::info!(
                    scope = %self.scope,
                    partition_id,
                    position = ?position.1,
                    stored = ?stored.sequence_number,
                    "the stored checkpoint is at or past this consumer's position (another consumer processed further): the position is dropped"
                );
                stored.sequence_number.max(position.1)
            }
            Advance::Written => {
                self.writes.fetch_add(1, Ordering::Relaxed);
                metrics::checkpoints(&self.scope, CheckpointResult::Written, 1);
                // The positions recorded since the last write, folded into this one.
                metrics::checkpoints(
                    &self.scope,
                    CheckpointResult::Coalesced,
                    count.saturating_sub(1),
                );
                position.1
            }
            _ => position.1,
        };
        let mut pending = lock(&partition.pending);
        pending.unwritten = pending.unwritten.saturating_sub(count);
        pending.written = pending.written.max(stored);
        let superseded = pending.newest.as_ref() == Some(&position)
            || matches!(
                (pending.newest.as_ref().and_then(|(_, seq)| *seq), stored),
                (Some(newest), Some(stored)) if newest <= stored
            );
        if superseded {
            pending.newest = None;
            pending.unwritten = 0;
            pending.since = None;
        } else {
            // Recorded while the write was out: still pending, counted from now.
            pending.since = Some(Instant::now());
        }
        Ok(matches!(advance, Advance::Written))
    }
}

impl std::fmt::Debug for Checkpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpointer")
            .field("scope", &self.scope)
            .field("options", &self.options)
            .field("stats", &self.stats())
            .field("pending", &self.pending())
            .finish()
    }
}
