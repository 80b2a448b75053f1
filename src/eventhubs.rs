//! The plug-in for the official Rust processor (feature `eventhubs`): every store of this crate
//! ([`BlobCheckpointStore`], [`TableCheckpointStore`](crate::TableCheckpointStore),
//! [`InMemoryCheckpointStore`]) implements
//! [`azure_messaging_eventhubs::CheckpointStore`][processor-trait], so an
//! [`EventProcessor`][processor] keeps its ownership and
//! checkpoints in the same blobs, under the same names, as every other language's processor.
//!
//! [processor-trait]: https://docs.rs/azure_messaging_eventhubs/0.15/azure_messaging_eventhubs/trait.CheckpointStore.html
//! [processor]: https://docs.rs/azure_messaging_eventhubs/0.15/azure_messaging_eventhubs/struct.EventProcessor.html
//!
//! ```no_run
//! // Needs an Event Hubs namespace (a consumer client on it); examples/official_processor.rs
//! // runs here.
//! use azure_messaging_eventhubs::{ConsumerClient, EventProcessor};
//! use eventhub_checkpointstore::BlobCheckpointStore;
//! use std::sync::Arc;
//!
//! # async fn run(consumer: ConsumerClient) -> Result<(), Box<dyn std::error::Error>> {
//! let store = BlobCheckpointStore::from_connection_string(
//!     &std::env::var("AZURE_STORAGE_CONNECTION_STRING")?,
//!     "checkpoints",
//!     None,
//! )?;
//! let processor = EventProcessor::builder().build(consumer, Arc::new(store)).await?;
//! # Ok(()) }
//! ```
//!
//! # Both traits in one file
//!
//! The processor's trait and this crate's [`CheckpointStore`] share a name and three method names.
//! Importing both makes calls such as `store.claim_ownership(..)` ambiguous; import the one you
//! call under another name (or as `_` when you only need its impls):
//!
//! ```
//! use azure_messaging_eventhubs::CheckpointStore as ProcessorCheckpointStore;
//! use eventhub_checkpointstore::{CheckpointStore, InMemoryCheckpointStore, Scope};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = InMemoryCheckpointStore::new();
//! let scope = Scope::new("myns.servicebus.windows.net", "telemetry", "$Default");
//! // This crate's trait: listings take a Scope.
//! let ours = CheckpointStore::list_checkpoints(&store, &scope).await?;
//! // The processor's: three strings, its own record types.
//! let theirs = ProcessorCheckpointStore::list_checkpoints(
//!     &store, "myns.servicebus.windows.net", "telemetry", "$Default",
//! ).await?;
//! assert_eq!(ours.len(), theirs.len());
//! # Ok(()) }
//! ```
//!
//! Supported: `azure_messaging_eventhubs` 0.15. It is the newest release whose `azure_core`
//! requirement (1.x) resolves together with `azure_storage_blob` 1.1; 0.16 requires
//! `azure_core` 1.2.0-beta.1.
//!
//! The processor's `update_checkpoint` never moves a stored checkpoint back: it writes through
//! [`CheckpointStore::advance_checkpoint`], so a processor that lost a partition and still
//! checkpoints it (the Rust processor 0.15 keeps reading a partition until its next balancing
//! cycle, since its receivers carry no epoch) cannot overwrite its successor's newer checkpoint.
//! Such a write is dropped and logged at `INFO`.
//!
//! Errors reach the processor as `azure_core::Error`s that keep the HTTP status and
//! `x-ms-error-code` (see [`Error`](crate::Error)); a lost ownership race is, as everywhere in
//! this crate, a partition left out of the result, which is what the processor expects.

use crate::blob::BlobCheckpointStore;
use crate::memory::InMemoryCheckpointStore;
use crate::model::{Advance, Checkpoint, Ownership};
use crate::scope::Scope;
use crate::store::CheckpointStore;
use async_trait::async_trait;
use azure_messaging_eventhubs::{models, CheckpointStore as ProcessorStore};

#[async_trait]
impl ProcessorStore for BlobCheckpointStore {
    async fn claim_ownership(
        &self,
        ownerships: &[models::Ownership],
    ) -> azure_core::Result<Vec<models::Ownership>> {
        claim_ownership(self, ownerships).await
    }

    async fn list_checkpoints(
        &self,
        namespace: &str,
        event_hub_name: &str,
        consumer_group: &str,
    ) -> azure_core::Result<Vec<models::Checkpoint>> {
        list_checkpoints(self, Scope::new(namespace, event_hub_name, consumer_group)).await
    }

    async fn list_ownerships(
        &self,
        namespace: &str,
        event_hub_name: &str,
        consumer_group: &str,
    ) -> azure_core::Result<Vec<models::Ownership>> {
        list_ownerships(self, Scope::new(namespace, event_hub_name, consumer_group)).await
    }

    async fn update_checkpoint(&self, checkpoint: models::Checkpoint) -> azure_core::Result<()> {
        update_checkpoint(self, checkpoint).await
    }
}

