//! The coalescing checkpointer against Azurite: requests counted on the wire, positions read back
//! from the store.

use eventhub_checkpointstore::Scope;
use eventhub_checkpointstore_testkit as common;

use common::hooked::{Call, Hooked, Hooks};
use common::Recorder;
use eventhub_checkpointstore::{
    balancer::{BalancerOptions, PartitionBalancer},
    checkpointer::{Checkpointer, CheckpointerOptions},
    Advance, BlobCheckpointStore, Checkpoint, CheckpointStore, Error, InMemoryCheckpointStore,
};
use futures::future::join_all;
use std::{collections::BTreeMap, num::NonZeroU64, sync::Arc, time::Duration};

const NS: &str = "checkpointer.servicebus.windows.net";
const HUB: &str = "hub";
const GROUP: &str = "$Default";

/// A store on a fresh container that records its requests.
async fn recorded_store() -> (Arc<BlobCheckpointStore>, Recorder) {
    let recorder = Recorder::default();
    let container = common::fresh_container().await;
    let store = common::store_on(&container, Some(recorder.install(Default::default())));
    (Arc::new(store), recorder)
}

/// Sequence number of each partition's checkpoint, as stored.
async fn stored(store: &BlobCheckpointStore) -> BTreeMap<String, Option<i64>> {
    store
        .list_checkpoints(&Scope::new(NS, HUB, GROUP))
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.partition_id, c.sequence_number))
        .collect()
}

fn by_count(n: u64) -> CheckpointerOptions {
    CheckpointerOptions {
        every_events: Some(NonZeroU64::new(n).unwrap()),
        every: None,
    }
}

/// Creates the 4 partitions' checkpoint blobs, so each write after is one Set Blob Metadata.
async fn precreate(store: &BlobCheckpointStore, recorder: &Recorder) {
    for p in 0..4 {
        let checkpoint =
            Checkpoint::new((NS, HUB, GROUP), p.to_string(), Some("0".into()), Some(0));
        store.update_checkpoint(&checkpoint).await.unwrap();
    }
    recorder.take();
}

#[tokio::test]
async fn a_thousand_events_on_four_partitions_every_hundred_is_forty_writes() {
    let (store, recorder) = recorded_store().await;
    precreate(&store, &recorder).await;
    let checkpointer = Checkpointer::new(store.clone(), (NS, HUB, GROUP), by_count(100)).unwrap();
    // The four partitions processed concurrently, 250 events each.
    join_all((0..4).map(|p| {
        let checkpointer = &checkpointer;
        async move {
            for seq in 0..250i64 {
                checkpointer
                    .record(&p.to_string(), Some(seq.to_string()), Some(seq))
                    .await
                    .unwrap();
            }
        }
    }))
    .await;
    // 2 writes per partition by count (at 100 and 200), then the shutdown flush of 249.
    assert_eq!(checkpointer.stats().writes, 8);
    checkpointer.flush_all().await.unwrap();
    let stats = checkpointer.stats();
    assert_eq!((stats.recorded, stats.writes), (1000, 12));
    assert_eq!(recorder.take().len(), 12, "one request per write");
    assert!(checkpointer.pending().is_empty());
    let expected: BTreeMap<String, Option<i64>> =
        (0..4).map(|p| (p.to_string(), Some(249))).collect();
    assert_eq!(stored(&store).await, expected);

    // 1,000 events on each of 4 partitions with N = 100: 40 writes, not 4,000.
    let (store, recorder) = recorded_store().await;
    precreate(&store, &recorder).await;
    let checkpointer = Checkpointer::new(store.clone(), (NS, HUB, GROUP), by_count(100)).unwrap();
    for p in 0..4 {
        for seq in 0..1000i64 {
            checkpointer
                .record(&p.to_string(), Some(seq.to_string()), Some(seq))
                .await
                .unwrap();
        }
    }
    checkpointer.flush_all().await.unwrap();
    assert_eq!(checkpointer.stats().writes, 40);
    assert_eq!(recorder.take().len(), 40);
    let expected: BTreeMap<String, Option<i64>> =
        (0..4).map(|p| (p.to_string(), Some(999))).collect();
    assert_eq!(stored(&store).await, expected);
}

