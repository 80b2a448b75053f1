// Runs until Ctrl-C (here: scripts/azurite.sh run -- scripts/eventhubs.sh run -- cargo run).
use eventhub_checkpointstore::{
    processor::{Connection, Processor},
    BlobCheckpointStore,
};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = BlobCheckpointStore::from_connection_string(
        &std::env::var("AZURE_STORAGE_CONNECTION_STRING")?,
        "checkpoints",
        None,
    )?;
    store.create_container_if_missing().await?;
    // Endpoint=sb://NAMESPACE/;SharedAccessKeyName=...;SharedAccessKey=... (scripts/eventhubs.sh
    // sets the local endpoint's); the event hub "telemetry".
    let connection = Connection::from_connection_string(
        &std::env::var("EVENTHUBS_CONNECTION_STRING")?,
        Some("telemetry"),
    )?;
    let processor = Arc::new(
        Processor::builder()
            .checkpoint_every_events(100)
            .start(Arc::new(store), connection)
            .await?,
    );
    // Ctrl-C: stop reading, write the last positions, hand the partitions to the others.
    let stopping = tokio::spawn({
        let processor = processor.clone();
        async move {
            let _ = tokio::signal::ctrl_c().await;
            processor.stop().await
        }
    });
    while let Some(mut partition) = processor.next_partition().await {
        tokio::spawn(async move {
            while let Some(event) = partition.next_event().await {
                println!(
                    "{}: {:?}",
                    partition.partition_id(),
                    event.sequence_number()
                );
                partition.checkpoint(&event).await?;
            }
            Ok::<_, eventhub_checkpointstore::Error>(())
        });
    }
    stopping.await??;
    Ok(())
}
