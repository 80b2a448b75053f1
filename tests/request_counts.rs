//! What each operation costs in HTTP requests, counted on the wire (every try of every request).
//! Azure bills and throttles per request, and a balancer's cycle time is bounded by them.

use eventhub_checkpointstore::Scope;
use eventhub_checkpointstore_testkit as common;

use common::{fresh_container, fresh_store, put_many, store_on, Recorder, Sent};
use eventhub_checkpointstore::{
    BlobCheckpointStoreOptions, Checkpoint, CheckpointStore, Ownership,
};

const NS: &str = "myns.servicebus.windows.net";
const EH: &str = "telemetry";
const CG: &str = "$default";

fn operations(sent: &[Sent]) -> Vec<String> {
    sent.iter().map(Sent::operation).collect()
}

/// max(1, ⌈N/5000⌉) List Blobs requests for N records, for both kinds, at N = 0, 1, 5000, 6000.
///
/// At exactly 5,000 Azurite 3.37.0 answers the first page with no `NextMarker`, so the listing
/// takes one request. (Azure may return a marker and an empty last page there; the store follows
/// whatever marker it is given, and never issues a request without one.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_n_records_costs_max_1_ceil_n_over_5000_requests() {
    let container = fresh_container().await;
    let setup = store_on(&container, None);
    for (group, n) in [("n1", 1), ("n5000", 5000), ("n6000", 6000)] {
        put_many(&setup, &format!("{NS}/{EH}/{group}/checkpoint/"), n).await;
        if n != 5000 {
            put_many(&setup, &format!("{NS}/{EH}/{group}/ownership/"), n).await;
        }
    }

    let recorder = Recorder::default();
    let store = store_on(
        &container,
        Some(recorder.install(BlobCheckpointStoreOptions::default())),
    );
    for (group, n, expected_requests) in [
        ("n0", 0, 1),
        ("n1", 1, 1),
        ("n5000", 5000, 1),
        ("n6000", 6000, 2),
    ] {
        let checkpoints = store
            .list_checkpoints(&Scope::new(NS, EH, group))
            .await
            .unwrap();
        assert_eq!(checkpoints.len(), n, "{group} checkpoints");
        assert_eq!(
            operations(&recorder.take()),
            vec!["list"; expected_requests],
            "{group} checkpoints"
        );
        for c in &checkpoints {
            let i: i64 = c.partition_id.parse().unwrap();
            assert_eq!(
                (c.sequence_number, c.offset.as_deref()),
                (Some(i), Some(i.to_string().as_str()))
            );
        }
        if n != 5000 {
            let ownership = store
                .list_ownership(&Scope::new(NS, EH, group))
                .await
                .unwrap();
            assert_eq!(ownership.len(), n, "{group} ownership");
            assert_eq!(
                operations(&recorder.take()),
                vec!["list"; expected_requests],
                "{group} ownership"
            );
        }
    }
}

#[tokio::test]
async fn one_request_per_operation_in_the_common_case() {
    let recorder = Recorder::default();
    let store = fresh_store(Some(
        recorder.install(BlobCheckpointStoreOptions::default()),
    ))
    .await;
    recorder.take();

    let new: Vec<Ownership> = (0..5)
        .map(|p| Ownership::new((NS, EH, CG), p.to_string(), "owner-1"))
        .collect();
    let won = store.claim_ownership(&new).await.unwrap();
    assert_eq!(
        operations(&recorder.take()),
        ["put-blob"; 5],
        "claiming 5 new partitions"
    );

    assert_eq!(store.claim_ownership(&won).await.unwrap().len(), 5);
    assert_eq!(
        operations(&recorder.take()),
        ["metadata"; 5],
        "renewing 5 partitions"
    );

    assert!(store.claim_ownership(&won[..1]).await.unwrap().is_empty());
    assert_eq!(
        operations(&recorder.take()),
        ["metadata"],
        "a lost race costs one request, no retry"
    );

    let checkpoint = Checkpoint::new((NS, EH, CG), "0", Some("1".into()), Some(1));
    store.update_checkpoint(&checkpoint).await.unwrap();
    assert_eq!(
        operations(&recorder.take()),
        ["metadata", "put-blob"],
        "first checkpoint: 404, then create"
    );
    store.update_checkpoint(&checkpoint).await.unwrap();
    assert_eq!(
        operations(&recorder.take()),
        ["metadata"],
        "later checkpoints"
    );

    store.list_ownership(&Scope::new(NS, EH, CG)).await.unwrap();
    store
        .list_checkpoints(&Scope::new(NS, EH, CG))
        .await
        .unwrap();
    assert_eq!(operations(&recorder.take()), ["list", "list"]);
}