#[tokio::test]
async fn a_quiet_partition_is_written_after_the_interval_by_run() {
    let (store, recorder) = recorded_store().await;
    let options = CheckpointerOptions {
        every_events: None,
        every: Some(Duration::from_millis(300)),
    };
    let checkpointer = Checkpointer::new(store.clone(), (NS, HUB, GROUP), options).unwrap();
    for seq in 0..3i64 {
        assert!(!checkpointer
            .record("7", Some(seq.to_string()), Some(seq))
            .await
            .unwrap());
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = checkpointer.run(async { stopped.await.unwrap() });
    let watcher = async {
        // No more events: the interval alone must get position 2 written.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while stored(&store).await.get("7") != Some(&Some(2)) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "position 2 not written 20 s after a 300 ms interval"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.send(()).unwrap();
    };
    let (result, ()) = tokio::join!(running, watcher);
    result.unwrap();
    assert_eq!(checkpointer.stats().writes, 1);
    assert!(checkpointer.pending().is_empty());
    let sent: Vec<(String, Option<u16>)> = recorder
        .take()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| (format!("{} {}", r.method, r.operation()), r.status))
        .collect();
    assert_eq!(
        sent,
        [
            ("HEAD other".to_owned(), Some(404)),
            ("PUT put-blob".to_owned(), Some(201))
        ],
        "a first checkpoint: its blob read (none yet), then created only if still absent"
    );
}

/// An application that records out of order (a batch retried, handlers racing) never moves
/// the pending position back: the newest one recorded is what is written.
#[tokio::test]
async fn an_older_position_recorded_after_a_newer_one_is_not_written() {
    let store = Arc::new(InMemoryCheckpointStore::new());
    let checkpointer = Checkpointer::new(store.clone(), (NS, HUB, GROUP), by_count(1_000)).unwrap();
    for seq in [50i64, 40, 45] {
        checkpointer
            .record("0", Some(seq.to_string()), Some(seq))
            .await
            .unwrap();
    }
    assert!(checkpointer.flush("0").await.unwrap());
    let stored = store
        .list_checkpoints(&Scope::new(NS, HUB, GROUP))
        .await
        .unwrap();
    assert_eq!(stored[0].sequence_number, Some(50));
    assert_eq!(stored[0].offset.as_deref(), Some("50"));
}

/// Holds the first checkpoint write until told to go, and says when it has started.
#[derive(Default)]
struct Gate {
    started: tokio::sync::Notify,
    go: tokio::sync::Notify,
    held: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl Hooks for Gate {
    async fn before(&self, call: Call<'_>) -> eventhub_checkpointstore::Result<()> {
        if matches!(call, Call::AdvanceCheckpoint(_))
            && !self.held.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            self.started.notify_one();
            self.go.notified().await;
        }
        Ok(())
    }
}

/// A position needs an offset or a sequence number, not both (geo-replicated namespaces give
/// offsets that are not numbers; some callers know only the sequence number); neither is
/// refused.
#[tokio::test]
async fn a_position_with_only_an_offset_or_only_a_sequence_number_is_recorded() {
    let store = Arc::new(InMemoryCheckpointStore::new());
    let checkpointer = Checkpointer::new(store.clone(), (NS, HUB, GROUP), by_count(1)).unwrap();
    assert!(checkpointer.record("0", None, Some(5)).await.unwrap());
    assert!(checkpointer
        .record("1", Some("g1:42".into()), None)
        .await
        .unwrap());
    assert!(matches!(
        checkpointer.record("2", None, None).await,
        Err(Error::InvalidInput { .. })
    ));
    let mut stored: Vec<_> = store
        .list_checkpoints(&Scope::new(NS, HUB, GROUP))
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.partition_id, c.offset, c.sequence_number))
        .collect();
    stored.sort();
    assert_eq!(
        stored,
        [
            ("0".to_owned(), None, Some(5)),
            ("1".to_owned(), Some("g1:42".to_owned()), None)
        ]
    );
}

