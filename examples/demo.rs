//! Two consumers share the 8 partitions of an event hub through a `BlobCheckpointStore`.
//!
//! Run it with `scripts/demo.sh`, which starts Azurite when `AZURE_STORAGE_CONNECTION_STRING` is
//! not set. Against a real account, set that variable (and optionally `CHECKPOINT_CONTAINER`).
//!
//! What it shows: racing claims for new partitions (exactly one winner each), checkpoints,
//! renewal with the claim's etag, a takeover attempt with a stale etag (a normal lost race, not
//! an error), relinquishing, and a takeover of released partitions.

use eventhub_checkpointstore::{
    BlobCheckpointStore, BlobCheckpointStoreOptions, Checkpoint, CheckpointStore, Ownership,
};
use std::{collections::BTreeMap, error::Error, num::NonZeroUsize};

const NAMESPACE: &str = "demo.servicebus.windows.net";
const EVENT_HUB: &str = "telemetry";
const PARTITIONS: u32 = 8;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let connection = std::env::var("AZURE_STORAGE_CONNECTION_STRING").map_err(|_| {
        "AZURE_STORAGE_CONNECTION_STRING is not set (scripts/demo.sh sets it for Azurite)"
    })?;
    let container =
        std::env::var("CHECKPOINT_CONTAINER").unwrap_or_else(|_| "checkpointstore-demo".into());
    // A consumer group of its own per run, so runs against a persistent account do not mix.
    let group = format!(
        "demo-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs()
    );

    // Two independent clients, as two processes of a fleet would have. One claim request at a
    // time each (the default is 32 in flight), so the race below visibly meets in the middle.
    let options = BlobCheckpointStoreOptions {
        claim_concurrency: NonZeroUsize::MIN,
        ..Default::default()
    };
    let a = BlobCheckpointStore::from_connection_string(
        &connection,
        &container,
        Some(options.clone()),
    )?;
    let b = BlobCheckpointStore::from_connection_string(&connection, &container, Some(options))?;
    let created = a.create_container_if_missing().await?;
    println!(
        "container {} ({})",
        a.container_url(),
        if created { "created" } else { "exists" }
    );
    println!(
        "event hub {NAMESPACE}/{EVENT_HUB}, consumer group {group}, {PARTITIONS} partitions\n"
    );

    println!("1. consumer-a (from partition 0 up) and consumer-b (from the top down) race for all new partitions");
    let claims = |owner: &str, order: Vec<u32>| -> Vec<Ownership> {
        order
            .into_iter()
            .map(|p| Ownership::new(NAMESPACE, EVENT_HUB, &group, p.to_string(), owner))
            .collect()
    };
    let claims_a = claims("consumer-a", (0..PARTITIONS).collect());
    let claims_b = claims("consumer-b", (0..PARTITIONS).rev().collect());
    let (won_a, won_b) = tokio::join!(a.claim_ownership(&claims_a), b.claim_ownership(&claims_b));
    let (won_a, won_b) = (won_a?, won_b?);
    println!("   consumer-a won {:?}", partitions(&won_a));
    println!("   consumer-b won {:?}", partitions(&won_b));
    assert_eq!(
        won_a.len() + won_b.len(),
        PARTITIONS as usize,
        "each partition has exactly one winner"
    );
    show_ownership(&a, &group).await?;

    println!("\n2. each consumer checkpoints the partitions it owns");
    for (store, won, base) in [(&a, &won_a, 1000), (&b, &won_b, 2000)] {
        for o in won {
            let p: i64 = o.partition_id.parse()?;
            let checkpoint = Checkpoint::new(
                NAMESPACE,
                EVENT_HUB,
                &group,
                &o.partition_id,
                Some((base + p * 10).to_string()),
                Some(p * 10),
            );
            store.update_checkpoint(&checkpoint).await?;
        }
    }
    show_checkpoints(&a, &group).await?;

    println!("\n3. consumer-b renews its claims, then tries to take one of consumer-a's with a stale etag");
    let renewed = b.claim_ownership(&won_b).await?;
    println!(
        "   renewed {} of {} (new etags)",
        renewed.len(),
        won_b.len()
    );
    if let Some(target) = won_a.first() {
        // consumer-a renews first, so the etag consumer-b saw earlier is now stale.
        a.claim_ownership(&won_a).await?;
        let steal = Ownership {
            owner_id: Some("consumer-b".into()),
            ..target.clone()
        };
        let stolen = b.claim_ownership(&[steal]).await?;
        println!(
            "   takeover of partition {} with a stale etag: {}",
            target.partition_id,
            if stolen.is_empty() {
                "lost (normal outcome, no error)"
            } else {
                "won"
            }
        );
    }

    println!(
        "\n4. consumer-a shuts down and relinquishes its partitions; consumer-b takes them over"
    );
    let current = a.list_ownership(NAMESPACE, EVENT_HUB, &group).await?;
    let release: Vec<Ownership> = current
        .iter()
        .filter(|o| o.owner_id.as_deref() == Some("consumer-a"))
        .map(|o| Ownership {
            owner_id: None,
            ..o.clone()
        })
        .collect();
    let released = a.claim_ownership(&release).await?;
    println!("   consumer-a released {:?}", partitions(&released));
    let takeover: Vec<Ownership> = b
        .list_ownership(NAMESPACE, EVENT_HUB, &group)
        .await?
        .into_iter()
        .filter(|o| o.owner_id.is_none())
        .map(|o| Ownership {
            owner_id: Some("consumer-b".into()),
            ..o
        })
        .collect();
    let taken = b.claim_ownership(&takeover).await?;
    println!(
        "   consumer-b took {:?}; it resumes each from its last checkpoint:",
        partitions(&taken)
    );
    let checkpoints: BTreeMap<String, Checkpoint> = b
        .list_checkpoints(NAMESPACE, EVENT_HUB, &group)
        .await?
        .into_iter()
        .map(|c| (c.partition_id.clone(), c))
        .collect();
    for o in &taken {
        if let Some(c) = checkpoints.get(&o.partition_id) {
            println!(
                "     partition {:>2}: from offset {} (sequence number {})",
                o.partition_id,
                c.offset.as_deref().unwrap_or("-"),
                c.sequence_number.map_or("-".into(), |s| s.to_string())
            );
        }
    }
    show_ownership(&b, &group).await?;
    let owners = b.list_ownership(NAMESPACE, EVENT_HUB, &group).await?;
    assert!(owners
        .iter()
        .all(|o| o.owner_id.as_deref() == Some("consumer-b")));
    println!("\ndone: every partition owned by exactly one consumer throughout");
    Ok(())
}

