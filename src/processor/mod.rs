//! An Event Hubs consumer on this crate's balancer and checkpointer (feature `eventhubs`): the
//! [`Processor`], in place of the official `EventProcessor`.
//!
//! It reads with the official client's partition receivers and keeps ownership and checkpoints
//! in any [`CheckpointStore`](crate::CheckpointStore), under the names every other language's
//! processor uses. What it adds to the official processor:
//!
//! - **Nothing processed twice when partitions move between live consumers.** A partition taken
//!   from a live consumer is read once that consumer has stopped and written its last position
//!   ([cooperative handover](crate::balancer#cooperative-handover)); a partition's events end,
//!   with [`StopReason::HandedOver`], before its last position is written.
//! - **Checkpoints coalesced**: every N events or T time, when a partition is handed over or
//!   given up, and on stop; never moved back.
//! - **Expiry judged by the storage service's clock**, not this host's.
//! - **No zombie owners.** It opens its consumer clients itself and replaces one whose
//!   connection died (the 0.15 client can lose its connection and never reconnect); a
//!   partition it cannot read for the stall timeout (default two intervals) is given up
//!   ([`StopReason::Failed`]) for another consumer to take, instead of staying claimed and unread.
//! - **Across a reconnect, nothing repeated**: a partition's receiver opens again just after the
//!   last event handed to the application.
//!
//! Two ways to consume. The pull API: [`Processor::next_partition`] hands over each partition
//! this consumer gets, as a [`PartitionClient`] whose events run until the partition must stop.
//! The handler API: [`Processor::run`] calls an [`EventHandler`] with batches, serially per
//! partition and concurrently across partitions, and checkpoints each batch it processed.
//!
//! It runs under any Tokio runtime: the official client's receivers are not `Send`, so the
//! processor reads on a thread of its own, and hands events over through channels.
//!
//! ```no_run
//! // Needs an Event Hubs namespace and runs until stopped; examples/processor.rs runs here.
//! use eventhub_checkpointstore::{
//!     processor::{Connection, Processor},
//!     BlobCheckpointStore,
//! };
//! use std::sync::Arc;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = BlobCheckpointStore::from_connection_string(
//!     &std::env::var("AZURE_STORAGE_CONNECTION_STRING")?,
//!     "checkpoints",
//!     None,
//! )?;
//! store.create_container_if_missing().await?;
//! let connection = Connection::from_connection_string(
//!     "Endpoint=sb://myns.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=…",
//!     Some("telemetry"),
//! )?;
//! let processor = Arc::new(Processor::builder().start(Arc::new(store), connection).await?);
//! while let Some(mut partition) = processor.next_partition().await {
//!     tokio::spawn(async move {
//!         while let Some(event) = partition.next_event().await {
//!             println!("{}: {:?}", partition.partition_id(), event.sequence_number());
//!             if let Err(err) = partition.checkpoint(&event).await {
//!                 eprintln!("checkpoint: {err}");
//!             }
//!         }
//!         println!("{} stopped: {:?}", partition.partition_id(), partition.stop_reason());
//!     });
//! }
//! # Ok(()) }
//! ```
//!
//! Owner level: receivers carry owner level 0 by default ([`ProcessorBuilder::owner_level`]),
//! as the other languages' processors (and 0.15's `EventProcessor`) do: a consumer still reading
//! a partition that another consumer has opened since is cut off by the service
//! (`amqp:link:stolen`) rather than reading on.
//!
//! What each line promises, and the test that holds it to it, is in the repository's
//! `docs/processor.md`.

mod connection;
mod engine;
mod handler;
mod options;
mod partition;

pub use connection::Connection;
pub use handler::{BoxError, EventHandler, PartitionContext};
pub use options::{ProcessorBuilder, StartPosition};
pub use partition::{PartitionClient, StopReason};

use crate::error::{Error, Result};
use crate::scope::Scope;
use engine::Shared;
use std::{collections::BTreeSet, sync::Arc, time::Duration};
use tokio::sync::{mpsc, oneshot, watch};

