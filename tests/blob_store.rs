//! `BlobCheckpointStore` against Azurite: the wire format shared with the other SDKs, what the
//! store sends, authentication paths and failure modes. The backend-independent behaviour is in
//! the conformance suite.

use eventhub_checkpointstore::Scope;
use eventhub_checkpointstore::ServiceOptions;
use eventhub_checkpointstore_testkit as common;

use common::{account_sas, fresh_store, put_raw, store_on, unique_container, Recorder};
use eventhub_checkpointstore::azure_core::http::{ClientOptions, Etag, RetryOptions};
use eventhub_checkpointstore::azure_storage_blob::models::{
    BlobContainerClientListBlobsOptions, BlobType, ListBlobsIncludeItem,
};
use eventhub_checkpointstore::{
    BlobCheckpointStore, BlobCheckpointStoreOptions, Checkpoint, CheckpointStore, ConnectionString,
    Error, Ownership, SasToken, SharedKeyCredential, StorageCredential, DEVELOPMENT_ACCOUNT_KEY,
};
use futures::TryStreamExt;
use std::collections::{BTreeMap, HashMap};

const NS: &str = "myns.servicebus.windows.net";
const EH: &str = "telemetry";
const CG: &str = "$default";

/// Every blob in the store's container: name → (metadata, length, type), as the service holds it.
async fn raw_blobs(
    store: &BlobCheckpointStore,
) -> BTreeMap<String, (HashMap<String, String>, Option<u64>, Option<BlobType>)> {
    let options = BlobContainerClientListBlobsOptions {
        include: Some(vec![ListBlobsIncludeItem::Metadata]),
        ..Default::default()
    };
    let mut pages = store
        .container_client()
        .list_blobs(Some(options))
        .unwrap()
        .into_pages();
    let mut blobs = BTreeMap::new();
    while let Some(page) = pages.try_next().await.unwrap() {
        for item in page.into_model().unwrap().blob_items {
            let properties = item.properties.unwrap_or_default();
            blobs.insert(
                item.name.unwrap(),
                (
                    item.metadata.and_then(|m| m.values).unwrap_or_default(),
                    properties.content_length,
                    properties.blob_type,
                ),
            );
        }
    }
    blobs
}

fn meta(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn records_are_lower_cased_empty_block_blobs_with_the_peers_metadata() {
    let store = fresh_store(None).await;
    let (ns, eh, cg) = ("MyNs.ServiceBus.Windows.Net", "Telemetry", "$Default");
    let won = store
        .claim_ownership(&[Ownership::new((ns, eh, cg), "0", "owner-1")])
        .await
        .unwrap();
    assert_eq!(won.len(), 1);
    store
        .update_checkpoint(&Checkpoint::new(
            (ns, eh, cg),
            "0",
            Some("1024".into()),
            Some(7),
        ))
        .await
        .unwrap();

    let blobs = raw_blobs(&store).await;
    let names: Vec<&str> = blobs.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "myns.servicebus.windows.net/telemetry/$default/checkpoint/0",
            "myns.servicebus.windows.net/telemetry/$default/ownership/0",
        ]
    );
    let (checkpoint_meta, checkpoint_len, checkpoint_type) = &blobs[names[0]];
    assert_eq!(
        checkpoint_meta,
        &meta(&[("offset", "1024"), ("sequencenumber", "7")])
    );
    let (ownership_meta, ownership_len, ownership_type) = &blobs[names[1]];
    assert_eq!(ownership_meta, &meta(&[("ownerid", "owner-1")]));
    for (len, kind) in [
        (checkpoint_len, checkpoint_type),
        (ownership_len, ownership_type),
    ] {
        assert_eq!(*len, Some(0));
        assert_eq!(*kind, Some(BlobType::BlockBlob));
    }

    // Listing with any casing finds the records and reports the caller's names.
    for (ns, eh, cg) in [(ns, eh, cg), (NS, EH, CG)] {
        let listed = store.list_ownership(&Scope::new(ns, eh, cg)).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].scope, Scope::new(ns, eh, cg));
        assert_eq!(
            store
                .list_checkpoints(&Scope::new(ns, eh, cg))
                .await
                .unwrap()
                .len(),
            1
        );
    }
}

