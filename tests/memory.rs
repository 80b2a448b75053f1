//! `InMemoryCheckpointStore`: the exported conformance suite, its clock, and its use without a
//! Tokio runtime and through the official processor's trait.

use async_trait::async_trait;
use eventhub_checkpointstore::azure_core::time::{Duration, OffsetDateTime};
use eventhub_checkpointstore::conformance;
use eventhub_checkpointstore::Scope;
use eventhub_checkpointstore::{Checkpoint, CheckpointStore, InMemoryCheckpointStore, Ownership};
use std::sync::{Arc, Mutex};

/// One store per test; every client is another handle on it (clones share the records), as two
/// processes share a container.
struct MemoryBackend(InMemoryCheckpointStore);

#[async_trait]
impl conformance::Fixture for MemoryBackend {
    async fn client(&self) -> Arc<dyn CheckpointStore> {
        Arc::new(self.0.clone())
    }
}

eventhub_checkpointstore::conformance_suite!(async {
    MemoryBackend(InMemoryCheckpointStore::new())
});

#[test]
fn last_modified_comes_from_the_stores_clock_and_any_executor_polls_it() {
    let now = Arc::new(Mutex::new(
        OffsetDateTime::UNIX_EPOCH + Duration::days(20_000),
    ));
    let clock = now.clone();
    let store = InMemoryCheckpointStore::with_clock(move || *clock.lock().unwrap());
    futures::executor::block_on(async {
        let won = store
            .claim_ownership(&[Ownership::new(("ns", "eh", "cg"), "0", "a")])
            .await
            .unwrap();
        let first = won[0].last_modified.unwrap();
        assert_eq!(first, *now.lock().unwrap());
        *now.lock().unwrap() += Duration::minutes(5);
        let renewed = store.claim_ownership(&won).await.unwrap();
        assert_eq!(renewed[0].last_modified, Some(first + Duration::minutes(5)));
        let listed = store
            .list_ownership(&Scope::new("ns", "eh", "cg"))
            .await
            .unwrap();
        assert_eq!(listed, renewed);
        store
            .update_checkpoint(&Checkpoint::new(("ns", "eh", "cg"), "0", None, Some(1)))
            .await
            .unwrap();
        assert_eq!(
            store
                .list_checkpoints(&Scope::new("ns", "eh", "cg"))
                .await
                .unwrap()
                .len(),
            1
        );
    });
    let shown = format!("{store:?}");
    assert!(shown.starts_with("InMemoryCheckpointStore"), "{shown}");
    assert!(shown.contains("records: 2"), "{shown}");
}

#[test]
fn names_are_case_sensitive() {
    futures::executor::block_on(async {
        let store = InMemoryCheckpointStore::new();
        store
            .update_checkpoint(&Checkpoint::new(
                ("NS", "Hub", "$Default"),
                "0",
                None,
                Some(1),
            ))
            .await
            .unwrap();
        assert!(store
            .list_checkpoints(&Scope::new("ns", "hub", "$default"))
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            store
                .list_checkpoints(&Scope::new("NS", "Hub", "$Default"))
                .await
                .unwrap()[0]
                .scope
                .consumer_group,
            "$Default"
        );
    });
}

#[test]
fn a_listing_reports_the_stores_clock_as_the_service_time() {
    let then = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
    let store = InMemoryCheckpointStore::with_clock(move || then);
    let (_, time) = futures::executor::block_on(
        store.list_ownership_with_service_time(&Scope::new("ns", "eh", "cg")),
    )
    .unwrap();
    let time = time.unwrap();
    assert!(time.now() - then < Duration::seconds(1));
    // This host's clock is decades ahead of that one.
    assert!(time.local_clock_offset() > Duration::days(365));
}
