//! The metrics (feature `metrics`) of a scripted scenario against Azurite, read from an in-memory
//! recorder: claims won and lost, a steal held for handover, ownership lost and relinquished, a
//! coalesced checkpoint run, a checkpoint not written because the stored one is newer, and store
//! operations with their outcomes. Each test records into a recorder of its own, set as its
//! thread's default (the tests run on single-threaded runtimes, so everything they do is recorded
//! on that thread); figures are also picked out by the test's event hub.

use eventhub_checkpointstore::balancer::{BalancerOptions, PartitionBalancer};
use eventhub_checkpointstore::checkpointer::{Checkpointer, CheckpointerOptions};
use eventhub_checkpointstore::metrics::{
    describe, CHECKPOINTS, CHECKPOINT_SEQUENCE_NUMBER, CLAIMS, HANDOVER_HOLDS, OPERATION_DURATION,
    OWNED, OWNERSHIP_CHANGES,
};
use eventhub_checkpointstore::{CheckpointStore, Scope};
use eventhub_checkpointstore_testkit as common;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Duration;

/// A recorder for this test's thread; the figures go to the returned snapshotter until the guard
/// is dropped.
fn recorder() -> (Snapshotter, metrics::LocalRecorderGuard<'static>) {
    let recorder: &'static DebuggingRecorder = Box::leak(Box::new(DebuggingRecorder::new()));
    let guard = metrics::set_default_local_recorder(recorder);
    describe();
    (recorder.snapshotter(), guard)
}

/// The figures recorded for event hub `hub`: (name, labels other than the scope's, value).
/// One recorded figure: its name, its labels beyond the scope's, its value.
type Figure = (String, Vec<(String, String)>, DebugValue);

/// Snapshots drain the recorder (counters and gauges read as 0 afterwards, histograms empty): each
/// test takes one snapshot per step and reads its figures from it.
fn figures(snapshot: &Snapshotter, hub: &str) -> Vec<Figure> {
    let mut figures = Vec::new();
    for (key, _, _, value) in snapshot.snapshot().into_vec() {
        let key = key.key();
        let labels: Vec<(String, String)> = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        if !labels
            .iter()
            .any(|(k, v)| k == "messaging.destination.name" && v == hub)
        {
            continue;
        }
        for (k, v) in [
            ("messaging.system", "eventhubs"),
            ("server.address", NS),
            ("messaging.consumer.group.name", "$Default"),
        ] {
            assert!(
                labels.iter().any(|(lk, lv)| lk == k && lv == v),
                "{} lacks {k}={v}: {labels:?}",
                key.name()
            );
        }
        let own = labels
            .into_iter()
            .filter(|(k, _)| {
                ![
                    "messaging.system",
                    "server.address",
                    "messaging.destination.name",
                    "messaging.consumer.group.name",
                ]
                .contains(&k.as_str())
            })
            .collect();
        figures.push((key.name().to_owned(), own, value));
    }
    figures
}

/// One snapshot's figures of one test.
struct Figures(Vec<Figure>);

impl Figures {
    fn take(snapshot: &Snapshotter, hub: &str) -> Self {
        Figures(figures(snapshot, hub))
    }

    /// The counter `name` with exactly these labels (beyond the scope's); 0 if not counted.
    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.0
            .iter()
            .filter(|(n, l, _)| n == name && same(l, labels))
            .map(|(_, _, v)| match v {
                DebugValue::Counter(c) => *c,
                other => panic!("{name} is not a counter: {other:?}"),
            })
            .sum()
    }

    /// The gauge `name` with exactly these labels, if it was set since the last snapshot.
    fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.0
            .iter()
            .find(|(n, l, _)| n == name && same(l, labels))
            .map(|(_, _, v)| match v {
                DebugValue::Gauge(g) => g.into_inner(),
                other => panic!("{name} is not a gauge: {other:?}"),
            })
    }

    /// How many durations were recorded for `operation` with these labels among its own.
    fn timed(&self, operation: &str, with: &[(&str, &str)]) -> usize {
        self.0
            .iter()
            .filter(|(n, l, _)| {
                n == OPERATION_DURATION
                    && l.iter().any(|(k, v)| k == "operation" && v == operation)
                    && with
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, v)| match v {
                DebugValue::Histogram(h) => {
                    assert!(h.iter().all(|d| d.into_inner() >= 0.0));
                    h.len()
                }
                other => panic!("not a histogram: {other:?}"),
            })
            .sum()
    }
}