#[tokio::test]
async fn relinquish_writes_an_empty_ownerid() {
    let store = fresh_store(None).await;
    let won = store
        .claim_ownership(&[Ownership::new((NS, EH, CG), "0", "owner-1")])
        .await
        .unwrap();
    let released = Ownership {
        owner_id: None,
        ..won[0].clone()
    };
    assert_eq!(store.claim_ownership(&[released]).await.unwrap().len(), 1);
    let blobs = raw_blobs(&store).await;
    assert_eq!(
        blobs[&format!("{NS}/{EH}/{CG}/ownership/0")].0,
        meta(&[("ownerid", "")])
    );
}

#[tokio::test]
async fn reads_records_of_other_sdks_and_tolerates_malformed_ones() {
    let store = fresh_store(None).await;
    let own = |p: &str| format!("{NS}/{EH}/{CG}/ownership/{p}");
    let cp = |p: &str| format!("{NS}/{EH}/{CG}/checkpoint/{p}");
    put_raw(&store, &own("0"), &[("ownerid", "python-owner")]).await;
    put_raw(&store, &own("1"), &[]).await; // missing ownerid: Python 1.2.0 crashes here
    put_raw(&store, &own("2"), &[("ownerid", "")]).await;
    put_raw(&store, &own("3/nested"), &[("ownerid", "x")]).await;
    put_raw(&store, &own("dir"), &[("hdi_isfolder", "true")]).await;
    put_raw(
        &store,
        &format!("{NS}/{EH}/{CG}/ownershipx/9"),
        &[("ownerid", "x")],
    )
    .await;
    put_raw(
        &store,
        &cp("0"),
        &[("offset", "1"), ("sequencenumber", "abc")],
    )
    .await;
    put_raw(&store, &cp("1"), &[("offset", "2")]).await; // missing sequencenumber: Python crashes
    put_raw(&store, &cp("2"), &[("sequencenumber", "")]).await; // empty: Python crashes
    put_raw(
        &store,
        &cp("3"),
        &[("offset", "x"), ("sequencenumber", "99999999999999999999")],
    )
    .await;
    put_raw(
        &store,
        &cp("4"),
        &[("offset", "geo:5:12"), ("sequencenumber", "-3")],
    )
    .await;

    let owners: BTreeMap<String, Option<String>> = store
        .list_ownership(&Scope::new(NS, EH, CG))
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.partition_id, o.owner_id))
        .collect();
    assert_eq!(
        owners,
        BTreeMap::from([
            ("0".to_owned(), Some("python-owner".to_owned())),
            ("1".to_owned(), None),
            ("2".to_owned(), None),
        ])
    );
    assert_eq!(
        common::positions(&store, &Scope::new(NS, EH, CG)).await,
        BTreeMap::from([
            ("0".to_owned(), (Some("1".to_owned()), None)),
            ("1".to_owned(), (Some("2".to_owned()), None)),
            ("2".to_owned(), (None, None)),
            ("3".to_owned(), (Some("x".to_owned()), None)),
            ("4".to_owned(), (Some("geo:5:12".to_owned()), Some(-3))),
        ])
    );
    // A record another SDK wrote can be claimed with the etag we listed.
    let listed = store.list_ownership(&Scope::new(NS, EH, CG)).await.unwrap();
    let python_owned = listed.into_iter().find(|o| o.partition_id == "0").unwrap();
    let takeover = Ownership {
        owner_id: Some("rust-owner".into()),
        ..python_owned
    };
    assert_eq!(store.claim_ownership(&[takeover]).await.unwrap().len(), 1);
}

