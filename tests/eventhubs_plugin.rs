//! Every store of this crate called through the official processor's trait
//! (`azure_messaging_eventhubs::CheckpointStore`): the blob and table stores against Azurite, and
//! the in-memory store.

use eventhub_checkpointstore_testkit as common;

use azure_messaging_eventhubs::{
    models::{Checkpoint, Ownership},
    CheckpointStore as ProcessorStore,
};
use eventhub_checkpointstore::azure_core::{error::ErrorKind, http::Etag};
use std::sync::Arc;

const NS: &str = "plugin.servicebus.windows.net";
const HUB: &str = "hub";
const GROUP: &str = "$Default";

fn ownership(partition: &str, owner: &str, etag: Option<Etag>) -> Ownership {
    Ownership {
        fully_qualified_namespace: NS.into(),
        event_hub_name: HUB.into(),
        consumer_group: GROUP.into(),
        partition_id: partition.into(),
        owner_id: Some(owner.into()),
        etag,
        ..Default::default()
    }
}

/// What the processor holds: a trait object.
async fn processor_store() -> Arc<dyn ProcessorStore> {
    Arc::new(common::fresh_store(None).await)
}

/// The table store, on a new table.
async fn table_processor_store() -> Arc<dyn ProcessorStore> {
    let store = eventhub_checkpointstore::TableCheckpointStore::from_connection_string(
        &common::connection_string(),
        &common::unique_container(),
        None,
    )
    .unwrap();
    store.create_table_if_missing().await.unwrap();
    Arc::new(store)
}

fn memory_processor_store() -> Arc<dyn ProcessorStore> {
    Arc::new(eventhub_checkpointstore::InMemoryCheckpointStore::new())
}

#[tokio::test]
async fn claims_renews_and_loses_races_through_the_official_trait() {
    claims_renews_and_loses_races(processor_store().await).await;
    claims_renews_and_loses_races(table_processor_store().await).await;
    claims_renews_and_loses_races(memory_processor_store()).await;
}

#[tokio::test]
async fn checkpoints_round_trip_through_the_official_trait() {
    checkpoints_round_trip(processor_store().await).await;
    checkpoints_round_trip(table_processor_store().await).await;
    checkpoints_round_trip(memory_processor_store()).await;
}

async fn claims_renews_and_loses_races(store: Arc<dyn ProcessorStore>) {
    let won = store
        .claim_ownership(&[ownership("0", "a", None), ownership("1", "a", None)])
        .await
        .unwrap();
    assert_eq!(won.len(), 2);
    let first = won[0].clone();
    assert_eq!(first.partition_id, "0");
    assert_eq!(first.event_hub_name, HUB);
    assert_eq!(first.owner_id.as_deref(), Some("a"));
    assert!(first.etag.is_some() && first.last_modified_time.is_some());

    // A new claim on an existing partition loses, as does one with a stale etag; neither is an error.
    let lost_new = store
        .claim_ownership(&[ownership("0", "b", None)])
        .await
        .unwrap();
    assert!(lost_new.is_empty(), "{lost_new:?}");
    let taken = store
        .claim_ownership(&[ownership("0", "b", first.etag.clone())])
        .await
        .unwrap();
    assert_eq!(taken.len(), 1, "b takes partition 0 with the current etag");
    let stale = store
        .claim_ownership(&[ownership("0", "a", first.etag.clone())])
        .await
        .unwrap();
    assert!(stale.is_empty(), "a stale etag must lose: {stale:?}");

    let mut listed = store.list_ownerships(NS, HUB, GROUP).await.unwrap();
    listed.sort_by(|x, y| x.partition_id.cmp(&y.partition_id));
    let owners: Vec<_> = listed
        .iter()
        .map(|o| (o.partition_id.as_str(), o.owner_id.as_deref()))
        .collect();
    assert_eq!(owners, [("0", Some("b")), ("1", Some("a"))]);
    assert_eq!(listed[0].etag, taken[0].etag);

    // The processor relinquishes with `owner_id: None`; it lists back as unowned.
    let released = store
        .claim_ownership(&[Ownership {
            owner_id: None,
            ..listed[1].clone()
        }])
        .await
        .unwrap();
    assert_eq!(released.len(), 1);
    let listed = store.list_ownerships(NS, HUB, GROUP).await.unwrap();
    assert!(listed
        .iter()
        .any(|o| o.partition_id == "1" && o.owner_id.is_none()));
}

/// Checkpoints written through the processor's trait are listed back; one older than the
/// stored one (from a processor that lost the partition and still checkpoints) is not written.
async fn checkpoints_round_trip(store: Arc<dyn ProcessorStore>) {
    for (partition, seq) in [("0", 10), ("1", 20), ("0", 11), ("0", 5)] {
        store
            .update_checkpoint(Checkpoint {
                fully_qualified_namespace: NS.into(),
                event_hub_name: HUB.into(),
                consumer_group: GROUP.into(),
                partition_id: partition.into(),
                offset: Some(format!("{}", seq * 100)),
                sequence_number: Some(seq),
            })
            .await
            .unwrap();
    }
    let mut listed = store.list_checkpoints(NS, HUB, GROUP).await.unwrap();
    listed.sort_by(|x, y| x.partition_id.cmp(&y.partition_id));
    let got: Vec<_> = listed
        .iter()
        .map(|c| {
            (
                c.partition_id.as_str(),
                c.offset.as_deref(),
                c.sequence_number,
            )
        })
        .collect();
    assert_eq!(
        got,
        [("0", Some("1100"), Some(11)), ("1", Some("2000"), Some(20))]
    );
    assert!(listed
        .iter()
        .all(|c| c.event_hub_name == HUB && c.fully_qualified_namespace == NS));
}

#[tokio::test]
async fn service_errors_reach_the_processor_with_status_and_code() {
    // A container that does not exist: the processor sees 404 ContainerNotFound, not an empty list.
    let store: Arc<dyn ProcessorStore> =
        Arc::new(common::store_on(&common::unique_container(), None));
    let err = store.list_ownerships(NS, HUB, GROUP).await.unwrap_err();
    assert_eq!(err.http_status(), Some(404.into()), "{err}");
    match err.kind() {
        ErrorKind::HttpResponse { error_code, .. } => {
            assert_eq!(error_code.as_deref(), Some("ContainerNotFound"))
        }
        other => panic!("{other:?}"),
    }
    // Bad input is refused before any request, as an error the processor can log.
    let err = store
        .claim_ownership(&[ownership("", "a", None)])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("partition"), "{err}");
}