fn same(labels: &[(String, String)], expected: &[(&str, &str)]) -> bool {
    labels.len() == expected.len()
        && expected
            .iter()
            .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
}

const NS: &str = "metrics.servicebus.windows.net";

fn scope() -> Scope {
    Scope::new(NS, common::unique_container(), "$Default")
}

fn options() -> BalancerOptions {
    BalancerOptions {
        interval: Duration::from_secs(10),
        expiration: Duration::from_secs(60),
        ..Default::default()
    }
}

#[tokio::test]
async fn claims_a_steal_and_ownership_changes_are_counted() {
    let (snapshot, _recording) = recorder();
    let store: Arc<dyn CheckpointStore> = Arc::new(common::fresh_store(None).await);
    let scope = scope();
    let hub = scope.eventhub_name.clone();
    let partitions: Vec<String> = (0..4).map(|p| p.to_string()).collect();
    let a =
        PartitionBalancer::new(store.clone(), scope.clone(), "a", &partitions, options()).unwrap();
    let b =
        PartitionBalancer::new(store.clone(), scope.clone(), "b", &partitions, options()).unwrap();
    let change = |who, what| [("messaging.client.id", who), ("change", what)];
    let a_label = [("messaging.client.id", "a")];

    // a alone takes everything (over as many cycles as its strategy needs: one partition a
    // cycle, so 4; a bound, not a wait).
    let mut cycles = 0;
    while a.cycle().await.unwrap().len() < 4 {
        cycles += 1;
        assert!(
            cycles < 8,
            "a alone did not take all 4 partitions in {cycles} cycles"
        );
    }
    let a_claims = a.claims();
    let f = Figures::take(&snapshot, &hub);
    assert_eq!(f.counter(OWNERSHIP_CHANGES, &change("a", "taken")), 4);
    assert_eq!(f.gauge(OWNED, &a_label), Some(4.0));
    // Every claim a sent was won: its first claims and any renewals.
    assert!(f.counter(CLAIMS, &[("outcome", "won")]) >= 4);
    assert_eq!(f.counter(CLAIMS, &[("outcome", "lost")]), 0);
    assert!(f.timed("claim_ownership", &[("outcome", "ok"), ("store", "blob")]) >= 1);
    assert!(f.timed("list_ownership", &[("outcome", "ok")]) >= 1);

    // b takes from a live owner: a steal, held for a's handover.
    let b_owns = b.cycle().await.unwrap().len() as u64;
    assert!(b_owns > 0, "b took nothing");
    let f = Figures::take(&snapshot, &hub);
    assert_eq!(f.counter(OWNERSHIP_CHANGES, &change("b", "stolen")), b_owns);
    assert_eq!(f.counter(OWNERSHIP_CHANGES, &change("b", "taken")), 0);
    assert_eq!(
        f.counter(HANDOVER_HOLDS, &[("messaging.client.id", "b")]),
        b_owns
    );
    assert_eq!(f.counter(CLAIMS, &[("outcome", "won")]), b_owns);

    // a's next cycle lists them as b's: ownership lost, and only the rest renewed.
    let a_owns = a.cycle().await.unwrap().len() as u64;
    assert_eq!(a_owns, 4 - b_owns);
    let f = Figures::take(&snapshot, &hub);
    assert_eq!(f.counter(OWNERSHIP_CHANGES, &change("a", "lost")), b_owns);
    assert_eq!(f.counter(CLAIMS, &[("outcome", "won")]), a_owns);
    assert_eq!(f.counter(CLAIMS, &[("outcome", "lost")]), 0);
    assert_eq!(f.gauge(OWNED, &a_label), Some(a_owns as f64));

    // A renewal with the versions a held before the steal: the stolen ones lose the race.
    let renewed = store.claim_ownership(&a_claims).await.unwrap().len() as u64;
    assert_eq!(renewed, 0, "every version a held has changed since");
    let f = Figures::take(&snapshot, &hub);
    assert_eq!(f.counter(CLAIMS, &[("outcome", "lost")]), 4);
    assert_eq!(f.counter(CLAIMS, &[("outcome", "won")]), 0);

    // a gives up the rest on shutdown.
    a.relinquish().await.unwrap();
    let f = Figures::take(&snapshot, &hub);
    assert_eq!(
        f.counter(OWNERSHIP_CHANGES, &change("a", "relinquished")),
        a_owns
    );
    assert_eq!(f.gauge(OWNED, &a_label), Some(0.0));
    assert_eq!(f.counter(CLAIMS, &[("outcome", "failed")]), 0);
}