#[cfg(feature = "table")]
#[async_trait]
impl ProcessorStore for crate::TableCheckpointStore {
    async fn claim_ownership(
        &self,
        ownerships: &[models::Ownership],
    ) -> azure_core::Result<Vec<models::Ownership>> {
        claim_ownership(self, ownerships).await
    }

    async fn list_checkpoints(
        &self,
        namespace: &str,
        event_hub_name: &str,
        consumer_group: &str,
    ) -> azure_core::Result<Vec<models::Checkpoint>> {
        list_checkpoints(self, Scope::new(namespace, event_hub_name, consumer_group)).await
    }

    async fn list_ownerships(
        &self,
        namespace: &str,
        event_hub_name: &str,
        consumer_group: &str,
    ) -> azure_core::Result<Vec<models::Ownership>> {
        list_ownerships(self, Scope::new(namespace, event_hub_name, consumer_group)).await
    }

    async fn update_checkpoint(&self, checkpoint: models::Checkpoint) -> azure_core::Result<()> {
        update_checkpoint(self, checkpoint).await
    }
}

#[async_trait]
impl ProcessorStore for InMemoryCheckpointStore {
    async fn claim_ownership(
        &self,
        ownerships: &[models::Ownership],
    ) -> azure_core::Result<Vec<models::Ownership>> {
        claim_ownership(self, ownerships).await
    }

    async fn list_checkpoints(
        &self,
        namespace: &str,
        event_hub_name: &str,
        consumer_group: &str,
    ) -> azure_core::Result<Vec<models::Checkpoint>> {
        list_checkpoints(self, Scope::new(namespace, event_hub_name, consumer_group)).await
    }

    async fn list_ownerships(
        &self,
        namespace: &str,
        event_hub_name: &str,
        consumer_group: &str,
    ) -> azure_core::Result<Vec<models::Ownership>> {
        list_ownerships(self, Scope::new(namespace, event_hub_name, consumer_group)).await
    }

    async fn update_checkpoint(&self, checkpoint: models::Checkpoint) -> azure_core::Result<()> {
        update_checkpoint(self, checkpoint).await
    }
}

// The processor's four calls over any of this crate's stores.

async fn claim_ownership(
    store: &dyn CheckpointStore,
    ownerships: &[models::Ownership],
) -> azure_core::Result<Vec<models::Ownership>> {
    let requested: Vec<Ownership> = ownerships.iter().cloned().map(Ownership::from).collect();
    let won = store.claim_ownership(&requested).await?;
    Ok(won.into_iter().map(models::Ownership::from).collect())
}

async fn list_checkpoints(
    store: &dyn CheckpointStore,
    scope: Scope,
) -> azure_core::Result<Vec<models::Checkpoint>> {
    let checkpoints = store.list_checkpoints(&scope).await?;
    Ok(checkpoints
        .into_iter()
        .map(models::Checkpoint::from)
        .collect())
}

async fn list_ownerships(
    store: &dyn CheckpointStore,
    scope: Scope,
) -> azure_core::Result<Vec<models::Ownership>> {
    let ownership = store.list_ownership(&scope).await?;
    Ok(ownership.into_iter().map(models::Ownership::from).collect())
}

async fn update_checkpoint(
    store: &dyn CheckpointStore,
    checkpoint: models::Checkpoint,
) -> azure_core::Result<()> {
    let checkpoint = Checkpoint::from(checkpoint);
    if let Advance::Stale { stored } = store.advance_checkpoint(&checkpoint).await? {
        tracing::info!(
            scope = %checkpoint.scope,
            partition_id = %checkpoint.partition_id,
            position = ?checkpoint.sequence_number,
            stored = ?stored.sequence_number,
            "the processor's checkpoint is behind the stored one (the partition moved on): not written"
        );
    }
    Ok(())
}

impl From<models::Ownership> for Ownership {
    fn from(o: models::Ownership) -> Self {
        Self {
            scope: Scope::new(
                o.fully_qualified_namespace,
                o.event_hub_name,
                o.consumer_group,
            ),
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
            fully_qualified_namespace: o.scope.fully_qualified_namespace,
            event_hub_name: o.scope.eventhub_name,
            consumer_group: o.scope.consumer_group,
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
            scope: Scope::new(
                c.fully_qualified_namespace,
                c.event_hub_name,
                c.consumer_group,
            ),
            partition_id: c.partition_id,
            offset: c.offset,
            sequence_number: c.sequence_number,
        }
    }
}

impl From<Checkpoint> for models::Checkpoint {
    fn from(c: Checkpoint) -> Self {
        Self {
            fully_qualified_namespace: c.scope.fully_qualified_namespace,
            event_hub_name: c.scope.eventhub_name,
            consumer_group: c.scope.consumer_group,
            partition_id: c.partition_id,
            offset: c.offset,
            sequence_number: c.sequence_number,
        }
    }
}
