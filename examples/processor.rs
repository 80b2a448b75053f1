//! This crate's processor (`processor::Processor`) reading an event hub, with its ownership and
//! checkpoints in Blob Storage: it takes its share of the partitions, processes their events,
//! checkpoints every 25th, and prints what it processed, why each partition stopped and what the
//! store holds. Needs the `eventhubs` feature.
//!
//! On this machine, against the local Event Hubs endpoint and Azurite (the scripts start both,
//! with a hub of 4 partitions that gets 20 events a second each for 10 seconds, and set
//! `EVENTHUBS_CONNECTION_STRING` and `AZURE_STORAGE_CONNECTION_STRING`):
//!
//! ```sh
//! scripts/azurite.sh run -- scripts/eventhubs.sh run --hub telemetry=4:0:20:200 -- \
//!   cargo run --example processor --features eventhubs
//! ```
//!
//! Against a real namespace (signed in with `az login` or another developer tool), with real or
//! emulated storage:
//!
//! ```sh
//! EVENTHUBS_HOST=myns.servicebus.windows.net EVENTHUB_NAME=telemetry \
//! AZURE_STORAGE_CONNECTION_STRING='DefaultEndpointsProtocol=https;AccountName=…' \
//!   cargo run --example processor --features eventhubs
//! ```
//!
//! It stops after 5 seconds without a new event (or on Ctrl-C), writing the last positions. Run
//! it twice: the second run resumes after them. Run two at once: they split the partitions, and
//! the one that joins takes its share over without an event processed twice.

use eventhub_checkpointstore::{
    balancer::Strategy,
    processor::{Connection, Processor},
    BlobCheckpointStore, CheckpointStore,
};
use std::{
    collections::BTreeMap,
    error::Error,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::time::Instant;

const IDLE: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let hub = std::env::var("EVENTHUB_NAME").unwrap_or_else(|_| "telemetry".into());
    let storage = std::env::var("AZURE_STORAGE_CONNECTION_STRING")
        .map_err(|_| "set AZURE_STORAGE_CONNECTION_STRING (scripts/azurite.sh run sets it)")?;
    let container =
        std::env::var("CHECKPOINT_CONTAINER").unwrap_or_else(|_| "eventhub-checkpoints".into());
    let store = Arc::new(BlobCheckpointStore::from_connection_string(
        &storage, &container, None,
    )?);
    store.create_container_if_missing().await?;

    let connection = match std::env::var("EVENTHUBS_HOST") {
        Ok(host) => {
            let credential = azure_identity::DeveloperToolsCredential::new(None)?;
            Connection::new(host, hub, credential)
        }
        Err(_) => {
            let text = std::env::var("EVENTHUBS_CONNECTION_STRING").map_err(|_| {
                "set EVENTHUBS_HOST or EVENTHUBS_CONNECTION_STRING (scripts/eventhubs.sh run sets it)"
            })?;
            Connection::from_connection_string(&text, Some(&hub))?
        }
    };
    let scope = connection.scope();
    println!(
        "event hub {}/{}, checkpoints in {}",
        scope.fully_qualified_namespace,
        scope.eventhub_name,
        store.container_url()
    );

    let processor = Arc::new(
        Processor::builder()
            .interval(Duration::from_secs(2))
            .expiration(Duration::from_secs(10))
            // Its whole share at once (the default, balanced, claims one partition a cycle).
            .strategy(Strategy::Greedy)
            .checkpoint_every_events(25)
            .start(store.clone(), connection)
            .await?,
    );

    // Per partition: (events, first, last sequence number); and when the last event came.
    let tally = Arc::new(Mutex::new((BTreeMap::new(), Instant::now())));
    let stopping = tokio::spawn({
        let (processor, tally) = (processor.clone(), tally.clone());
        async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if tally.lock().unwrap().1.elapsed() >= IDLE {
                            break;
                        }
                    }
                    _ = tokio::signal::ctrl_c() => break,
                }
            }
            processor.stop().await
        }
    });
    let mut readers = tokio::task::JoinSet::new();
    while let Some(mut partition) = processor.next_partition().await {
        let tally = tally.clone();
        readers.spawn(async move {
            let id = partition.partition_id().to_owned();
            println!(
                "partition {id}: owned, after {:?}",
                partition.resumed_after()
            );
            while let Some(event) = partition.next_event().await {
                let Some(seq) = event.sequence_number() else {
                    continue;
                };
                {
                    let mut tally = tally.lock().unwrap();
                    tally
                        .0
                        .entry(id.clone())
                        .and_modify(|(count, _, last)| (*count, *last) = (*count + 1, seq))
                        .or_insert((1u64, seq, seq));
                    tally.1 = Instant::now();
                }
                // Recorded now, written every 25th event and when the partition stops.
                if let Err(err) = partition.checkpoint(&event).await {
                    println!("partition {id}: checkpoint at {seq} failed: {err}");
                }
            }
            println!("partition {id}: stopped: {:?}", partition.stop_reason());
        });
    }
    while readers.join_next().await.is_some() {}
    stopping.await??;

    for (partition, (count, first, last)) in &tally.lock().unwrap().0 {
        println!("partition {partition}: processed {count} events, {first}..={last}");
    }
    println!("{:?}", processor.stats());
    // What the store holds now, as any consumer of the group (in any language) would read it.
    for checkpoint in store.list_checkpoints(&scope).await? {
        println!(
            "stored checkpoint: partition {} at sequence number {:?} (offset {:?})",
            checkpoint.partition_id, checkpoint.sequence_number, checkpoint.offset
        );
    }
    Ok(())
}
