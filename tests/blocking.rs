//! `blocking::BlobCheckpointStore` against Azurite, from plain threads (no async runtime).

use eventhub_checkpointstore::Scope;
use eventhub_checkpointstore_testkit as common;

use eventhub_checkpointstore::{
    blocking::BlobCheckpointStore, Checkpoint, ConnectionString, Error, Ownership, SasToken,
    SharedKeyCredential, StorageCredential, DEVELOPMENT_ACCOUNT_KEY, DEVELOPMENT_ACCOUNT_NAME,
};

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
    assert!(store
        .list_ownership(&Scope::new(NS, HUB, GROUP))
        .unwrap()
        .is_empty());

    let won = store
        .claim_ownership(&[
            Ownership::new((NS, HUB, GROUP), "0", "a"),
            Ownership::new((NS, HUB, GROUP), "1", "a"),
        ])
        .unwrap();
    assert_eq!(won.len(), 2);
    // Lost races are left out, as in the async store.
    let lost = store
        .claim_ownership(&[Ownership::new((NS, HUB, GROUP), "0", "b")])
        .unwrap();
    assert!(lost.is_empty());
    let renewed = store.claim_ownership(&won[..1]).unwrap();
    assert_ne!(renewed[0].etag, won[0].etag);

    let listed = store.list_ownership(&Scope::new(NS, HUB, GROUP)).unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|o| o.owner_id.as_deref() == Some("a")));

    // The second update replaces the first.
    for (offset, sequence_number) in [("10", 1), ("20", 2)] {
        let checkpoint = Checkpoint::new(
            (NS, HUB, GROUP),
            "0",
            Some(offset.into()),
            Some(sequence_number),
        );
        store.update_checkpoint(&checkpoint).unwrap();
    }
    let checkpoints = store.list_checkpoints(&Scope::new(NS, HUB, GROUP)).unwrap();
    assert_eq!(
        checkpoints,
        [Checkpoint::new(
            (NS, HUB, GROUP),
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
                            (NS, HUB, GROUP),
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
    let mut checkpoints = store.list_checkpoints(&Scope::new(NS, HUB, GROUP)).unwrap();
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
        let result = store.list_checkpoints(&Scope::new(NS, HUB, GROUP));
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
    let err = store
        .list_checkpoints(&Scope::new(NS, HUB, GROUP))
        .unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");
    assert_eq!(err.error_code(), Some("ContainerNotFound"));
}

/// Every constructor: `new` with a key, a SAS (as credential and in the URL) and `from_async`
/// work against Azurite; bad arguments are typed refusals; `Debug` shows no key or signature.
#[test]
fn constructors_work_and_debug_shows_no_secret() {
    let connection = ConnectionString::parse(&common::connection_string()).unwrap();
    let endpoint = connection.blob_endpoint().unwrap().as_str().to_owned();
    let key = SharedKeyCredential::new(DEVELOPMENT_ACCOUNT_NAME, DEVELOPMENT_ACCOUNT_KEY).unwrap();
    let sas = common::account_sas(&connection);
    let signature = url::form_urlencoded::parse(sas.as_bytes())
        .find(|(k, _)| k == "sig")
        .unwrap()
        .1
        .into_owned();
    let container = common::unique_container();
    let stores = [
        BlobCheckpointStore::new(&endpoint, &container, key.clone(), None).unwrap(),
        BlobCheckpointStore::new(&endpoint, &container, SasToken::new(&sas).unwrap(), None)
            .unwrap(),
        BlobCheckpointStore::new(
            &format!("{endpoint}?{sas}"),
            &container,
            StorageCredential::Anonymous,
            None,
        )
        .unwrap(),
        BlobCheckpointStore::from_async(
            eventhub_checkpointstore::BlobCheckpointStore::from_connection_string(
                &common::connection_string(),
                &container,
                None,
            )
            .unwrap(),
        )
        .unwrap(),
    ];
    stores[0].create_container_if_missing().unwrap();
    for (i, store) in stores.iter().enumerate() {
        let partition = i.to_string();
        store
            .update_checkpoint(&Checkpoint::new(
                (NS, HUB, GROUP),
                &partition,
                Some("1".into()),
                Some(1),
            ))
            .unwrap_or_else(|e| panic!("store {i}: {e}"));
        let shown = format!("{store:?}");
        for secret in [DEVELOPMENT_ACCOUNT_KEY, signature.as_str(), sas.as_str()] {
            assert!(!shown.contains(secret), "store {i} shows a secret: {shown}");
        }
        assert!(shown.contains(&container), "{shown}");
    }
    assert_eq!(
        stores[0]
            .list_checkpoints(&Scope::new(NS, HUB, GROUP))
            .unwrap()
            .len(),
        stores.len()
    );

    for err in [
        BlobCheckpointStore::new("not a url", &container, key.clone(), None).unwrap_err(),
        BlobCheckpointStore::new(&endpoint, "Bad_Name", key, None).unwrap_err(),
        BlobCheckpointStore::from_connection_string(
            &format!("AccountName=a;AccountKey={DEVELOPMENT_ACCOUNT_KEY};Bogus"),
            &container,
            None,
        )
        .unwrap_err(),
    ] {
        assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
        assert!(!format!("{err} {err:?}").contains(DEVELOPMENT_ACCOUNT_KEY));
    }
}
