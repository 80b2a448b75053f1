//! "A checkpoint never moves back": no write of this crate's balancer and checkpointer lowers a
//! stored checkpoint's sequence number, in the ways a consumer can find its partition gone. Each
//! scenario runs against the three stores (blob and table on Azurite, in memory), and each ends
//! with the newer checkpoint of the consumer that took the partition still stored.
//!
//! Each consumer has a store instance of its own (as separate processes do), and the one that
//! loses the partition has written a checkpoint before the loss, so its instance holds that
//! checkpoint's version and its next write takes the conditional path. Every scenario fails when
//! the checkpointer writes with `update_checkpoint` instead of `advance_checkpoint`, and when a
//! conditional write ignores the version it holds (the old position lands over the newer one).

use eventhub_checkpointstore_testkit as common;

use common::hooked::{Down, Hooked};
use eventhub_checkpointstore::{
    balancer::{BalancerOptions, PartitionBalancer, Strategy},
    checkpointer::{Checkpointer, CheckpointerOptions},
    CheckpointStore, InMemoryCheckpointStore, Scope,
};
use std::{collections::BTreeMap, num::NonZeroU64, sync::Arc, time::Duration};

fn scope() -> Scope {
    Scope::new("never-back.servicebus.windows.net", "hub", "$Default")
}

/// Opens a store instance of one kind over one storage: each consumer gets an instance of its
/// own, as consumers in separate processes have, so none sees another's cached checkpoint
/// versions (the in-memory store is one instance: it is its storage).
type Open = Box<dyn Fn() -> Arc<dyn CheckpointStore>>;

/// The three stores, each on storage of its own.
async fn stores() -> Vec<(&'static str, Open)> {
    let connection = common::connection_string();
    let table = common::unique_container();
    eventhub_checkpointstore::TableCheckpointStore::from_connection_string(
        &connection,
        &table,
        None,
    )
    .unwrap()
    .create_table_if_missing()
    .await
    .unwrap();
    let container = common::fresh_container().await;
    let memory: Arc<dyn CheckpointStore> = Arc::new(InMemoryCheckpointStore::new());
    vec![
        (
            "blob",
            Box::new(move || Arc::new(common::store_on(&container, None))),
        ),
        (
            "table",
            Box::new(move || {
                Arc::new(
                    eventhub_checkpointstore::TableCheckpointStore::from_connection_string(
                        &connection,
                        &table,
                        None,
                    )
                    .unwrap(),
                )
            }),
        ),
        ("memory", Box::new(move || memory.clone())),
    ]
}

/// A consumer: its balancer over `partitions` and a checkpointer that writes only when asked.
fn consumer(
    store: &Arc<dyn CheckpointStore>,
    name: &str,
    partitions: &[&str],
    options: BalancerOptions,
) -> (PartitionBalancer, Arc<Checkpointer>) {
    let checkpointer = Arc::new(
        Checkpointer::new(
            store.clone(),
            scope(),
            CheckpointerOptions {
                every_events: NonZeroU64::new(1_000_000),
                every: None,
            },
        )
        .unwrap(),
    );
    let balancer = PartitionBalancer::new(
        store.clone(),
        scope(),
        name,
        partitions.iter().copied(),
        options,
    )
    .unwrap()
    .with_checkpointer(checkpointer.clone());
    (balancer, checkpointer)
}

fn options(expiration: Duration, handover_intervals: u32) -> BalancerOptions {
    BalancerOptions {
        interval: Duration::from_millis(200),
        expiration,
        strategy: Strategy::Greedy,
        handover_intervals,
    }
}

/// Sequence number of each partition's stored checkpoint.
async fn stored(store: &Arc<dyn CheckpointStore>) -> BTreeMap<String, Option<i64>> {
    store
        .list_checkpoints(&scope())
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.partition_id, c.sequence_number))
        .collect()
}

/// Records positions `0..=last` of `partition`.
async fn process(checkpointer: &Checkpointer, partition: &str, last: i64) {
    for seq in 0..=last {
        checkpointer
            .record(partition, Some(seq.to_string()), Some(seq))
            .await
            .unwrap();
    }
}

