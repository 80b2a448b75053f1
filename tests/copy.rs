//! `copy::copy_checkpoints` against Azurite: a dry run writes nothing and reports exactly what a
//! real run writes; a real run costs one listing plus one request per checkpoint; copies go into
//! another consumer group, across blob naming layouts and into the table store; ownership is left
//! alone unless asked.

use eventhub_checkpointstore_testkit as common;

use common::{fresh_container, positions, store_on, Recorder};
use eventhub_checkpointstore::copy::{copy_checkpoints, CopyOptions, CopyOutcome};
use eventhub_checkpointstore::{
    BlobCheckpointStoreOptions, BlobNaming, CheckpointStore, Error, Ownership, Scope,
};
use std::collections::BTreeMap;

const NS: &str = "Copy.servicebus.windows.net";
const EH: &str = "Telemetry";

fn scope(group: &str) -> Scope {
    Scope::new(NS, EH, group)
}

/// 12 partitions with checkpoints (one with an offset only, one with a sequence number only),
/// 3 of them owned.
async fn seed(store: &dyn CheckpointStore, s: &Scope) {
    for p in 0..12i64 {
        let (offset, sequence) = match p {
            10 => (Some("geo:10".to_owned()), None),
            11 => (None, Some(11)),
            _ => (Some((p * 1000).to_string()), Some(p)),
        };
        store
            .update_checkpoint(&s.checkpoint(p.to_string(), offset, sequence))
            .await
            .unwrap();
    }
    let claims: Vec<Ownership> = (0..3)
        .map(|p| s.ownership(p.to_string(), format!("owner-{p}")))
        .collect();
    assert_eq!(store.claim_ownership(&claims).await.unwrap().len(), 3);
}

#[tokio::test]
async fn dry_run_writes_nothing_and_reports_what_a_real_run_writes() {
    let container = fresh_container().await;
    let sent = Recorder::default();
    let store = store_on(
        &container,
        Some(sent.install(BlobCheckpointStoreOptions::default())),
    );
    seed(&store, &scope("$Default")).await;
    let (from, to) = (scope("$Default"), scope("replay"));

    sent.take();
    let mut seen = Vec::new();
    let plan = copy_checkpoints(
        &store,
        &from,
        &store,
        &to,
        &CopyOptions {
            dry_run: true,
            ownership: true,
            ..Default::default()
        },
        |p| seen.push((p.checkpoint.partition_id.clone(), p.done, p.total)),
    )
    .await
    .unwrap();
    assert_eq!(plan.outcome, CopyOutcome::DryRun);
    assert_eq!(plan.checkpoints.len(), 12);
    assert_eq!(plan.ownership.len(), 3, "the claims it would make");
    assert_eq!(seen.len(), 12);
    assert_eq!(seen.last().map(|s| (s.1, s.2)), Some((12, 12)));
    let requests: Vec<String> = sent.take().iter().map(|s| s.method.clone()).collect();
    assert!(
        requests.iter().all(|m| m == "GET"),
        "a dry run only lists: {requests:?}"
    );
    assert!(positions(&store, &to).await.is_empty(), "nothing written");
    assert!(store
        .list_ownership(&Scope::new(NS, EH, "replay"))
        .await
        .unwrap()
        .is_empty());

    sent.take();
    let done = copy_checkpoints(&store, &from, &store, &to, &CopyOptions::default(), |_| {})
        .await
        .unwrap();
    let costs: Vec<String> = sent.take().iter().map(|s| s.operation()).collect();
    assert_eq!(
        done.checkpoints, plan.checkpoints,
        "the dry run reported exactly this"
    );
    assert_eq!(positions(&store, &to).await, positions(&store, &from).await);
    assert!(
        done.checkpoints
            .iter()
            .all(|c| c.scope.consumer_group == "replay"),
        "written to the destination scope"
    );
    assert_eq!(
        costs.iter().filter(|o| *o == "list").count(),
        3,
        "the source's checkpoints, the destination's checkpoints and ownership: {costs:?}"
    );
    assert_eq!(
        costs.iter().filter(|o| *o == "put-blob").count(),
        12,
        "one write per checkpoint, created only if still absent: {costs:?}"
    );
    assert_eq!(
        costs.len(),
        3 + 12 * 2,
        "each write after a read of its record: {costs:?}"
    );
    // Ownership untouched unless asked.
    assert!(store
        .list_ownership(&Scope::new(NS, EH, "replay"))
        .await
        .unwrap()
        .is_empty());

    // Asked: claims for the same owners, conditional on the destination's records.
    let with_ownership = copy_checkpoints(
        &store,
        &from,
        &store,
        &to,
        &CopyOptions {
            ownership: true,
            ..Default::default()
        },
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(
        (
            with_ownership.ownership.len(),
            with_ownership.ownership_lost
        ),
        (3, 0)
    );
    let owners: BTreeMap<String, Option<String>> = store
        .list_ownership(&Scope::new(NS, EH, "replay"))
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.partition_id, o.owner_id))
        .collect();
    assert_eq!(owners.len(), 3);
    assert_eq!(owners["2"].as_deref(), Some("owner-2"));
}