fn partitions(list: &[Ownership]) -> Vec<u32> {
    let mut ids: Vec<u32> = list
        .iter()
        .filter_map(|o| o.partition_id.parse().ok())
        .collect();
    ids.sort_unstable();
    ids
}

async fn show_ownership(store: &BlobCheckpointStore, group: &str) -> Result<(), Box<dyn Error>> {
    let mut list = store.list_ownership(NAMESPACE, EVENT_HUB, group).await?;
    list.sort_by_key(|o| o.partition_id.parse::<u32>().unwrap_or(u32::MAX));
    println!(
        "   {:>9}  {:<11}  {:<20}  last modified",
        "partition", "owner", "etag"
    );
    for o in list {
        println!(
            "   {:>9}  {:<11}  {:<20}  {}",
            o.partition_id,
            o.owner_id.as_deref().unwrap_or("(none)"),
            o.etag.as_ref().map_or("-", |e| e.as_ref()),
            o.last_modified
                .and_then(|t| t
                    .format(&time::format_description::well_known::Rfc3339)
                    .ok())
                .unwrap_or_else(|| "-".into()),
        );
    }
    Ok(())
}

async fn show_checkpoints(store: &BlobCheckpointStore, group: &str) -> Result<(), Box<dyn Error>> {
    let mut list = store.list_checkpoints(NAMESPACE, EVENT_HUB, group).await?;
    list.sort_by_key(|c| c.partition_id.parse::<u32>().unwrap_or(u32::MAX));
    println!("   {:>9}  {:>8}  sequence number", "partition", "offset");
    for c in list {
        println!(
            "   {:>9}  {:>8}  {}",
            c.partition_id,
            c.offset.as_deref().unwrap_or("-"),
            c.sequence_number.map_or("-".into(), |s| s.to_string())
        );
    }
    Ok(())
}