/// N claims cost N requests when no race is lost, whatever the concurrency bound: new partitions
/// (Put Blob) and renewals (Set Blob Metadata) alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claiming_n_partitions_costs_n_requests() {
    for n in [1usize, 32, 256] {
        let recorder = Recorder::default();
        let store = fresh_store(Some(
            recorder.install(BlobCheckpointStoreOptions::default()),
        ))
        .await;
        recorder.take();
        let new: Vec<Ownership> = (0..n)
            .map(|p| Ownership::new((NS, EH, CG), p.to_string(), "owner-1"))
            .collect();
        let won = store.claim_ownership(&new).await.unwrap();
        assert_eq!(won.len(), n);
        assert_eq!(operations(&recorder.take()), vec!["put-blob"; n], "{n} new");
        assert_eq!(store.claim_ownership(&won).await.unwrap().len(), n);
        assert_eq!(
            operations(&recorder.take()),
            vec!["metadata"; n],
            "{n} renewals"
        );
    }
}

/// `checkpoint_fallback` costs at most one more listing per call, and none once every partition
/// the other layout holds has a checkpoint of its own; none ever for names that are lower-case
/// already (both layouts are the same blobs), and never for ownership.
#[tokio::test]
async fn checkpoint_fallback_costs_at_most_one_more_listing() {
    use eventhub_checkpointstore::BlobNaming;
    let container = fresh_container().await;
    let (ns, eh) = ("Mixed.servicebus.windows.net", "Hub");
    let verbatim = store_on(
        &container,
        Some(BlobCheckpointStoreOptions {
            naming: BlobNaming::Verbatim,
            ..Default::default()
        }),
    );
    for p in ["0", "1"] {
        verbatim
            .update_checkpoint(&Checkpoint::new((ns, eh, "$Default"), p, None, Some(1)))
            .await
            .unwrap();
    }
    let recorder = Recorder::default();
    let store = store_on(
        &container,
        Some(recorder.install(BlobCheckpointStoreOptions {
            checkpoint_fallback: true,
            ..Default::default()
        })),
    );
    let mut costs = Vec::new();
    let list = |expected: usize| {
        let store = &store;
        async move {
            assert_eq!(
                store
                    .list_checkpoints(&Scope::new(ns, eh, "$Default"))
                    .await
                    .unwrap()
                    .len(),
                expected
            );
        }
    };
    list(2).await;
    costs.push(operations(&recorder.take()));
    store
        .update_checkpoint(&Checkpoint::new((ns, eh, "$Default"), "0", None, Some(2)))
        .await
        .unwrap();
    recorder.take();
    list(2).await;
    costs.push(operations(&recorder.take()));
    store
        .update_checkpoint(&Checkpoint::new((ns, eh, "$Default"), "1", None, Some(2)))
        .await
        .unwrap();
    recorder.take();
    for _ in 0..3 {
        list(2).await;
        costs.push(operations(&recorder.take()));
    }
    store
        .list_ownership(&Scope::new(ns, eh, "$Default"))
        .await
        .unwrap();
    costs.push(operations(&recorder.take()));
    store
        .list_checkpoints(&Scope::new(NS, EH, CG))
        .await
        .unwrap();
    costs.push(operations(&recorder.take()));
    assert_eq!(
        costs,
        [
            vec!["list", "list"], // both partitions from the other layout
            vec!["list", "list"], // one superseded, one still from the other layout
            vec!["list", "list"], // a last look finds nothing left to fall back on
            vec!["list"],         // then none
            vec!["list"],
            vec!["list"], // ownership never falls back
            vec!["list"], // lower-case names: both layouts are the same blobs
        ]
    );
}