/// A position recorded while the write of an older one is out stays pending (it is not
/// superseded by that write), and is what the next flush writes.
#[tokio::test]
async fn a_position_recorded_while_a_write_is_out_is_written_by_the_next_flush() {
    let store = Arc::new(Hooked::new(InMemoryCheckpointStore::new(), Gate::default()));
    let checkpointer =
        Arc::new(Checkpointer::new(store.clone(), (NS, HUB, GROUP), by_count(1)).unwrap());
    // Position 10 is due at once (every event): its write starts and is held.
    let writing = tokio::spawn({
        let checkpointer = checkpointer.clone();
        async move { checkpointer.record("0", Some("10".into()), Some(10)).await }
    });
    store.hooks.started.notified().await;
    // 11 is recorded meanwhile; being due too, it waits for the write that is out.
    let later = tokio::spawn({
        let checkpointer = checkpointer.clone();
        async move { checkpointer.record("0", Some("11".into()), Some(11)).await }
    });
    while checkpointer.stats().recorded < 2 {
        tokio::task::yield_now().await;
    }
    store.hooks.go.notify_one();
    assert!(writing.await.unwrap().unwrap(), "10 written");
    later.await.unwrap().unwrap();
    checkpointer.flush_all().await.unwrap();
    let stored = store
        .inner
        .list_checkpoints(&Scope::new(NS, HUB, GROUP))
        .await
        .unwrap();
    assert_eq!(
        stored[0].sequence_number,
        Some(11),
        "the position recorded meanwhile"
    );
    assert!(checkpointer.pending().is_empty());
    // Its Debug output says what it holds, for logs.
    let described = format!("{checkpointer:?}");
    assert!(
        described.contains("Checkpointer") && described.contains("writes: 2"),
        "{described}"
    );
}

/// An operator's rewind (another store moving the checkpoint back) is honoured: a store that
/// last saw a newer checkpoint reads the record again before refusing a position, and writes
/// one past the rewound checkpoint; a store reading a newer one refuses.
#[tokio::test]
async fn a_rewound_checkpoint_is_read_again_before_a_position_is_refused() {
    let container = common::fresh_container().await;
    let consumer = common::store_on(&container, None);
    let operator = common::store_on(&container, None);
    let at = |seq: i64| Checkpoint::new((NS, HUB, GROUP), "0", Some(seq.to_string()), Some(seq));
    assert!(matches!(
        consumer.advance_checkpoint(&at(100)).await.unwrap(),
        Advance::Written
    ));
    operator.update_checkpoint(&at(50)).await.unwrap();
    assert!(matches!(
        consumer.advance_checkpoint(&at(80)).await.unwrap(),
        Advance::Written
    ));
    assert_eq!(stored(&consumer).await["0"], Some(80));
    let late = common::store_on(&container, None);
    match late.advance_checkpoint(&at(60)).await.unwrap() {
        Advance::Stale { stored } => assert_eq!(stored.sequence_number, Some(80)),
        other => panic!("a position behind the stored one: {other:?}"),
    }
}