#[tokio::test]
async fn api_versions_2017_11_09_and_2019_07_07_work_and_are_sent() {
    for version in [None, Some("2017-11-09"), Some("2019-07-07")] {
        let recorder = Recorder::default();
        let mut options = BlobCheckpointStoreOptions::default();
        if let Some(version) = version {
            options.service.api_version = Some(version.to_owned());
        }
        let store = fresh_store(Some(recorder.install(options))).await;
        let won = store
            .claim_ownership(&[Ownership::new((NS, EH, CG), "0", "owner-1")])
            .await
            .unwrap();
        assert_eq!(won.len(), 1, "{version:?}: new claim");
        assert_eq!(
            store.claim_ownership(&won).await.unwrap().len(),
            1,
            "{version:?}: renewal"
        );
        assert!(
            store.claim_ownership(&won).await.unwrap().is_empty(),
            "{version:?}: stale etag"
        );
        for seq in [1, 2] {
            store
                .update_checkpoint(&Checkpoint::new(
                    (NS, EH, CG),
                    "0",
                    Some(seq.to_string()),
                    Some(seq),
                ))
                .await
                .unwrap();
        }
        assert_eq!(
            store
                .list_ownership(&Scope::new(NS, EH, CG))
                .await
                .unwrap()
                .len(),
            1
        );
        let checkpoints = store
            .list_checkpoints(&Scope::new(NS, EH, CG))
            .await
            .unwrap();
        assert_eq!(checkpoints[0].sequence_number, Some(2), "{version:?}");

        let sent = recorder.take();
        assert!(sent.len() >= 8, "{version:?}: {sent:?}");
        let expected = version.unwrap_or("2019-07-07");
        for request in &sent {
            assert_eq!(
                request.version.as_deref(),
                Some(expected),
                "{} {}",
                request.method,
                request.url
            );
        }
    }
}

#[tokio::test]
async fn etags_are_one_form_and_accepted_in_either() {
    let store = fresh_store(None).await;
    let won = store
        .claim_ownership(&[Ownership::new((NS, EH, CG), "0", "owner-1")])
        .await
        .unwrap();
    let etag = won[0].etag.clone().unwrap();
    assert!(
        etag.as_ref().starts_with('"') && etag.as_ref().ends_with('"'),
        "{etag}"
    );
    let listed = store.list_ownership(&Scope::new(NS, EH, CG)).await.unwrap();
    assert_eq!(
        listed[0].etag.as_ref(),
        Some(&etag),
        "listing and response header agree"
    );
    let unquoted = Ownership {
        etag: Some(Etag::from(etag.as_ref().trim_matches('"'))),
        ..listed[0].clone()
    };
    assert_eq!(store.claim_ownership(&[unquoted]).await.unwrap().len(), 1);
}

async fn exercise(store: &BlobCheckpointStore, what: &str) {
    store
        .create_container_if_missing()
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let won = store
        .claim_ownership(&[Ownership::new((NS, EH, CG), "0", "owner-1")])
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(won.len(), 1, "{what}");
    store
        .update_checkpoint(&Checkpoint::new(
            (NS, EH, CG),
            "0",
            Some("1".into()),
            Some(1),
        ))
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(
        store
            .list_ownership(&Scope::new(NS, EH, CG))
            .await
            .unwrap()
            .len(),
        1,
        "{what}"
    );
    assert_eq!(
        store
            .list_checkpoints(&Scope::new(NS, EH, CG))
            .await
            .unwrap()
            .len(),
        1,
        "{what}"
    );
}

