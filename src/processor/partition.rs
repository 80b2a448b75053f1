//! One partition handed to the application: its events, in order, until it must stop, and
//! where it stands.

use super::engine::{Command, Shared};
use crate::error::{Error, Result};
use azure_messaging_eventhubs::models::ReceivedEventData;
use futures::Stream;
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::sync::{mpsc, oneshot};

/// Why a partition's events ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// Another consumer took the partition over cooperatively: this one stopped, its last
    /// position is written, and the taker resumes right after it.
    HandedOver,
    /// The partition was taken without a handover (handover off, or the claim expired while
    /// the store could not be reached): the taker resumed from the stored checkpoint.
    Lost,
    /// The processor is stopping.
    Shutdown,
    /// The partition could not be read for the stall timeout (its receivers kept failing):
    /// this consumer gave it up so that another takes it over.
    Failed,
}

/// What the application and the engine both know of one partition.
pub(super) struct PartitionState {
    pub(super) partition_id: String,
    /// Set once: why reading ended (by the engine, or by the application's side).
    pub(super) end: Mutex<Option<StopReason>>,
}

impl PartitionState {
    pub(super) fn new(partition_id: String) -> Self {
        Self {
            partition_id,
            end: Mutex::new(None),
        }
    }

    /// Ends the partition for `reason`, unless it has ended already: whether this call ended it.
    pub(super) fn end(&self, reason: StopReason) -> bool {
        let mut end = crate::sync::lock(&self.end);
        let first = end.is_none();
        end.get_or_insert(reason);
        first
    }

    pub(super) fn ended(&self) -> Option<StopReason> {
        *crate::sync::lock(&self.end)
    }
}

/// One partition handed to this consumer by [`Processor::next_partition`](super::Processor::next_partition):
/// its events in order from just after its checkpoint (or the start position), until it must
/// stop, and [`checkpoint`](Self::checkpoint) to record how far it was processed.
///
/// An event is handed out only while this consumer owns the partition and is cleared to read
/// it: once the partition is handed over, lost, given up or the processor stops, the next call
/// returns `None` and [`stop_reason`](Self::stop_reason) says why. Events the processor read
/// ahead are dropped then; the next owner reads them from the checkpoint. Across a reconnect
/// (the client's connection died and was replaced) the events go on after the last one handed
/// out, with none repeated.
pub struct PartitionClient {
    state: Arc<PartitionState>,
    shared: Arc<Shared>,
    events: mpsc::Receiver<ReceivedEventData>,
    resumed_after: Option<i64>,
    /// Whether this client still counts as in use (see [`Shared::in_use`]).
    counted: bool,
}

impl std::fmt::Debug for PartitionClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionClient")
            .field("partition_id", &self.state.partition_id)
            .field("resumed_after", &self.resumed_after)
            .field("stop_reason", &self.state.ended())
            .finish_non_exhaustive()
    }
}

impl PartitionClient {
    pub(super) fn new(
        state: Arc<PartitionState>,
        shared: Arc<Shared>,
        events: mpsc::Receiver<ReceivedEventData>,
        resumed_after: Option<i64>,
    ) -> Self {
        shared.in_use.send_modify(|n| *n += 1);
        Self {
            state,
            shared,
            events,
            resumed_after,
            counted: true,
        }
    }

    /// The partition's id.
    pub fn partition_id(&self) -> &str {
        &self.state.partition_id
    }

    /// The sequence number of the checkpoint this partition resumed after; `None` when it had
    /// none and started at the start position.
    pub fn resumed_after(&self) -> Option<i64> {
        self.resumed_after
    }

    /// Why the events ended; `None` while they go on.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.state.ended()
    }

    /// The next event; `None` once the partition must stop (see
    /// [`stop_reason`](Self::stop_reason)). Waits while no event has arrived.
    pub async fn next_event(&mut self) -> Option<ReceivedEventData> {
        if self.state.ended().is_some() {
            self.release();
            return None;
        }
        match self.events.recv().await {
            // Checked as each event is handed out: the partition may have left while it waited.
            Some(event) if self.check_end().is_none() => {
                self.shared.handed_out(&self.state.partition_id, &event);
                Some(event)
            }
            Some(_) => None,
            // The engine ends a partition by setting its reason, then closing this channel; a
            // channel closed without one means the engine stopped.
            None => {
                self.shared.end(&self.state, StopReason::Shutdown);
                self.release();
                None
            }
        }
    }

    /// Up to `max` events: waits for the first, then takes what arrives within `wait` of it.
    /// `None` once the partition must stop (events already taken are returned first).
    pub async fn next_batch(
        &mut self,
        max: usize,
        wait: Duration,
    ) -> Option<Vec<ReceivedEventData>> {
        let first = self.next_event().await?;
        let mut batch = Vec::with_capacity(max.clamp(1, 1024));
        batch.push(first);
        let deadline = tokio::time::Instant::now() + wait;
        while batch.len() < max {
            // Events already here are taken without waiting.
            match tokio::time::timeout_at(deadline, self.next_event()).await {
                Ok(Some(event)) => batch.push(event),
                Ok(None) | Err(_) => break,
            }
        }
        self.shared.batch();
        Some(batch)
    }

    /// The events as a stream, ending when the partition must stop.
    pub fn events(&mut self) -> impl Stream<Item = ReceivedEventData> + '_ {
        futures::stream::unfold(self, |client| async move {
            let event = client.next_event().await?;
            Some((event, client))
        })
    }

    /// Records that this partition was processed up to and including `event`. The checkpoint
    /// is written every N events or T time (the builder's `checkpoint_every*`), when the
    /// partition is handed over or given up, and when the processor stops; whether this call
    /// wrote it. A checkpoint never moves back (see
    /// [`Checkpointer`](crate::checkpointer::Checkpointer)). After the partition was
    /// [`Lost`](StopReason::Lost) nothing is recorded (`Ok(false)`): its new owner already
    /// resumed from the stored checkpoint. The error is a failed write's (the position stays
    /// pending and goes out with the next write), or an event without a position.
    pub async fn checkpoint(&self, event: &ReceivedEventData) -> Result<bool> {
        self.checkpoint_position(event.offset().clone(), event.sequence_number())
            .await
    }

    /// [`checkpoint`](Self::checkpoint) of an event's position.
    pub(super) async fn checkpoint_position(
        &self,
        offset: Option<String>,
        sequence_number: Option<i64>,
    ) -> Result<bool> {
        if self.state.ended() == Some(StopReason::Lost) {
            return Ok(false);
        }
        // Recorded here; only a write that fell due goes to the engine's thread, which does
        // all storage I/O.
        let partition_id = &self.state.partition_id;
        if !self
            .shared
            .checkpointer
            .note(partition_id, offset, sequence_number)?
        {
            return Ok(false);
        }
        let (reply, answer) = oneshot::channel();
        let command = Command::Write {
            partition_id: partition_id.clone(),
            reply,
        };
        if self.shared.commands.send(command).is_err() {
            return Err(Error::event_hubs("the processor has stopped"));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(Error::event_hubs("the processor has stopped")))
    }

    /// The end, if the partition must stop now: set by the engine, or found here (the balancer
    /// no longer has it ready).
    fn check_end(&mut self) -> Option<StopReason> {
        let reason = self
            .state
            .ended()
            .or_else(|| self.shared.left(&self.state))?;
        self.release();
        Some(reason)
    }

    fn release(&mut self) {
        if std::mem::take(&mut self.counted) {
            self.shared.in_use.send_modify(|n| *n -= 1);
        }
    }
}

impl Drop for PartitionClient {
    fn drop(&mut self) {
        self.release();
    }
}
