//! The handler API: [`Processor::run`] calls an [`EventHandler`] with batches of each partition's
//! events, as Python's `on_event_batch` and .NET's `ProcessEventAsync` are called.

use super::{PartitionClient, Processor, StopReason};
use crate::error::Result;
use azure_messaging_eventhubs::models::ReceivedEventData;
use std::{future::Future, sync::Arc};

/// An error a handler returns.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The partition a batch comes from.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PartitionContext {
    /// The partition's id.
    pub partition_id: String,
    /// The sequence number of the checkpoint it resumed after (`None`: the start position).
    pub resumed_after: Option<i64>,
}

/// What [`Processor::run`] calls. Each partition's batches come one at a time, in order;
/// different partitions' batches come concurrently.
///
/// ```
/// use eventhub_checkpointstore::processor::{BoxError, EventHandler, PartitionContext};
/// use azure_messaging_eventhubs::models::ReceivedEventData;
///
/// struct Print;
///
/// #[async_trait::async_trait]
/// impl EventHandler for Print {
///     async fn process_events(
///         &self,
///         partition: &PartitionContext,
///         events: Vec<ReceivedEventData>,
///     ) -> Result<(), BoxError> {
///         for event in &events {
///             println!("{}: {:?}", partition.partition_id, event.sequence_number());
///         }
///         Ok(())
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait EventHandler: Send + Sync + 'static {
    /// Processes a batch (up to the builder's `max_batch_size` events, gathered for at most
    /// its `max_wait_time` after the first). `Ok`: the batch is checkpointed (written as the
    /// builder's `checkpoint_every*` say). An error goes to
    /// [`process_error`](Self::process_error) and the batch is not checkpointed; reading goes
    /// on with the next batch.
    async fn process_events(
        &self,
        partition: &PartitionContext,
        events: Vec<ReceivedEventData>,
    ) -> std::result::Result<(), BoxError>;

    /// A batch's processing or its checkpoint failed. Default: logged at `WARN`.
    async fn process_error(&self, partition: &PartitionContext, error: BoxError) {
        tracing::warn!(partition = %partition.partition_id, %error, "processing failed");
    }

    /// A partition is about to be read. Default: nothing.
    async fn partition_opened(&self, partition: &PartitionContext) {
        let _ = partition;
    }

    /// A partition's events ended, for `reason`. Default: nothing.
    async fn partition_closed(&self, partition: &PartitionContext, reason: StopReason) {
        let _ = (partition, reason);
    }
}

impl Processor {
    /// Calls `handler` with every partition's batches until `shutdown` completes, then
    /// [stops](Self::stop) (waiting for the batches in progress and their checkpoints).
    ///
    /// ```no_run
    /// // Needs an Event Hubs namespace (the connection) and runs until Ctrl-C.
    /// # use eventhub_checkpointstore::{processor::{Connection, EventHandler, Processor}, InMemoryCheckpointStore};
    /// # use std::sync::Arc;
    /// # async fn run(connection: Connection, handler: impl EventHandler) -> eventhub_checkpointstore::Result<()> {
    /// let processor = Processor::builder()
    ///     .max_batch_size(100)
    ///     .start(Arc::new(InMemoryCheckpointStore::new()), connection)
    ///     .await?;
    /// processor.run(handler, async { let _ = tokio::signal::ctrl_c().await; }).await?;
    /// # Ok(()) }
    /// ```
    pub async fn run(
        &self,
        handler: impl EventHandler,
        shutdown: impl Future<Output = ()>,
    ) -> Result<()> {
        let handler = Arc::new(handler);
        let mut tasks = tokio::task::JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                partition = self.next_partition() => match partition {
                    Some(partition) => {
                        tasks.spawn(serve(handler.clone(), partition, self.batch));
                    }
                    None => break,
                },
                () = &mut shutdown => break,
            }
            // Finished partitions' tasks are reaped as they go.
            while tasks.try_join_next().is_some() {}
        }
        let stopped = self.stop().await;
        while tasks.join_next().await.is_some() {}
        stopped
    }
}

/// One partition's batches, one at a time, each checkpointed once processed.
async fn serve(
    handler: Arc<impl EventHandler>,
    mut partition: PartitionClient,
    (max, wait): (usize, std::time::Duration),
) {
    let context = PartitionContext {
        partition_id: partition.partition_id().to_owned(),
        resumed_after: partition.resumed_after(),
    };
    handler.partition_opened(&context).await;
    while let Some(batch) = partition.next_batch(max, wait).await {
        let last = batch
            .last()
            .map(|e| (e.offset().clone(), e.sequence_number()));
        match handler.process_events(&context, batch).await {
            Ok(()) => {
                if let Some((offset, sequence_number)) = last {
                    if let Err(err) = partition.checkpoint_position(offset, sequence_number).await {
                        handler.process_error(&context, Box::new(err)).await;
                    }
                }
            }
            Err(err) => handler.process_error(&context, err).await,
        }
    }
    let reason = partition.stop_reason().unwrap_or(StopReason::Shutdown);
    handler.partition_closed(&context, reason).await;
}
