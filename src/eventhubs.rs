//! The plug-in for the official Rust processor (feature `eventhubs`): every store of this crate
//! ([`BlobCheckpointStore`](crate::BlobCheckpointStore), `TableCheckpointStore`,
//! [`InMemoryCheckpointStore`](crate::InMemoryCheckpointStore)) implements
//! [`azure_messaging_eventhubs::CheckpointStore`], so an
//! [`EventProcessor`](azure_messaging_eventhubs::EventProcessor) keeps its ownership and
//! checkpoints in the same blobs, under the same names, as every other language's processor.
//!
//! ```no_run
//! use azure_messaging_eventhubs::{ConsumerClient, EventProcessor};
//! use eventhub_checkpointstore::BlobCheckpointStore;
//! use std::sync::Arc;
//!
//! # async fn run(consumer: ConsumerClient) -> Result<(), Box<dyn std::error::Error>> {
//! let store = BlobCheckpointStore::from_connection_string("UseDevelopmentStorage=true", "checkpoints", None)?;
//! let processor = EventProcessor::builder().build(consumer, Arc::new(store)).await?;
//! # Ok(()) }
//! ```
//!
//! Supported: `azure_messaging_eventhubs` 0.15. It is the newest release whose `azure_core`
//! requirement (1.x) resolves together with `azure_storage_blob` 1.1; 0.16 requires
//! `azure_core` 1.2.0-beta.1.
//!
//! Errors reach the processor as `azure_core::Error`s that keep the HTTP status and
//! `x-ms-error-code` (see [`Error`](crate::Error)); a lost ownership race is, as everywhere in
//! this crate, a partition left out of the result, which is what the processor expects.

use crate::{Checkpoint, CheckpointStore, Ownership};
use azure_messaging_eventhubs::models;

/// Implements the processor's trait for one of this crate's stores (used by `checkpoint_store!`):
/// four one-liners over the functions below.
macro_rules! processor_store {
    ($store:ty) => {
        #[cfg_attr(docsrs, doc(cfg(feature = "eventhubs")))]
        #[async_trait::async_trait]
        impl azure_messaging_eventhubs::CheckpointStore for $store {
            async fn claim_ownership(
                &self,
                ownerships: &[azure_messaging_eventhubs::models::Ownership],
            ) -> azure_core::Result<Vec<azure_messaging_eventhubs::models::Ownership>> {
                $crate::eventhubs::claim_ownership(self, ownerships).await
            }

            async fn list_checkpoints(
                &self,
                namespace: &str,
                event_hub_name: &str,
                consumer_group: &str,
            ) -> azure_core::Result<Vec<azure_messaging_eventhubs::models::Checkpoint>> {
                $crate::eventhubs::list_checkpoints(self, namespace, event_hub_name, consumer_group)
                    .await
            }

            async fn list_ownerships(
                &self,
                namespace: &str,
                event_hub_name: &str,
                consumer_group: &str,
            ) -> azure_core::Result<Vec<azure_messaging_eventhubs::models::Ownership>> {
                $crate::eventhubs::list_ownerships(self, namespace, event_hub_name, consumer_group)
                    .await
            }

            async fn update_checkpoint(
                &self,
                checkpoint: azure_messaging_eventhubs::models::Checkpoint,
            ) -> azure_core::Result<()> {
                $crate::eventhubs::update_checkpoint(self, checkpoint).await
            }
        }
    };
}

// The processor's trait, over any of this crate's stores: each backend's impl is four one-liners.

pub(crate) async fn claim_ownership(
    store: &dyn CheckpointStore,
    ownerships: &[models::Ownership],
) -> azure_core::Result<Vec<models::Ownership>> {
    let requested: Vec<Ownership> = ownerships.iter().cloned().map(Ownership::from).collect();
    let won = store.claim_ownership(&requested).await?;
    Ok(won.into_iter().map(models::Ownership::from).collect())
}

pub(crate) async fn list_checkpoints(
    store: &dyn CheckpointStore,
    namespace: &str,
    event_hub_name: &str,
    consumer_group: &str,
) -> azure_core::Result<Vec<models::Checkpoint>> {
    let checkpoints = store
        .list_checkpoints(namespace, event_hub_name, consumer_group)
        .await?;
    Ok(checkpoints
        .into_iter()
        .map(models::Checkpoint::from)
        .collect())
}

pub(crate) async fn list_ownerships(
    store: &dyn CheckpointStore,
    namespace: &str,
    event_hub_name: &str,
    consumer_group: &str,
) -> azure_core::Result<Vec<models::Ownership>> {
    let ownership = store
        .list_ownership(namespace, event_hub_name, consumer_group)
        .await?;
    Ok(ownership.into_iter().map(models::Ownership::from).collect())
}

pub(crate) async fn update_checkpoint(
    store: &dyn CheckpointStore,
    checkpoint: models::Checkpoint,
) -> azure_core::Result<()> {
    Ok(store.update_checkpoint(&checkpoint.into()).await?)
}

impl From<models::Ownership> for Ownership {
    fn from(o: models::Ownership) -> Self {
        Self {
            fully_qualified_namespace: o.fully_qualified_namespace,
            eventhub_name: o.event_hub_name,
            consumer_group: o.consumer_group,
            partition_id: o.partition_id,
            owner_id: o.owner_id,
            etag: o.etag,
            last_modified: o.last_modified_time,
        }
    }
}

impl From<Ownership> for models::Ownership {
    fn from(o: Ownership) -> Self {
        Self {
            fully_qualified_namespace: o.fully_qualified_namespace,
            event_hub_name: o.eventhub_name,
            consumer_group: o.consumer_group,
            partition_id: o.partition_id,
            owner_id: o.owner_id,
            etag: o.etag,
            last_modified_time: o.last_modified,
        }
    }
}

impl From<models::Checkpoint> for Checkpoint {
    fn from(c: models::Checkpoint) -> Self {
        Self {
            fully_qualified_namespace: c.fully_qualified_namespace,
            eventhub_name: c.event_hub_name,
            consumer_group: c.consumer_group,
            partition_id: c.partition_id,
            offset: c.offset,
            sequence_number: c.sequence_number,
        }
    }
}

impl From<Checkpoint> for models::Checkpoint {
    fn from(c: Checkpoint) -> Self {
        Self {
            fully_qualified_namespace: c.fully_qualified_namespace,
            event_hub_name: c.eventhub_name,
            consumer_group: c.consumer_group,
            partition_id: c.partition_id,
            offset: c.offset,
            sequence_number: c.sequence_number,
        }
    }
}
