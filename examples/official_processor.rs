//! The official `EventProcessor` (`azure_messaging_eventhubs` 0.15) with its ownership and
//! checkpoints in Blob Storage through this crate: it claims partitions, processes their events,
//! checkpoints every 25th, and prints what it owns, what it processed and what the store holds.
//! Needs the `eventhubs` feature.
//!
//! On this machine, against the local Event Hubs endpoint and Azurite (the scripts start both,
//! with a hub of 4 partitions that gets 20 events a second each for 10 seconds):
//!
//! ```sh
//! scripts/azurite.sh run -- scripts/eventhubs.sh run --hub telemetry=4:0:20:200 -- \
//!   cargo run --example official_processor --features eventhubs
//! ```
//!
//! Against a real namespace (signed in with `az login` or another developer tool), with real or
//! emulated storage:
//!
//! ```sh
//! EVENTHUBS_HOST=myns.servicebus.windows.net EVENTHUB_NAME=telemetry \
//! AZURE_STORAGE_CONNECTION_STRING='DefaultEndpointsProtocol=https;AccountName=…' \
//!   cargo run --example official_processor --features eventhubs
//! ```
//!
//! It stops after 5 seconds without a new event (or on Ctrl-C). Run it twice: the second run
//! resumes after the checkpoints the first one wrote.

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_messaging_eventhubs::{
    models::StartPositions, processor::PartitionClient, ConsumerClient, EventProcessor,
    ProcessorStrategy, StartLocation, StartPosition,
};
use eventhub_checkpointstore::{azure_core, BlobCheckpointStore, CheckpointStore, Scope};
use futures::StreamExt;
use std::{
    cell::{Cell, RefCell},
    collections::BTreeMap,
    error::Error,
    rc::Rc,
    sync::Arc,
    time::Duration,
};

const CHECKPOINT_EVERY: i64 = 25;
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

    let (namespace, consumer) = match std::env::var("EVENTHUBS_HOST") {
        Ok(host) => {
            let credential = azure_identity::DeveloperToolsCredential::new(None)?;
            let consumer = ConsumerClient::builder()
                .open(&host, hub.clone(), credential)
                .await?;
            (host, consumer)
        }
        // The local endpoint (scripts/eventhubs.sh): plain AMQP on loopback, any token.
        Err(_) => {
            let endpoint = std::env::var("EVENTHUBS_LOCAL_AMQP").map_err(|_| {
                "set EVENTHUBS_HOST for a real namespace, or run this under scripts/eventhubs.sh"
            })?;
            let consumer = ConsumerClient::builder()
                .with_custom_endpoint(endpoint)
                .open("localhost", hub.clone(), Arc::new(AnyToken))
                .await?;
            ("localhost".to_owned(), consumer)
        }
    };
    println!(
        "event hub {namespace}/{hub}, checkpoints in {}",
        store.container_url()
    );

    let processor = EventProcessor::builder()
        .with_load_balancing_strategy(ProcessorStrategy::Greedy)
        .with_update_interval(Duration::from_secs(2).try_into()?)
        .with_partition_expiration_duration(Duration::from_secs(10).try_into()?)
        // A partition with no checkpoint starts at its first event (the default is its end).
        .with_start_positions(StartPositions {
            default: StartPosition {
                location: StartLocation::Earliest,
                ..Default::default()
            },
            ..Default::default()
        })
        .build(consumer, store.clone())
        .await?;

    // Partition streams are not `Send`: the processor's partitions are handled on this thread.
    let local = tokio::task::LocalSet::new();
    let tally = Rc::new(Tally::default());
    local
        .run_until(async {
            let running = tokio::task::spawn_local({
                let processor = processor.clone();
                async move { processor.run().await }
            });
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tokio::select! {
                    client = processor.next_partition_client() => {
                        tokio::task::spawn_local(process(client?, tally.clone()));
                    }
                    _ = tick.tick() => {
                        if tally.last_event.get().elapsed() >= IDLE {
                            break;
                        }
                    }
                    _ = tokio::signal::ctrl_c() => break,
                }
            }
            processor.shutdown().await?;
            running.await??;
            Ok::<_, Box<dyn Error>>(())
        })
        .await?;
    for (partition, (count, first, last)) in tally.processed.borrow().iter() {
        println!("partition {partition}: processed {count} events, {first}..={last}");
    }

    // What the store holds now, as any consumer of the group (in any language) would read it.
    let scope = Scope::new(namespace, hub, "$Default");
    for checkpoint in store.list_checkpoints(&scope).await? {
        println!(
            "stored checkpoint: partition {} at sequence number {:?} (offset {:?})",
            checkpoint.partition_id, checkpoint.sequence_number, checkpoint.offset
        );
    }
    Ok(())
}

/// What this consumer processed: per partition (events, first, last sequence number), and when
/// the last event came.
struct Tally {
    processed: RefCell<BTreeMap<String, (u64, i64, i64)>>,
    last_event: Cell<tokio::time::Instant>,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            processed: RefCell::default(),
            last_event: Cell::new(tokio::time::Instant::now()),
        }
    }
}

/// Processes one partition the processor gave this consumer, until its stream ends (the
/// partition was taken, or the processor stopped).
async fn process(client: Arc<PartitionClient>, tally: Rc<Tally>) {
    let partition = client.get_partition_id().to_owned();
    println!("partition {partition}: owned");
    {
        let mut events = client.stream_events();
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(event) => event,
                Err(err) => {
                    println!("partition {partition}: no longer read: {err}");
                    break;
                }
            };
            tally.last_event.set(tokio::time::Instant::now());
            let Some(seq) = event.sequence_number() else {
                continue;
            };
            tally
                .processed
                .borrow_mut()
                .entry(partition.clone())
                .and_modify(|(count, _, last)| (*count, *last) = (*count + 1, seq))
                .or_insert((1, seq, seq));
            if seq % CHECKPOINT_EVERY == CHECKPOINT_EVERY - 1 {
                match client.update_checkpoint(&event).await {
                    Ok(()) => println!("partition {partition}: checkpoint at {seq}"),
                    Err(err) => {
                        println!("partition {partition}: checkpoint at {seq} failed: {err}")
                    }
                }
            }
        }
    }
    // Closing takes the partition out of the processor's map, so that it can be handed out
    // again should this processor get it back.
    if let Ok(client) = Arc::try_unwrap(client) {
        let _ = client.close().await;
    }
}

/// The local endpoint takes any token (a real namespace needs a real credential). The client
/// refreshes tokens shortly before they expire, so this one lasts an hour.
#[derive(Debug)]
struct AnyToken;

#[async_trait::async_trait]
impl TokenCredential for AnyToken {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            "local",
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}