#[tokio::test]
async fn a_failed_write_is_reported_and_the_position_kept() {
    // A container that does not exist yet: every write fails with 404 ContainerNotFound.
    let container = common::unique_container();
    let store = Arc::new(common::store_on(&container, None));
    let checkpointer = Checkpointer::new(store.clone(), (NS, HUB, GROUP), by_count(2)).unwrap();
    assert!(!checkpointer
        .record("0", Some("0".into()), Some(0))
        .await
        .unwrap());
    let err = checkpointer
        .record("0", Some("1".into()), Some(1))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Service { status: 404, .. }),
        "{err:?}"
    );
    assert_eq!(checkpointer.pending(), ["0"]);
    assert!(checkpointer.flush_all().await.is_err());
    assert_eq!(
        checkpointer.pending(),
        ["0"],
        "still pending after a failed flush"
    );

    store.create_container_if_missing().await.unwrap();
    checkpointer.flush_all().await.unwrap();
    assert!(checkpointer.pending().is_empty());
    assert_eq!(stored(&store).await["0"], Some(1));
}

/// Azurite behind a network that holds each checkpoint write longer the older its position is
/// (up to 50 ms), so writes that overlap reach the service newest first.
/// Keeps the positions in the order their writes completed.
#[derive(Default)]
struct Jittery(std::sync::Mutex<Vec<i64>>);

#[async_trait::async_trait]
impl Hooks for Jittery {
    async fn before(&self, call: Call<'_>) -> eventhub_checkpointstore::Result<()> {
        if let Call::UpdateCheckpoint(checkpoint) | Call::AdvanceCheckpoint(checkpoint) = call {
            let hold = (500 - checkpoint.sequence_number.unwrap_or(0)).clamp(0, 500) as u64 / 10;
            tokio::time::sleep(Duration::from_millis(hold)).await;
        }
        Ok(())
    }

    fn checkpointed(&self, checkpoint: &Checkpoint) {
        self.0
            .lock()
            .unwrap()
            .push(checkpoint.sequence_number.unwrap());
    }
}

#[tokio::test]
async fn concurrent_records_leave_the_newest_position_written() {
    let (store, _) = recorded_store().await;
    let jittery = Arc::new(Hooked::new((*store).clone(), Jittery::default()));
    let checkpointer = Checkpointer::new(jittery.clone(), (NS, HUB, GROUP), by_count(5)).unwrap();
    // 16 tasks record interleaved positions of one partition, and each records its next only
    // after its write (when one was due) returned: writes overlap and are held different times,
    // yet none may overwrite a newer position with an older one.
    join_all((0..16i64).map(|task| {
        let checkpointer = &checkpointer;
        async move {
            for i in 0..30 {
                let seq = i * 16 + task;
                checkpointer
                    .record("0", Some(seq.to_string()), Some(seq))
                    .await
                    .unwrap();
            }
        }
    }))
    .await;
    checkpointer.flush_all().await.unwrap();
    assert!(checkpointer.pending().is_empty());
    assert_eq!(stored(&store).await["0"], Some(479));
    let completed = jittery.hooks.0.lock().unwrap().clone();
    assert!(completed.len() > 10, "{completed:?}");
    assert!(
        completed.windows(2).all(|w| w[0] < w[1]),
        "a write completed after a newer one: {completed:?}"
    );
}

#[tokio::test]
async fn the_balancer_flushes_what_it_relinquishes() {
    let (store, _) = recorded_store().await;
    let checkpointer =
        Arc::new(Checkpointer::new(store.clone(), (NS, HUB, GROUP), by_count(1000)).unwrap());
    let balancer = PartitionBalancer::new(
        store.clone(),
        (NS, HUB, GROUP),
        "a",
        ["0", "1"],
        BalancerOptions {
            strategy: eventhub_checkpointstore::balancer::Strategy::Greedy,
            ..Default::default()
        },
    )
    .unwrap()
    .with_checkpointer(checkpointer.clone());
    assert_eq!(balancer.cycle().await.unwrap().len(), 2);
    for seq in 0..10i64 {
        for p in ["0", "1"] {
            checkpointer
                .record(p, Some(seq.to_string()), Some(seq))
                .await
                .unwrap();
        }
    }
    assert!(stored(&store).await.is_empty(), "nothing due yet");
    balancer.relinquish().await.unwrap();
    let expected: BTreeMap<String, Option<i64>> =
        ["0", "1"].map(|p| (p.to_owned(), Some(9))).into();
    assert_eq!(stored(&store).await, expected);
    assert!(checkpointer.pending().is_empty());
}