#[tokio::test]
async fn shared_access_signatures_work_from_connection_string_url_and_credential() {
    let connection = ConnectionString::parse(&common::connection_string()).unwrap();
    let endpoint = connection
        .blob_endpoint()
        .unwrap()
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    let sas = account_sas(&connection);

    let via_connection_string = BlobCheckpointStore::from_connection_string(
        &format!("BlobEndpoint={endpoint};SharedAccessSignature={sas}"),
        &unique_container(),
        None,
    )
    .unwrap();
    exercise(&via_connection_string, "SAS connection string").await;

    let via_url = BlobCheckpointStore::new(
        &format!("{endpoint}?{sas}"),
        &unique_container(),
        StorageCredential::Anonymous,
        None,
    )
    .unwrap();
    exercise(&via_url, "SAS in the account URL").await;

    let via_credential = BlobCheckpointStore::new(
        &endpoint,
        &unique_container(),
        SasToken::new(&sas).unwrap(),
        None,
    )
    .unwrap();
    exercise(&via_credential, "SAS credential").await;

    let signature = url::form_urlencoded::parse(sas.as_bytes())
        .find(|(k, _)| k == "sig")
        .unwrap()
        .1
        .into_owned();
    for store in [&via_connection_string, &via_url, &via_credential] {
        let shown = format!("{store:?}");
        assert!(
            !shown.contains(&signature) && shown.contains("sig=REDACTED"),
            "{shown}"
        );
    }
}

#[tokio::test]
async fn explicit_shared_key_credential_works() {
    let connection = ConnectionString::parse(&common::connection_string()).unwrap();
    let key = SharedKeyCredential::new("devstoreaccount1", DEVELOPMENT_ACCOUNT_KEY).unwrap();
    let store = BlobCheckpointStore::new(
        connection.blob_endpoint().unwrap().as_str(),
        &unique_container(),
        key,
        None,
    )
    .unwrap();
    exercise(&store, "explicit shared key").await;
    assert!(!format!("{store:?}").contains(DEVELOPMENT_ACCOUNT_KEY));
}

/// `UseDevelopmentStorage=true` means 127.0.0.1:10000. This test forwards that port to the Azurite
/// under test, and proves it reached that Azurite: what it writes through the shorthand is read
/// back through the Azurite under test. If the port is taken (a developer's own Azurite, say), the
/// test fails saying so rather than pass against the wrong emulator.
#[tokio::test]
async fn development_storage_shorthand_reaches_azurite() {
    let connection = ConnectionString::parse(&common::connection_string()).unwrap();
    let target = format!(
        "{}:{}",
        connection.blob_endpoint().unwrap().host_str().unwrap(),
        connection.blob_endpoint().unwrap().port().unwrap()
    );
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:10000").await {
        Ok(listener) => listener,
        Err(e) => panic!(
            "this test forwards 127.0.0.1:10000 to the Azurite under test, but cannot listen \
             there ({e}); stop whatever holds the port (often an Azurite of your own) and rerun"
        ),
    };
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                let mut outbound = tokio::net::TcpStream::connect(target).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    let container = unique_container();
    let store =
        BlobCheckpointStore::from_connection_string("UseDevelopmentStorage=true", &container, None)
            .unwrap();
    exercise(&store, "UseDevelopmentStorage=true").await;
    let under_test = store_on(&container, None);
    assert_eq!(
        under_test
            .list_checkpoints(&Scope::new(NS, EH, CG))
            .await
            .unwrap(),
        store
            .list_checkpoints(&Scope::new(NS, EH, CG))
            .await
            .unwrap(),
        "the shorthand reached the Azurite under test"
    );
    assert!(!under_test
        .list_checkpoints(&Scope::new(NS, EH, CG))
        .await
        .unwrap()
        .is_empty());
}