#[tokio::test]
async fn a_coalesced_checkpoint_run_and_a_stale_position_are_counted() {
    let (snapshot, _recording) = recorder();
    let store: Arc<dyn CheckpointStore> = Arc::new(common::fresh_store(None).await);
    let scope = scope();
    let hub = scope.eventhub_name.clone();
    let checkpointer = Checkpointer::new(
        store.clone(),
        scope.clone(),
        CheckpointerOptions {
            every_events: NonZeroU64::new(10),
            every: None,
        },
    )
    .unwrap();
    // 25 events of partition 0: written at the 10th and 20th, the last 5 on flush.
    for seq in 0..25 {
        checkpointer
            .record("0", Some((seq * 1024).to_string()), Some(seq))
            .await
            .unwrap();
    }
    checkpointer.flush_all().await.unwrap();
    let result = |r| [("result", r)];
    let f = Figures::take(&snapshot, &hub);
    assert_eq!(f.counter(CHECKPOINTS, &result("written")), 3);
    assert_eq!(f.counter(CHECKPOINTS, &result("coalesced")), 9 + 9 + 4);
    let partition = |p| [("messaging.destination.partition.id", p)];
    assert_eq!(
        f.gauge(CHECKPOINT_SEQUENCE_NUMBER, &partition("0")),
        Some(24.0)
    );
    assert_eq!(f.timed("advance_checkpoint", &[("outcome", "ok")]), 3);

    // Another consumer got further on partition 1; this one's older position is not written.
    store
        .update_checkpoint(&scope.checkpoint("1", Some("102400".into()), Some(100)))
        .await
        .unwrap();
    checkpointer
        .record("1", Some("51200".into()), Some(50))
        .await
        .unwrap();
    checkpointer.flush_all().await.unwrap();
    let f = Figures::take(&snapshot, &hub);
    assert_eq!(f.counter(CHECKPOINTS, &result("stale")), 1);
    assert_eq!(f.counter(CHECKPOINTS, &result("written")), 0);
    assert_eq!(f.counter(CHECKPOINTS, &result("failed")), 0);
    // The gauge is what this process wrote: here the other consumer's 100, through this store.
    assert_eq!(
        f.gauge(CHECKPOINT_SEQUENCE_NUMBER, &partition("1")),
        Some(100.0)
    );
}

#[tokio::test]
async fn failed_operations_carry_their_error_type() {
    let (snapshot, _recording) = recorder();
    // A container that does not exist: the service's 404.
    let store = common::store_on(&common::unique_container(), None);
    let scope = scope();
    let hub = scope.eventhub_name.clone();
    assert!(store.list_checkpoints(&scope).await.is_err());
    // Refused before any request: a claim of an empty partition id.
    let bad = eventhub_checkpointstore::Ownership {
        partition_id: String::new(),
        ..scope.ownership("0", "a")
    };
    assert!(store.claim_ownership(&[bad]).await.is_err());
    // A claim sent and failed (the container is missing): counted as failed, not lost.
    assert!(store
        .claim_ownership(&[scope.ownership("1", "a")])
        .await
        .is_err());
    let f = Figures::take(&snapshot, &hub);
    assert_eq!(f.counter(CLAIMS, &[("outcome", "failed")]), 1);
    assert_eq!(f.counter(CLAIMS, &[("outcome", "lost")]), 0);
    let error = |kind| [("outcome", "error"), ("error.type", kind)];
    assert_eq!(f.timed("list_checkpoints", &error("404")), 1);
    assert_eq!(f.timed("claim_ownership", &error("invalid_input")), 1);
    assert_eq!(f.timed("list_checkpoints", &[("outcome", "ok")]), 0);
}