#[tokio::test]
async fn without_handover_the_balancer_does_not_write_a_partition_taken_from_it() {
    let (store, _) = recorded_store().await;
    let checkpointer =
        Arc::new(Checkpointer::new(store.clone(), (NS, HUB, GROUP), by_count(1000)).unwrap());
    // As the other languages' processors: a taker processes at once.
    let options = BalancerOptions {
        strategy: eventhub_checkpointstore::balancer::Strategy::Greedy,
        handover_intervals: 0,
        ..Default::default()
    };
    let a = PartitionBalancer::new(
        store.clone(),
        (NS, HUB, GROUP),
        "a",
        ["0", "1"],
        options.clone(),
    )
    .unwrap()
    .with_checkpointer(checkpointer.clone());
    let b =
        PartitionBalancer::new(store.clone(), (NS, HUB, GROUP), "b", ["0", "1"], options).unwrap();
    assert_eq!(a.cycle().await.unwrap().len(), 2);
    for p in ["0", "1"] {
        checkpointer
            .record(p, Some("2".into()), Some(2))
            .await
            .unwrap();
    }
    // `b` steals one and resumes from the stored checkpoint (none); then writes its own.
    let stolen = b.cycle().await.unwrap();
    assert_eq!(stolen.len(), 1);
    let stolen = stolen.into_iter().next().unwrap();
    let kept = if stolen == "0" { "1" } else { "0" };
    let b_checkpoint = Checkpoint::new((NS, HUB, GROUP), &stolen, Some("3".into()), Some(3));
    store.update_checkpoint(&b_checkpoint).await.unwrap();
    // `a` learns of the steal at its next cycle and drops the stolen partition's position.
    assert_eq!(a.cycle().await.unwrap().len(), 1);
    assert_eq!(checkpointer.pending(), [kept]);
    checkpointer.flush_all().await.unwrap();
    let stored = stored(&store).await;
    assert_eq!(
        stored[&stolen],
        Some(3),
        "b's checkpoint moved back: {stored:?}"
    );
    assert_eq!(stored[kept], Some(2));
}