/// A lease on an ownership blob (taken by an operator or another tool) makes the service answer
/// 412 `LeaseIdMissing`: nobody else won that record, so it is a failed claim, not a lost race.
/// Alone, the claim fails with that error; in a batch beside a claim that works, the call returns
/// what was won and logs the failure at WARN. The record is left as it was.
#[tokio::test]
async fn a_lease_on_an_ownership_blob_is_a_failed_claim_not_a_lost_race() {
    let store = fresh_store(None).await;
    let first = store
        .claim_ownership(&[
            Ownership::new((NS, EH, CG), "0", "owner-1"),
            Ownership::new((NS, EH, CG), "1", "owner-1"),
        ])
        .await
        .unwrap();
    assert_eq!(first.len(), 2);
    let blob = format!("{NS}/{EH}/{}/ownership/0", CG.to_lowercase());
    store
        .blob_client(&blob)
        .unwrap()
        .acquire_lease(-1, None)
        .await
        .expect("an infinite lease through the REST API");

    let err = store
        .claim_ownership(&first[..1])
        .await
        .expect_err("a leased record cannot be claimed, and that is not a lost race");
    assert_eq!(
        (err.status(), err.error_code()),
        (Some(412), Some("LeaseIdMissing")),
        "{err}"
    );

    let (result, log) = common::with_warnings(store.claim_ownership(&first)).await;
    let won = result.expect("the other claim was won");
    assert_eq!(
        won.iter()
            .map(|o| o.partition_id.as_str())
            .collect::<Vec<_>>(),
        ["1"]
    );
    assert!(
        log.contains("WARN")
            && log.contains("ownership claim failed")
            && log.contains("partition_id=0")
            && log.contains("LeaseIdMissing"),
        "{log}"
    );
    assert!(!log.contains("partition_id=1"), "{log}");

    let listed = store.list_ownership(&Scope::new(NS, EH, CG)).await.unwrap();
    let leased = listed.iter().find(|o| o.partition_id == "0").unwrap();
    assert_eq!(
        (leased.owner_id.as_deref(), &leased.etag),
        (Some("owner-1"), &first[0].etag),
        "the leased record is untouched"
    );
}

fn no_retries() -> BlobCheckpointStoreOptions {
    BlobCheckpointStoreOptions {
        service: ServiceOptions {
            client_options: ClientOptions {
                retry: RetryOptions::none(),
                ..Default::default()
            },
            ..Default::default()
        },
        ..Default::default()
    }
}

#[tokio::test]
async fn a_wrong_key_is_a_403_service_error_that_does_not_show_the_key() {
    let container = common::fresh_container().await;
    let good = store_on(&container, None);
    let wrong_key = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ==";
    let endpoint = ConnectionString::parse(&common::connection_string())
        .unwrap()
        .blob_endpoint()
        .unwrap()
        .clone();
    let store = BlobCheckpointStore::from_connection_string(
        &format!("AccountName=devstoreaccount1;AccountKey={wrong_key};BlobEndpoint={endpoint}"),
        &container,
        Some(no_retries()),
    )
    .unwrap();

    let claim = store
        .claim_ownership(&[Ownership::new((NS, EH, CG), "0", "owner-1")])
        .await;
    let errors = [
        claim.expect_err("a claim that failed with 403 is not a lost race"),
        store
            .list_ownership(&Scope::new(NS, EH, CG))
            .await
            .unwrap_err(),
        store
            .update_checkpoint(&Checkpoint::new(
                (NS, EH, CG),
                "0",
                Some("1".into()),
                Some(1),
            ))
            .await
            .unwrap_err(),
    ];
    for err in errors {
        assert_eq!(err.status(), Some(403), "{err:?}");
        assert!(err.error_code().is_some(), "{err:?}");
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains(wrong_key) && !shown.contains(DEVELOPMENT_ACCOUNT_KEY),
            "{shown}"
        );
    }
    assert!(
        good.list_ownership(&Scope::new(NS, EH, CG))
            .await
            .unwrap()
            .is_empty(),
        "nothing was written"
    );
}

