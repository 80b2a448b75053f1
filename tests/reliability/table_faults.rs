//! The fault cases of `faults.rs` for `TableCheckpointStore` (feature `table`), through the same
//! proxy in front of Azurite's table service.
//!
//! Guarantees checked: transient faults on every kind of request the table store sends (Insert
//! Entity for a new claim, Update Entity with `If-Match` for a renewal, Insert Or Replace for a
//! checkpoint, Query for a listing) are retried and the call succeeds; a claim whose response is
//! lost is reported as not won while the record names the claimant; `operation_timeout` bounds
//! every call.

use crate::faults::{checkpoint, faulted_once, statuses, GROUP, HUB, NS};
use crate::proxy::{Fault, FaultProxy, Match};
use eventhub_checkpointstore::Scope;
use eventhub_checkpointstore::ServiceOptions;
use eventhub_checkpointstore::{
    CheckpointStore, Error, Ownership, TableCheckpointStore, TableCheckpointStoreOptions,
};
use std::time::Duration;

/// A proxy in front of the Azurite under test, and a table store on a new table behind it.
async fn proxied_table_store(
    options: Option<TableCheckpointStoreOptions>,
) -> (FaultProxy, TableCheckpointStore) {
    let (proxy, store) = crate::common::proxied_table_store(options).await;
    proxy.take_seen();
    (proxy, store)
}

/// Update Entity / Insert Or Replace of one entity: `PUT /{table}(PartitionKey='…',RowKey='p')`.
fn entity(record: &str, partition: &str) -> Match {
    Match::method("PUT")
        .target(format!("%20{record}'"))
        .target(format!("RowKey='{partition}')"))
}

#[tokio::test]
async fn table_transient_faults_are_retried_and_the_call_succeeds() {
    let (proxy, store) = proxied_table_store(None).await;
    let faults = [
        Fault::Delay(Duration::from_millis(300)),
        Fault::Status {
            status: 500,
            retry_after: None,
        },
        Fault::Status {
            status: 503,
            retry_after: Some(1),
        },
        Fault::Reset,
        Fault::DropResponse,
    ];
    for (i, fault) in faults.into_iter().enumerate() {
        let partition = i.to_string();
        // A checkpoint (Insert Or Replace), first and again,
        for sequence_number in [1, 2] {
            faulted_once(
                &proxy,
                entity("Checkpoint", &partition),
                fault,
                store.update_checkpoint(&checkpoint(&partition, sequence_number)),
            )
            .await;
        }
        // a listing (Query),
        let listed = faulted_once(
            &proxy,
            Match::method("GET").target("()?"),
            fault,
            store.list_checkpoints(&Scope::new(NS, HUB, GROUP)),
        )
        .await;
        let mine = listed.iter().find(|c| c.partition_id == partition).unwrap();
        assert_eq!(mine.sequence_number, Some(2), "{fault:?}");
        if fault == Fault::DropResponse {
            continue;
        }
        // a new claim (Insert Entity),
        let won = faulted_once(
            &proxy,
            Match::method("POST").not_target("Tables"),
            fault,
            store.claim_ownership(&[Ownership::new((NS, HUB, GROUP), &partition, "me")]),
        )
        .await;
        assert_eq!(won.len(), 1, "{fault:?}: a new claim won on retry");
        // and a renewal (Update Entity, If-Match).
        let renewed = faulted_once(
            &proxy,
            entity("Ownership", &partition),
            fault,
            store.claim_ownership(&won),
        )
        .await;
        assert_eq!(renewed.len(), 1, "{fault:?}: a renewal won on retry");
        let listed = store
            .list_ownership(&Scope::new(NS, HUB, GROUP))
            .await
            .unwrap();
        let record = listed.iter().find(|o| o.partition_id == partition).unwrap();
        assert_eq!(
            (record.owner_id.as_deref(), &record.etag),
            (Some("me"), &renewed[0].etag),
            "{fault:?}"
        );
    }
}

#[tokio::test]
async fn table_claim_with_a_lost_response_is_not_won_but_names_the_claimant() {
    let (proxy, store) = proxied_table_store(None).await;
    let mine = Ownership::new((NS, HUB, GROUP), "0", "me");

    // A new claim: Insert applied (201), its response lost, the retry meets it (409).
    proxy.inject(
        Match::method("POST").not_target("Tables"),
        Fault::DropResponse,
        1,
    );
    let won = store
        .claim_ownership(std::slice::from_ref(&mine))
        .await
        .unwrap();
    assert!(won.is_empty(), "reported as won: {won:?}");
    assert_eq!(
        statuses(&proxy.take_seen()),
        [(Some(Fault::DropResponse), Some(201)), (None, Some(409))]
    );
    let listed = store
        .list_ownership(&Scope::new(NS, HUB, GROUP))
        .await
        .unwrap();
    assert_eq!(listed[0].owner_id.as_deref(), Some("me"));

    // A renewal: Update applied (204), its response lost, the retry meets it (412).
    let renewed = store.claim_ownership(&listed).await.unwrap();
    assert_eq!(renewed.len(), 1);
    proxy.take_seen();
    proxy.inject(entity("Ownership", "0"), Fault::DropResponse, 1);
    let won = store.claim_ownership(&renewed).await.unwrap();
    assert!(won.is_empty(), "reported as won: {won:?}");
    assert_eq!(
        statuses(&proxy.take_seen()),
        [(Some(Fault::DropResponse), Some(204)), (None, Some(412))]
    );
    let listed = store
        .list_ownership(&Scope::new(NS, HUB, GROUP))
        .await
        .unwrap();
    assert_eq!(listed[0].owner_id.as_deref(), Some("me"));
    assert_ne!(
        listed[0].etag, renewed[0].etag,
        "the first try's write is current"
    );
}

#[tokio::test]
async fn table_operation_timeout_bounds_every_call() {
    let timeout = Duration::from_millis(500);
    let (proxy, store) = proxied_table_store(Some(TableCheckpointStoreOptions {
        service: ServiceOptions {
            operation_timeout: Some(timeout),
            ..Default::default()
        },
    }))
    .await;
    proxy.inject(Match::any(), Fault::Hang, usize::MAX);
    let claim = [Ownership::new((NS, HUB, GROUP), "0", "me")];
    let check = checkpoint("0", 1);
    let calls: [(&str, futures::future::BoxFuture<'_, Result<(), Error>>); 5] = [
        (
            "list_ownership",
            Box::pin(async {
                store
                    .list_ownership(&Scope::new(NS, HUB, GROUP))
                    .await
                    .map(drop)
            }),
        ),
        (
            "claim_ownership",
            Box::pin(async { store.claim_ownership(&claim).await.map(drop) }),
        ),
        (
            "update_checkpoint",
            Box::pin(async { store.update_checkpoint(&check).await }),
        ),
        (
            "list_checkpoints",
            Box::pin(async {
                store
                    .list_checkpoints(&Scope::new(NS, HUB, GROUP))
                    .await
                    .map(drop)
            }),
        ),
        (
            "create_table_if_missing",
            Box::pin(async { store.create_table_if_missing().await.map(drop) }),
        ),
    ];
    for (name, call) in calls {
        // A hang guard (10x the bound); the bound itself shows in the error.
        let err = tokio::time::timeout(timeout * 10, call)
            .await
            .unwrap_or_else(|_| panic!("{name} was not bounded"))
            .expect_err(name);
        assert!(
            matches!(err, Error::Timeout { operation, timeout: t, .. } if operation == name && t == timeout),
            "{name}: {err:?}"
        );
    }
}
