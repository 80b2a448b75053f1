//! The official `EventProcessor` (azure_messaging_eventhubs 0.15) with its ownership and
//! checkpoints in Blob Storage through this crate. Needs the `eventhubs` feature:
//!
//! ```sh
//! EVENTHUBS_HOST=myns.servicebus.windows.net EVENTHUB_NAME=telemetry \
//! AZURE_STORAGE_CONNECTION_STRING='DefaultEndpointsProtocol=https;AccountName=…' \
//!   cargo run --example event_processor --features eventhubs
//! ```
//!
//! Event Hubs has no emulator here, so this runs against a real namespace (signed in with
//! `az login` or another developer tool; see `azure_identity::DeveloperToolsCredential`). Storage
//! may be real or Azurite (`scripts/azurite.sh run -- …` sets the connection string). Without
//! `EVENTHUBS_HOST` it says what it needs and exits.

use azure_identity::DeveloperToolsCredential;
use azure_messaging_eventhubs::{ConsumerClient, EventProcessor};
use eventhub_checkpointstore::BlobCheckpointStore;
use futures::StreamExt;
use std::{error::Error, sync::Arc};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let (Ok(host), Ok(hub)) = (
        std::env::var("EVENTHUBS_HOST"),
        std::env::var("EVENTHUB_NAME"),
    ) else {
        eprintln!(
            "Set EVENTHUBS_HOST (e.g. myns.servicebus.windows.net) and EVENTHUB_NAME to run this \
             against a real Event Hubs namespace; set AZURE_STORAGE_CONNECTION_STRING for the \
             checkpoint store (default: Azurite on this machine)."
        );
        return Ok(());
    };
    let storage = std::env::var("AZURE_STORAGE_CONNECTION_STRING")
        .unwrap_or_else(|_| "UseDevelopmentStorage=true".into());
    let container =
        std::env::var("CHECKPOINT_CONTAINER").unwrap_or_else(|_| "eventhub-checkpoints".into());

    let store = BlobCheckpointStore::from_connection_string(&storage, &container, None)?;
    store.create_container_if_missing().await?;

    let consumer = ConsumerClient::builder()
        .open(&host, hub, DeveloperToolsCredential::new(None)?)
        .await?;
    let processor = EventProcessor::builder()
        .build(consumer, Arc::new(store))
        .await?;
    let running = tokio::spawn({
        let processor = processor.clone();
        async move { processor.run().await }
    });

    // Process the first partition this processor is given, checkpointing every 10 events.
    let partition = processor.next_partition_client().await?;
    println!("processing partition {}", partition.get_partition_id());
    let mut events = partition.stream_events().take(50).enumerate();
    while let Some((n, event)) = events.next().await {
        let event = event?;
        println!(
            "event {:?} at offset {:?}",
            event.sequence_number(),
            event.offset()
        );
        if n % 10 == 9 {
            partition.update_checkpoint(&event).await?;
        }
    }

    processor.shutdown().await?;
    running.await??;
    Ok(())
}