/// Cooperative handover, cycle by cycle: the taker holds a stolen partition until it has seen
/// the old owner renew one of its other claims three times (the old owner found the loss, stopped,
/// and wrote its last position), however long that takes; then it resumes exactly there.
#[tokio::test]
async fn a_stolen_partition_is_held_until_its_old_owner_wrote_its_last_position() {
    let (store, _) = recorded_store().await;
    // The timer, for a giver with nothing else to watch: 2 intervals and a half, 1 s.
    let options = BalancerOptions {
        interval: Duration::from_millis(400),
        expiration: Duration::from_secs(10),
        strategy: eventhub_checkpointstore::balancer::Strategy::Greedy,
        ..Default::default()
    };
    assert_eq!(options.handover_intervals, 2);
    let giver_checkpoints =
        Arc::new(Checkpointer::new(store.clone(), (NS, HUB, GROUP), by_count(1000)).unwrap());
    let giver = PartitionBalancer::new(
        store.clone(),
        (NS, HUB, GROUP),
        "giver",
        ["0", "1"],
        options.clone(),
    )
    .unwrap()
    .with_checkpointer(giver_checkpoints.clone());
    let taker = PartitionBalancer::new(
        store.clone(),
        (NS, HUB, GROUP),
        "taker",
        ["0", "1"],
        options,
    )
    .unwrap();
    assert_eq!(giver.cycle().await.unwrap().len(), 2);
    assert_eq!(
        giver.ready().len(),
        2,
        "partitions no one held are ready at once"
    );
    for seq in 0..=10i64 {
        for p in ["0", "1"] {
            giver_checkpoints
                .record(p, Some(seq.to_string()), Some(seq))
                .await
                .unwrap();
        }
    }

    let taken = taker.cycle().await.unwrap();
    assert_eq!(taken.len(), 1);
    let stolen = taken.into_iter().next().unwrap();
    let kept = if stolen == "0" { "1" } else { "0" };
    assert!(taker.owned().contains(&stolen));
    assert!(taker.ready().is_empty(), "a stolen partition is held");
    assert!(!taker.is_ready(&stolen), "is_ready agrees with ready()");

    // The giver is late (a loaded machine): past the timer, the taker still waits for it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    taker.cycle().await.unwrap();
    assert!(
        taker.ready().is_empty(),
        "released with no evidence from the giver"
    );

    // The giver learns it lost the partition and stops processing it (it leaves `ready`) ...
    assert_eq!(giver.cycle().await.unwrap().len(), 1);
    assert_eq!(giver.ready(), [kept.to_owned()].into());
    assert!(giver.is_ready(kept) && !giver.is_ready(&stolen));
    assert!(
        stored(&store).await.is_empty(),
        "nothing written before the giver stopped"
    );
    taker.cycle().await.unwrap();
    assert!(taker.ready().is_empty(), "released at the first renewal");
    // ... and writes its last position at the next cycle, before it renews.
    giver.cycle().await.unwrap();
    assert_eq!(stored(&store).await.get(&stolen), Some(&Some(10)));
    assert_eq!(giver_checkpoints.pending(), [kept]);
    taker.cycle().await.unwrap();
    assert!(taker.ready().is_empty(), "released at the second renewal");
    // The third renewal proves the write: the taker resumes at the giver's last position.
    giver.cycle().await.unwrap();
    taker.cycle().await.unwrap();
    assert_eq!(taker.ready(), [stolen.clone()].into());
    assert!(taker.is_ready(&stolen) && !taker.is_ready(kept));
    assert_eq!(stored(&store).await[&stolen], Some(10));
}

/// A partition stolen from a consumer and stolen back by it at its next cycle (stealers that
/// overshoot as a fleet grows: two took from the same owner, which then fell below its share) was
/// handed over in between: its application stopped it, so its last position must be written
/// before the consumer resumes it from the store, or it reprocesses its own events. (Found by
/// the processor's scale-out test: a consumer processed 13 of its own events twice.)
#[tokio::test]
async fn a_partition_stolen_back_at_once_has_its_last_position_written() {
    let (store, _) = recorded_store().await;
    let options = BalancerOptions {
        interval: Duration::from_millis(400),
        expiration: Duration::from_secs(10),
        strategy: eventhub_checkpointstore::balancer::Strategy::Greedy,
        ..Default::default()
    };
    let checkpoints =
        Arc::new(Checkpointer::new(store.clone(), (NS, HUB, GROUP), by_count(1000)).unwrap());
    let b = PartitionBalancer::new(store.clone(), (NS, HUB, GROUP), "b", ["0", "1"], options)
        .unwrap()
        .with_checkpointer(checkpoints.clone());
    assert_eq!(b.cycle().await.unwrap().len(), 2);
    for seq in 0..=10i64 {
        for p in ["0", "1"] {
            checkpoints
                .record(p, Some(seq.to_string()), Some(seq))
                .await
                .unwrap();
        }
    }
    // Both taken from b at once.
    let scope = Scope::new(NS, HUB, GROUP);
    let taken: Vec<_> = store
        .list_ownership(&scope)
        .await
        .unwrap()
        .into_iter()
        .map(|mut o| {
            o.owner_id = Some("c".into());
            o
        })
        .collect();
    assert_eq!(store.claim_ownership(&taken).await.unwrap().len(), 2);

    // b finds both gone, is below its share, and steals one back.
    let owned = b.cycle().await.unwrap();
    assert_eq!(owned.len(), 1, "b steals its share back: {owned:?}");
    assert!(b.ready().is_empty(), "both left b's application");
    // Its next cycle writes the last positions of both: the one it holds again too.
    b.cycle().await.unwrap();
    assert_eq!(
        stored(&store).await,
        [("0".to_owned(), Some(10)), ("1".to_owned(), Some(10))].into(),
        "the last positions of both partitions b's application stopped"
    );
}