/// Cycles `balancer` until it owns `partition` (20 s at most).
async fn until_owned(balancer: &PartitionBalancer, partition: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !balancer.cycle().await.unwrap().contains(partition) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} did not get partition {partition} within 20 s",
            balancer.owner_id()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A consumer stalls past its claim's expiry (a GC pause, a network partition); another takes the
/// partition, processes on and checkpoints; the first comes back with positions it had not
/// written, records more, flushes, and cycles: none of it is written.
#[tokio::test]
async fn a_consumer_back_from_a_stall_past_expiry_writes_nothing_old() {
    for (name, open) in stores().await {
        let store = open();
        let (stalled, stalled_cp) = consumer(
            &open(),
            "stalled",
            &["0"],
            options(Duration::from_secs(2), 2),
        );
        assert_eq!(stalled.cycle().await.unwrap().len(), 1, "{name}");
        process(&stalled_cp, "0", 40).await;
        assert!(
            stalled_cp.flush("0").await.unwrap(),
            "{name}: written before the loss"
        );
        process(&stalled_cp, "0", 50).await;

        // The stall: `stalled` neither cycles nor writes until its claim has expired and the
        // partition has a new owner (expiry judged by the service's clock).
        let (taker, taker_cp) =
            consumer(&open(), "taker", &["0"], options(Duration::from_secs(2), 2));
        until_owned(&taker, "0").await;
        assert!(
            taker.ready().contains("0"),
            "{name}: an expired partition is ready at once"
        );
        process(&taker_cp, "0", 80).await;
        assert!(taker_cp.flush("0").await.unwrap());
        assert_eq!(stored(&store).await["0"], Some(80), "{name}");

        // Back from the stall: one more event, then a flush, as its application would.
        process(&stalled_cp, "0", 51).await;
        assert!(!stalled_cp.flush("0").await.unwrap(), "{name}");
        assert!(stalled.cycle().await.unwrap().is_empty(), "{name}");
        stalled.cycle().await.unwrap();
        stalled.relinquish().await.unwrap();
        stalled_cp.flush_all().await.unwrap();
        assert_eq!(
            stored(&store).await["0"],
            Some(80),
            "{name}: the taker's checkpoint moved back"
        );
        assert!(stalled_cp.stats().refused >= 1, "{name}");
        assert!(stalled_cp.pending().is_empty(), "{name}");
    }
}

/// A consumer that does not hold a partition it steals (handover 0, as every other language's
/// processor) processes and checkpoints at once; the giver, which hands over, learns of the steal
/// at its next cycle and then writes its last position: refused, being older.
#[tokio::test]
async fn a_steal_by_a_consumer_that_does_not_hold_keeps_its_newer_checkpoint() {
    for (name, open) in stores().await {
        let store = open();
        let (giver, giver_cp) = consumer(
            &open(),
            "giver",
            &["0", "1"],
            options(Duration::from_secs(30), 2),
        );
        assert_eq!(giver.cycle().await.unwrap().len(), 2, "{name}");
        process(&giver_cp, "0", 40).await;
        process(&giver_cp, "1", 40).await;
        giver_cp.flush_all().await.unwrap();
        process(&giver_cp, "0", 50).await;
        process(&giver_cp, "1", 50).await;

        let (taker, taker_cp) = consumer(
            &open(),
            "taker",
            &["0", "1"],
            options(Duration::from_secs(30), 0),
        );
        let taken = taker.cycle().await.unwrap();
        assert_eq!(taken.len(), 1, "{name}");
        let stolen = taken.into_iter().next().unwrap();
        let kept = if stolen == "0" { "1" } else { "0" };
        assert!(
            taker.ready().contains(&stolen),
            "{name}: handover 0 processes at once"
        );
        process(&taker_cp, &stolen, 80).await;
        assert!(taker_cp.flush(&stolen).await.unwrap());

        // The giver finds the steal, and writes its last position at the next cycle.
        assert_eq!(giver.cycle().await.unwrap().len(), 1, "{name}");
        giver.cycle().await.unwrap();
        let after = stored(&store).await;
        assert_eq!(
            after[&stolen],
            Some(80),
            "{name}: the taker's checkpoint moved back"
        );
        assert!(giver_cp.stats().refused >= 1, "{name}");
        giver.relinquish().await.unwrap();
        assert_eq!(stored(&store).await[kept], Some(50), "{name}");
    }
}