#[tokio::test]
async fn a_missing_container_is_a_404_for_every_operation() {
    let store = store_on(&unique_container(), None);
    let errors = [
        store
            .list_ownership(&Scope::new(NS, EH, CG))
            .await
            .unwrap_err(),
        store
            .list_checkpoints(&Scope::new(NS, EH, CG))
            .await
            .unwrap_err(),
        store
            .claim_ownership(&[Ownership::new((NS, EH, CG), "0", "owner-1")])
            .await
            .expect_err("a claim on a missing container is not a lost race"),
        store
            .update_checkpoint(&Checkpoint::new(
                (NS, EH, CG),
                "0",
                Some("1".into()),
                Some(1),
            ))
            .await
            .unwrap_err(),
    ];
    for err in errors {
        assert!(matches!(err, Error::Service { status: 404, .. }), "{err:?}");
        assert_eq!(err.error_code(), Some("ContainerNotFound"), "{err:?}");
    }
    assert!(store.create_container_if_missing().await.unwrap());
    assert!(!store.create_container_if_missing().await.unwrap());
    assert!(store
        .list_ownership(&Scope::new(NS, EH, CG))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_transport_error() {
    let port = common::unused_port();
    let key = SharedKeyCredential::new("devstoreaccount1", DEVELOPMENT_ACCOUNT_KEY).unwrap();
    let store = BlobCheckpointStore::new(
        &format!("http://127.0.0.1:{port}/devstoreaccount1"),
        "checkpoints",
        key,
        Some(no_retries()),
    )
    .unwrap();
    let err = store
        .list_ownership(&Scope::new(NS, EH, CG))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains(DEVELOPMENT_ACCOUNT_KEY));
}

/// With the pipeline's default retries: a wrong key and a missing container fail at once (not
/// retried), a refused connection is retried until `operation_timeout`, whose error names it.
#[tokio::test]
async fn failures_are_clear_typed_errors_within_the_operation_timeout() {
    let timeout = std::time::Duration::from_secs(2);
    let options = || {
        Some(BlobCheckpointStoreOptions {
            service: ServiceOptions {
                operation_timeout: Some(timeout),
                ..Default::default()
            },
            ..Default::default()
        })
    };
    let endpoint = ConnectionString::parse(&common::connection_string())
        .unwrap()
        .blob_endpoint()
        .unwrap()
        .clone();
    let wrong_key = BlobCheckpointStore::from_connection_string(
        &format!("AccountName=devstoreaccount1;AccountKey=d3Jvbmc=;BlobEndpoint={endpoint}"),
        &common::fresh_container().await,
        options(),
    )
    .unwrap();
    let missing = store_on(&unique_container(), options());
    let port = common::unused_port();
    let refused = BlobCheckpointStore::new(
        &format!("http://127.0.0.1:{port}/devstoreaccount1"),
        "checkpoints",
        SharedKeyCredential::new("devstoreaccount1", DEVELOPMENT_ACCOUNT_KEY).unwrap(),
        options(),
    )
    .unwrap();

    for (store, expected) in [
        (
            &wrong_key,
            "storage service returned 403 (AuthorizationFailure)",
        ),
        (&missing, "storage service returned 404 (ContainerNotFound)"),
        (
            &refused,
            "list_ownership did not finish within 2s; last failure:",
        ),
    ] {
        let started = std::time::Instant::now();
        let err = store
            .list_ownership(&Scope::new(NS, EH, CG))
            .await
            .unwrap_err();
        let elapsed = started.elapsed();
        assert!(err.to_string().starts_with(expected), "{err}");
        // A hang guard (10x the bound): the bound shows in the error's type and text.
        assert!(elapsed < timeout * 10, "{err}: {elapsed:?}");
    }
    let err = refused
        .list_ownership(&Scope::new(NS, EH, CG))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("Connection refused"), "{err}");
}