#[tokio::test]
async fn copies_across_layouts() {
    let container = fresh_container().await;
    let verbatim = store_on(
        &container,
        Some(BlobCheckpointStoreOptions {
            naming: BlobNaming::Verbatim,
            ..Default::default()
        }),
    );
    let lowercase = store_on(&container, None);
    let s = scope("$Default");
    seed(&verbatim, &s).await;
    assert!(
        positions(&lowercase, &s).await.is_empty(),
        "not visible before the copy"
    );
    let report = copy_checkpoints(
        &verbatim,
        &s,
        &lowercase,
        &s,
        &CopyOptions::default(),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(report.checkpoints.len(), 12);
    assert_eq!(
        positions(&lowercase, &s).await,
        positions(&verbatim, &s).await
    );
    // And back, into a fresh container.
    let back = store_on(
        &fresh_container().await,
        Some(BlobCheckpointStoreOptions {
            naming: BlobNaming::Verbatim,
            ..Default::default()
        }),
    );
    copy_checkpoints(&lowercase, &s, &back, &s, &CopyOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(positions(&back, &s).await, positions(&verbatim, &s).await);
}

#[cfg(feature = "table")]
#[tokio::test]
async fn copies_into_the_table_store_and_back() {
    use eventhub_checkpointstore::TableCheckpointStore;
    let blob = store_on(&fresh_container().await, None);
    let s = scope("$Default");
    seed(&blob, &s).await;
    let table = TableCheckpointStore::from_connection_string(
        &common::connection_string(),
        &common::unique_container(),
        None,
    )
    .unwrap();
    table.create_table_if_missing().await.unwrap();
    // Lower-cased names are what the blob store lists; the table keeps the caller's scope.
    let report = copy_checkpoints(&blob, &s, &table, &s, &CopyOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(report.checkpoints.len(), 12);
    assert_eq!(positions(&table, &s).await, positions(&blob, &s).await);
    let other = store_on(&fresh_container().await, None);
    copy_checkpoints(
        &table,
        &s,
        &other,
        &scope("restored"),
        &CopyOptions::default(),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(
        positions(&other, &scope("restored")).await,
        positions(&blob, &s).await
    );
}

#[tokio::test]
async fn a_failed_write_is_the_copys_error() {
    let source = store_on(&fresh_container().await, None);
    seed(&source, &scope("$Default")).await;
    let missing = store_on(&common::unique_container(), None);
    let err = copy_checkpoints(
        &source,
        &scope("$Default"),
        &missing,
        &scope("$Default"),
        &CopyOptions::default(),
        |_| {},
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::Service { status: 404, error_code: Some(code), .. } if code == "ContainerNotFound"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_copy_that_would_move_a_checkpoint_back_or_disturb_live_owners_writes_nothing() {
    let container = fresh_container().await;
    let store = store_on(&container, None);
    let (from, to) = (scope("$Default"), scope("replay"));
    seed(&store, &from).await;
    // The destination is further along on partition 4, and has a live consumer on 7.
    store
        .update_checkpoint(&to.checkpoint("4", Some("9000".into()), Some(90)))
        .await
        .unwrap();
    assert_eq!(
        store
            .claim_ownership(&[to.ownership("7", "live-consumer")])
            .await
            .unwrap()
            .len(),
        1
    );
    let before = positions(&store, &to).await;
    let report = copy_checkpoints(&store, &from, &store, &to, &CopyOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(report.outcome, CopyOutcome::Refused);
    let refusals: Vec<String> = report.refusals.iter().map(ToString::to_string).collect();
    assert_eq!(refusals.len(), 2, "{refusals:?}");
    assert_eq!(
        refusals[0],
        "partition 4: the destination is at sequence number 90 (offset 9000), the source at sequence number 4 (offset 4000); copying would move it back"
    );
    assert!(
        refusals[1].starts_with("partition 7: owned by live-consumer (claim renewed"),
        "{refusals:?}"
    );
    assert_eq!(positions(&store, &to).await, before, "nothing written");

    // Forced: written, the rewind included, and reported as overridden.
    let forced = copy_checkpoints(
        &store,
        &from,
        &store,
        &to,
        &CopyOptions {
            force: true,
            ..Default::default()
        },
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(forced.outcome, CopyOutcome::Written);
    assert_eq!(forced.overridden.len(), 2);
    assert_eq!(positions(&store, &to).await, positions(&store, &from).await);

    // Run again: everything is there already; nothing is written.
    let again = copy_checkpoints(
        &store,
        &from,
        &store,
        &to,
        &CopyOptions {
            force: true,
            ..Default::default()
        },
        |_| {},
    )
    .await
    .unwrap();
    assert!(again.checkpoints.is_empty());
    assert_eq!(again.unchanged.len(), 12);
}
