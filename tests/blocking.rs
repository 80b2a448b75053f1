//! `blocking::BlobCheckpointStore` against Azurite, from plain threads (no async runtime).

mod common;

use eventhub_checkpointstore::{blocking::BlobCheckpointStore, Checkpoint, Error, Ownership};

const NS: &str = "blocking.servicebus.windows.net";
const HUB: &str = "hub";
const GROUP: &str = "$Default";

fn fresh_store() -> BlobCheckpointStore {
    let store = BlobCheckpointStore::from_connection_string(
        &common::connection_string(),
        &common::unique_container(),
        None,
    )
    .unwrap();
    assert!(
        store.create_container_if_missing().unwrap(),
        "a new container"
    );
    assert!(
        !store.create_container_if_missing().unwrap(),
        "now it exists"
    );
    store
}

#[test]
fn all_four_operations_without_a_runtime() {
    let store = fresh_store();
    assert!(store.list_ownership(NS, HUB, GROUP).unwrap().is_empty());

    let won = store
        .claim_ownership(&[
            Ownership::new(NS, HUB, GROUP, "0", "a"),
            Ownership::new(NS, HUB, GROUP, "1", "a"),
        ])
        .unwrap();
    assert_eq!(won.len(), 2);
    // Lost races are left out, as in the async store.
    let lost = store
        .claim_ownership(&[Ownership::new(NS, HUB, GROUP, "0", "b")])
        .unwrap();
    assert!(lost.is_empty());
    let renewed = store.claim_ownership(&won[..1]).unwrap();
    assert_ne!(renewed[0].etag, won[0].etag);

    let listed = store.list_ownership(NS, HUB, GROUP).unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|o| o.owner_id.as_deref() == Some("a")));

    // The second update replaces the first.
    for (offset, sequence_number) in [("10", 1), ("20", 2)] {
        let checkpoint = Checkpoint::new(
            NS,
            HUB,
            GROUP,
            "0",
            Some(offset.into()),
            Some(sequence_number),
        );
        store.update_checkpoint(&checkpoint).unwrap();
    }
    let checkpoints = store.list_checkpoints(NS, HUB, GROUP).unwrap();
    assert_eq!(
        checkpoints,
        [Checkpoint::new(
            NS,
            HUB,
            GROUP,
            "0",
            Some("20".into()),
            Some(2)
        )]
    );
}

#[test]
fn clones_work_from_many_threads_at_once() {
    let store = fresh_store();
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..5 {
                    store
                        .update_checkpoint(&Checkpoint::new(
                            NS,
                            HUB,
                            GROUP,
                            t.to_string(),
                            None,
                            Some(i),
                        ))
                        .unwrap();
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    let mut checkpoints = store.list_checkpoints(NS, HUB, GROUP).unwrap();
    checkpoints.sort_by(|a, b| a.partition_id.cmp(&b.partition_id));
    assert_eq!(checkpoints.len(), 8);
    assert!(checkpoints.iter().all(|c| c.sequence_number == Some(4)));
}

#[test]
fn inside_an_async_runtime_it_fails_clearly_instead_of_deadlocking() {
    let store = fresh_store();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (result, store) = runtime.block_on(async move {
        let result = store.list_checkpoints(NS, HUB, GROUP);
        (result, store)
    });
    match result {
        Err(Error::BlockingInAsyncContext) => {}
        other => panic!("expected BlockingInAsyncContext, got {other:?}"),
    }
    // Dropping the last clone inside a runtime is fine too (tokio forbids blocking drops there).
    runtime.block_on(async move { drop(store) });
}

#[test]
fn service_errors_keep_status_and_code() {
    let store = BlobCheckpointStore::from_connection_string(
        &common::connection_string(),
        &common::unique_container(),
        None,
    )
    .unwrap();
    let err = store.list_checkpoints(NS, HUB, GROUP).unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");
    assert_eq!(err.error_code(), Some("ContainerNotFound"));
}