/// A giver that hangs after a steal (it never cycles again) is waited for until its claims
/// expire, not for a timer: it might still write.
#[tokio::test]
async fn a_hold_on_a_hung_giver_ends_when_its_claims_expire() {
    let (store, _) = recorded_store().await;
    let options = BalancerOptions {
        interval: Duration::from_millis(400),
        expiration: Duration::from_secs(4),
        strategy: eventhub_checkpointstore::balancer::Strategy::Greedy,
        ..Default::default()
    };
    let make = |name: &str| {
        PartitionBalancer::new(
            store.clone(),
            (NS, HUB, GROUP),
            name,
            ["0", "1"],
            options.clone(),
        )
        .unwrap()
    };
    let (giver, taker) = (make("giver"), make("taker"));
    assert_eq!(giver.cycle().await.unwrap().len(), 2);
    let stolen = taker.cycle().await.unwrap();
    assert_eq!(stolen.len(), 1);
    let hung_at = tokio::time::Instant::now();
    // The timer (1 s) runs out long before the giver's claims expire (4 s, by the service's clock).
    while taker.ready().is_empty() {
        assert!(
            hung_at.elapsed() < Duration::from_secs(30),
            "still held 30 s after the giver hung"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        taker.cycle().await.unwrap();
    }
    // Whatever the machine's speed: the hold ended only once the giver's other claim expired,
    // and the taker took that one at the same listing.
    assert_eq!(
        taker.owned().len(),
        2,
        "the giver's other claim had not expired"
    );
    assert_eq!(taker.ready().len(), 2);
}

/// Relinquishing writes first; nothing relinquished is held by its next owner.
#[tokio::test]
async fn a_relinquished_partition_is_ready_at_once_for_its_next_owner() {
    let (store, _) = recorded_store().await;
    let options = BalancerOptions {
        interval: Duration::from_millis(400),
        expiration: Duration::from_secs(10),
        strategy: eventhub_checkpointstore::balancer::Strategy::Greedy,
        ..Default::default()
    };
    let checkpoints =
        Arc::new(Checkpointer::new(store.clone(), (NS, HUB, GROUP), by_count(1000)).unwrap());
    let leaving = PartitionBalancer::new(
        store.clone(),
        (NS, HUB, GROUP),
        "leaving",
        ["0"],
        options.clone(),
    )
    .unwrap()
    .with_checkpointer(checkpoints.clone());
    let next =
        PartitionBalancer::new(store.clone(), (NS, HUB, GROUP), "next", ["0"], options).unwrap();
    assert_eq!(leaving.cycle().await.unwrap().len(), 1);
    checkpoints
        .record("0", Some("7".into()), Some(7))
        .await
        .unwrap();
    leaving.relinquish().await.unwrap();
    assert_eq!(stored(&store).await["0"], Some(7));
    assert_eq!(next.cycle().await.unwrap().len(), 1);
    assert_eq!(next.ready(), ["0".to_owned()].into());
}

#[test]
fn a_zero_interval_is_refused() {
    let store = Arc::new(eventhub_checkpointstore::InMemoryCheckpointStore::new());
    let options = CheckpointerOptions {
        every_events: None,
        every: Some(Duration::ZERO),
    };
    assert!(matches!(
        Checkpointer::new(store, (NS, HUB, GROUP), options),
        Err(Error::InvalidInput { .. })
    ));
}