/// A consumer of one consumer group: balances the hub's partitions with the other consumers
/// through the store, reads those it owns and checkpoints them. See the [module docs](self).
pub struct Processor {
    shared: Arc<Shared>,
    partitions: tokio::sync::Mutex<mpsc::UnboundedReceiver<PartitionClient>>,
    stop: watch::Sender<bool>,
    done: tokio::sync::Mutex<Option<oneshot::Receiver<Result<()>>>>,
    partition_ids: Vec<String>,
    batch: (usize, Duration),
}

/// What a [`Processor`] has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessorStats {
    /// Events handed to the application.
    pub events: u64,
    /// Batches handed to the application ([`PartitionClient::next_batch`], [`Processor::run`]).
    pub batches: u64,
    /// Partitions handed to the application.
    pub partitions_opened: u64,
    /// Consumer clients replaced after a failure.
    pub reconnects: u64,
    /// Partitions given up because they could not be read for the stall timeout.
    pub stalls: u64,
    /// Partitions handed over to another consumer.
    pub handovers: u64,
    /// Partitions taken without a handover.
    pub lost: u64,
}

impl std::fmt::Debug for Processor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Processor")
            .field("scope", self.scope())
            .field("owner_id", &self.owner_id())
            .field("partitions", &self.partition_ids.len())
            .finish_non_exhaustive()
    }
}

impl Processor {
    /// A builder with the default options.
    pub fn builder() -> ProcessorBuilder {
        ProcessorBuilder::default()
    }

    fn new(
        shared: Arc<Shared>,
        partitions: mpsc::UnboundedReceiver<PartitionClient>,
        stop: watch::Sender<bool>,
        done: oneshot::Receiver<Result<()>>,
        partition_ids: Vec<String>,
        options: &ProcessorBuilder,
    ) -> Self {
        Self {
            shared,
            partitions: tokio::sync::Mutex::new(partitions),
            stop,
            done: tokio::sync::Mutex::new(Some(done)),
            partition_ids,
            batch: (options.max_batch_size, options.max_wait_time),
        }
    }

    /// The next partition this consumer got, from just after its checkpoint; `None` once the
    /// processor stops. Take each as it comes: a partition handed out and not read is claimed
    /// and unread.
    pub async fn next_partition(&self) -> Option<PartitionClient> {
        let mut partitions = self.partitions.lock().await;
        let mut stop = self.stop.subscribe();
        tokio::select! {
            partition = partitions.recv() => partition,
            _ = stop.wait_for(|stop| *stop) => None,
        }
    }

    /// Stops: the partitions' events end ([`StopReason::Shutdown`]), the application's partition
    /// clients are waited for (until each returned its end or was dropped, at most an interval),
    /// then the last positions are written and every partition relinquished, so others take
    /// them at once. The error is a failed last write or release; a second call returns `Ok`.
    pub async fn stop(&self) -> Result<()> {
        let _ = self.stop.send(true);
        let Some(done) = self.done.lock().await.take() else {
            return Ok(());
        };
        done.await
            .unwrap_or_else(|_| Err(Error::event_hubs("the processor's thread ended")))
    }

    /// The consumer group it consumes.
    pub fn scope(&self) -> &Scope {
        self.shared.balancer.scope()
    }

    /// Its owner id in the ownership records.
    pub fn owner_id(&self) -> &str {
        self.shared.balancer.owner_id()
    }

    /// The event hub's partition ids.
    pub fn partition_ids(&self) -> &[String] {
        &self.partition_ids
    }

    /// The partitions it owns now (those held for a handover included).
    pub fn owned(&self) -> BTreeSet<String> {
        self.shared.balancer.owned()
    }

    /// What it has done so far.
    pub fn stats(&self) -> ProcessorStats {
        self.shared.stats()
    }

    /// What its checkpointer has done so far: positions recorded, checkpoints written, and
    /// positions not written because the stored checkpoint was newer.
    pub fn checkpointer_stats(&self) -> crate::checkpointer::CheckpointerStats {
        self.shared.checkpointer.stats()
    }
}

impl Drop for Processor {
    /// Asks the engine to stop (it relinquishes on its own thread, if the process lives on);
    /// call [`stop`](Processor::stop) to wait for that.
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

// Handles the application moves between tasks and threads.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    const fn send<T: Send>() {}
    send_sync::<Processor>();
    send::<PartitionClient>();
};