/// The giver shuts down (relinquishes, flushes everything) without cycling after a steal: the
/// stolen partition's old position is refused, the kept one written.
#[tokio::test]
async fn shutting_down_after_a_loss_writes_only_what_is_still_newer() {
    for (name, open) in stores().await {
        let store = open();
        let (giver, giver_cp) = consumer(
            &open(),
            "giver",
            &["0", "1"],
            options(Duration::from_secs(30), 2),
        );
        assert_eq!(giver.cycle().await.unwrap().len(), 2, "{name}");
        process(&giver_cp, "0", 40).await;
        process(&giver_cp, "1", 40).await;
        giver_cp.flush_all().await.unwrap();
        process(&giver_cp, "0", 50).await;
        process(&giver_cp, "1", 50).await;
        let (taker, taker_cp) = consumer(
            &open(),
            "taker",
            &["0", "1"],
            options(Duration::from_secs(30), 0),
        );
        let stolen = taker.cycle().await.unwrap().into_iter().next().unwrap();
        let kept = if stolen == "0" { "1" } else { "0" };
        process(&taker_cp, &stolen, 80).await;
        taker_cp.flush(&stolen).await.unwrap();

        // Shutdown, as `run` ends and as the application's own flush on exit.
        giver.relinquish().await.unwrap();
        giver_cp.flush_all().await.unwrap();
        let after = stored(&store).await;
        assert_eq!(
            after[&stolen],
            Some(80),
            "{name}: the taker's checkpoint moved back"
        );
        assert_eq!(after[kept], Some(50), "{name}");
    }
}

/// The store is unreachable long enough for a consumer's claims to expire; another takes the
/// partition and checkpoints; the store comes back and the first flushes what it kept pending.
#[tokio::test]
async fn positions_kept_while_the_store_was_down_are_not_written_over_a_newer_one() {
    for (name, open) in stores().await {
        let store = open();
        let switch = Arc::new(Hooked::new(open(), Down::new()));
        let down_side: Arc<dyn CheckpointStore> = switch.clone();
        let (cut_off, cut_off_cp) = consumer(
            &down_side,
            "cut-off",
            &["0"],
            options(Duration::from_secs(2), 2),
        );
        assert_eq!(cut_off.cycle().await.unwrap().len(), 1, "{name}");
        process(&cut_off_cp, "0", 40).await;
        assert!(
            cut_off_cp.flush("0").await.unwrap(),
            "{name}: written before the loss"
        );
        process(&cut_off_cp, "0", 50).await;

        switch.hooks.set(true);
        assert!(cut_off.cycle().await.is_err(), "{name}: the store is down");
        assert!(
            cut_off_cp.flush("0").await.is_err(),
            "{name}: a write fails while the store is down"
        );
        assert_eq!(cut_off_cp.pending(), ["0"], "{name}: and stays pending");

        let (taker, taker_cp) =
            consumer(&open(), "taker", &["0"], options(Duration::from_secs(2), 2));
        until_owned(&taker, "0").await;
        process(&taker_cp, "0", 80).await;
        taker_cp.flush("0").await.unwrap();

        switch.hooks.set(false);
        cut_off_cp.flush_all().await.unwrap();
        assert!(cut_off.cycle().await.unwrap().is_empty(), "{name}");
        cut_off.cycle().await.unwrap();
        assert_eq!(
            stored(&store).await["0"],
            Some(80),
            "{name}: the taker's checkpoint moved back"
        );
        assert!(cut_off_cp.pending().is_empty(), "{name}");
        assert_eq!(cut_off_cp.stats().refused, 1, "{name}");
    }
}