#[tokio::test]
async fn a_token_credential_needs_https() {
    #[derive(Debug)]
    struct NeverCalled;
    #[async_trait::async_trait]
    impl eventhub_checkpointstore::azure_core::credentials::TokenCredential for NeverCalled {
        async fn get_token(
            &self,
            _scopes: &[&str],
            _options: Option<
                eventhub_checkpointstore::azure_core::credentials::TokenRequestOptions<'_>,
            >,
        ) -> eventhub_checkpointstore::azure_core::Result<
            eventhub_checkpointstore::azure_core::credentials::AccessToken,
        > {
            panic!("no token may be requested for an http endpoint")
        }
    }
    let credential = StorageCredential::token(std::sync::Arc::new(NeverCalled));
    let err = BlobCheckpointStore::new(
        "http://127.0.0.1:10000/devstoreaccount1",
        "checkpoints",
        credential,
        None,
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    assert!(err.to_string().contains("https"), "{err}");
}

#[tokio::test]
async fn arc_dyn_store_is_usable_and_clones_share_state() {
    let store = fresh_store(None).await;
    let shared: std::sync::Arc<dyn CheckpointStore> = std::sync::Arc::new(store.clone());
    shared
        .claim_ownership(&[Ownership::new((NS, EH, CG), "0", "owner-1")])
        .await
        .unwrap();
    assert_eq!(
        store
            .list_ownership(&Scope::new(NS, EH, CG))
            .await
            .unwrap()
            .len(),
        1
    );
}

/// Polled outside a Tokio runtime (here by `futures::executor::block_on`), every operation fails
/// with `Error::NoRuntime`, naming itself, instead of panicking in the timer or the HTTP client;
/// so does the balancer's `run`.
#[test]
fn outside_a_tokio_runtime_every_operation_is_a_clear_error() {
    use eventhub_checkpointstore::balancer::{BalancerOptions, PartitionBalancer};
    use futures::executor::block_on;
    let store = store_on(&unique_container(), None);
    let claim = [Ownership::new((NS, EH, CG), "0", "owner-1")];
    let checkpoint = Checkpoint::new((NS, EH, CG), "0", Some("1".into()), Some(1));
    let results = [
        (
            "create_container_if_missing",
            block_on(store.create_container_if_missing()).map(drop),
        ),
        (
            "list_ownership",
            block_on(store.list_ownership(&Scope::new(NS, EH, CG))).map(drop),
        ),
        (
            "claim_ownership",
            block_on(store.claim_ownership(&claim)).map(drop),
        ),
        (
            "update_checkpoint",
            block_on(store.update_checkpoint(&checkpoint)),
        ),
        (
            "list_checkpoints",
            block_on(store.list_checkpoints(&Scope::new(NS, EH, CG))).map(drop),
        ),
    ];
    for (name, result) in results {
        match result {
            Err(Error::NoRuntime { operation }) => assert_eq!(operation, name),
            other => panic!("{name}: {other:?}"),
        }
    }
    let balancer = PartitionBalancer::new(
        std::sync::Arc::new(store),
        (NS, EH, CG),
        "owner-1",
        ["0"],
        BalancerOptions::default(),
    )
    .unwrap();
    let ran = block_on(balancer.run(std::future::ready(()), |_| {}));
    assert!(
        matches!(ran, Err(Error::NoRuntime { operation: "run" })),
        "{ran:?}"
    );
}

/// A listing reports the service's time (its response's `Date`), which stamps `last_modified`
/// too: a claim's age judged by it does not depend on this host's clock.
#[tokio::test]
async fn a_listing_reports_the_services_time() {
    let store = fresh_store(None).await;
    store
        .claim_ownership(&[Ownership::new((NS, EH, CG), "0", "owner-1")])
        .await
        .unwrap();
    let (listed, time) = store
        .list_ownership_with_service_time(&Scope::new(NS, EH, CG))
        .await
        .unwrap();
    let time = time.expect("Azurite sends a Date header");
    let age = time.now() - listed[0].last_modified.unwrap();
    // Azurite runs on this host: its clock is ours, and the claim was just made.
    assert!(
        age >= time::Duration::seconds(-1) && age < time::Duration::seconds(5),
        "{age}"
    );
    assert!(time.local_clock_offset().abs() < time::Duration::seconds(2));
}
