//! Faults injected between the store and Azurite (see `proxy.rs`).
//!
//! Guarantees checked: transient faults (latency, 500, 503 with and without `Retry-After`,
//! connection resets, responses lost after the write was applied) are retried and the call
//! succeeds; a claim is never reported as won unless its write was applied; when a claim's
//! response is lost and its retry then loses to the first attempt's own write, the claim is
//! reported as not won while the record names the claimant (so its next listing shows the
//! partition as its own, and renewing with the listed etag wins); `operation_timeout` bounds every
//! call.

use crate::common::{connection_string, unique_container};
use crate::proxy::{Fault, FaultProxy, Match, Seen};
use eventhub_checkpointstore::{
    BlobCheckpointStore, BlobCheckpointStoreOptions, Checkpoint, CheckpointStore, ConnectionString,
    Error, Ownership,
};
use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

const NS: &str = "faults.servicebus.windows.net";
const HUB: &str = "hub";
const GROUP: &str = "$Default";

/// A proxy in front of the Azurite under test, and a store on a new container behind it.
async fn proxied_store(
    options: Option<BlobCheckpointStoreOptions>,
) -> (FaultProxy, BlobCheckpointStore) {
    let connection = ConnectionString::parse(&connection_string()).unwrap();
    let endpoint = connection
        .blob_endpoint()
        .expect("Azurite has a blob endpoint");
    let upstream: SocketAddr = format!(
        "{}:{}",
        endpoint.host_str().unwrap(),
        endpoint.port().unwrap()
    )
    .parse()
    .unwrap();
    let proxy = FaultProxy::start(upstream).await;
    let store = BlobCheckpointStore::new(
        &format!("http://{}/devstoreaccount1", proxy.addr()),
        &unique_container(),
        connection.credential().clone(),
        options,
    )
    .unwrap();
    assert!(store.create_container_if_missing().await.unwrap());
    proxy.take_seen();
    (proxy, store)
}

fn checkpoint(partition: &str, sequence_number: i64) -> Checkpoint {
    Checkpoint::new(
        NS,
        HUB,
        GROUP,
        partition,
        Some(sequence_number.to_string()),
        Some(sequence_number),
    )
}

fn statuses(seen: &[Seen]) -> Vec<(Option<Fault>, Option<u16>)> {
    seen.iter().map(|s| (s.fault, s.upstream_status)).collect()
}

#[tokio::test]
async fn transient_faults_are_retried_and_the_call_succeeds() {
    let (proxy, store) = proxied_store(None).await;
    let faults = [
        Fault::Delay(Duration::from_millis(300)),
        Fault::Status {
            status: 500,
            retry_after: None,
        },
        Fault::Status {
            status: 503,
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
        // The first checkpoint of a partition is Set Metadata (404), then Put Blob: fault both
        // kinds of write, and the listing.
        proxy.inject(Match::method("PUT"), fault, 1);
        store
            .update_checkpoint(&checkpoint(&partition, 1))
            .await
            .unwrap_or_else(|e| panic!("{fault:?}: update failed: {e}"));
        proxy.inject(Match::method("PUT"), fault, 1);
        store
            .update_checkpoint(&checkpoint(&partition, 2))
            .await
            .unwrap_or_else(|e| panic!("{fault:?}: second update failed: {e}"));
        proxy.inject(Match::method("GET").target("comp=list"), fault, 1);
        let listed = store.list_checkpoints(NS, HUB, GROUP).await.unwrap();
        let mine = listed.iter().find(|c| c.partition_id == partition).unwrap();
        assert_eq!(mine.sequence_number, Some(2), "{fault:?}");

        let seen = proxy.take_seen();
        let faulted: Vec<_> = seen.iter().filter(|s| s.fault.is_some()).collect();
        assert_eq!(faulted.len(), 3, "{fault:?}: {:?}", statuses(&seen));
        for hit in &faulted {
            // A delayed try is not retried: it succeeds itself. Every other faulted try was
            // followed by a retry of the same kind.
            if matches!(fault, Fault::Delay(_)) {
                continue;
            }
            let retry = seen
                .iter()
                .find(|s| s.at >= hit.at && s.fault.is_none() && s.method == hit.method)
                .unwrap_or_else(|| panic!("{fault:?}: no try after {hit:?}"));
            if let Fault::Status {
                retry_after: Some(seconds),
                ..
            } = fault
            {
                let waited = retry.at - hit.at;
                assert!(
                    waited >= Duration::from_secs(seconds.into()) - Duration::from_millis(50),
                    "Retry-After {seconds}s honoured: waited {waited:?}"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_claim_is_never_reported_won_unless_its_write_was_applied() {
    let (proxy, store) = proxied_store(None).await;
    let mine = |partition: &str| Ownership::new(NS, HUB, GROUP, partition, "me");
    let owner_of = |listed: &[Ownership], partition: &str| {
        listed
            .iter()
            .find(|o| o.partition_id == partition)
            .map(|o| (o.owner_id.clone(), o.etag.clone()))
    };

    // 1. A new claim whose response is lost after Azurite created the blob: the retry gets 409
    //    BlobAlreadyExists (from its own first try), so the claim is reported as not won ...
    proxy.inject(Match::method("PUT"), Fault::DropResponse, 1);
    let won = store.claim_ownership(&[mine("0")]).await.unwrap();
    assert!(won.is_empty(), "reported as won: {won:?}");
    let seen = proxy.take_seen();
    assert_eq!(
        statuses(&seen),
        [(Some(Fault::DropResponse), Some(201)), (None, Some(409))],
        "first try applied, its retry lost to it"
    );
    // ... while the record names the claimant, so its next cycle sees the partition as its own
    // and renews it with the listed etag.
    let listed = store.list_ownership(NS, HUB, GROUP).await.unwrap();
    let (owner, etag) = owner_of(&listed, "0").unwrap();
    assert_eq!(owner.as_deref(), Some("me"));
    let renewed = store
        .claim_ownership(&[Ownership {
            etag: etag.clone(),
            ..mine("0")
        }])
        .await
        .unwrap();
    assert_eq!(renewed.len(), 1);

    // 2. The same for a renewal (If-Match): the retry gets 412.
    proxy.take_seen();
    proxy.inject(Match::method("PUT"), Fault::DropResponse, 1);
    let won = store.claim_ownership(&renewed).await.unwrap();
    assert!(won.is_empty(), "reported as won: {won:?}");
    assert_eq!(
        statuses(&proxy.take_seen()),
        [(Some(Fault::DropResponse), Some(200)), (None, Some(412))]
    );
    let listed = store.list_ownership(NS, HUB, GROUP).await.unwrap();
    let (owner, etag) = owner_of(&listed, "0").unwrap();
    assert_eq!(owner.as_deref(), Some("me"));
    assert_ne!(
        etag, renewed[0].etag,
        "the first try's write is the current version"
    );

    // 3. A claim that really lost, with its 412 lost on the way back: not won, the other
    //    owner's record untouched.
    let theirs = store
        .claim_ownership(&[Ownership {
            owner_id: Some("them".into()),
            etag,
            ..mine("0")
        }])
        .await
        .unwrap();
    assert_eq!(theirs.len(), 1);
    proxy.take_seen();
    proxy.inject(Match::method("PUT"), Fault::DropResponse, 1);
    let won = store.claim_ownership(&renewed).await.unwrap();
    assert!(won.is_empty(), "a stale claim reported as won: {won:?}");
    assert_eq!(
        statuses(&proxy.take_seen()),
        [(Some(Fault::DropResponse), Some(412)), (None, Some(412))]
    );
    let listed = store.list_ownership(NS, HUB, GROUP).await.unwrap();
    assert_eq!(
        owner_of(&listed, "0"),
        Some((Some("them".into()), theirs[0].etag.clone()))
    );

    // 4. A claim won on a retry after a reset (nothing applied by the first try) is won, with
    //    the version the listing then reports.
    proxy.inject(Match::method("PUT"), Fault::Reset, 1);
    let won = store.claim_ownership(&[mine("1")]).await.unwrap();
    assert_eq!(won.len(), 1, "won on retry");
    let listed = store.list_ownership(NS, HUB, GROUP).await.unwrap();
    assert_eq!(
        owner_of(&listed, "1"),
        Some((Some("me".into()), won[0].etag.clone()))
    );
}

#[tokio::test]
async fn operation_timeout_bounds_every_call() {
    let timeout = Duration::from_millis(500);
    let (proxy, store) = proxied_store(Some(BlobCheckpointStoreOptions {
        operation_timeout: Some(timeout),
        ..Default::default()
    }))
    .await;
    let claim = [Ownership::new(NS, HUB, GROUP, "0", "me")];
    let check = checkpoint("0", 1);

    for fault in [
        Fault::Hang,
        Fault::Delay(Duration::from_secs(30)),
        Fault::Status {
            status: 503,
            retry_after: Some(30),
        },
    ] {
        proxy.inject(Match::any(), fault, usize::MAX);
        let calls: [(&str, futures::future::BoxFuture<'_, Result<(), Error>>); 5] = [
            (
                "list_ownership",
                Box::pin(async { store.list_ownership(NS, HUB, GROUP).await.map(drop) }),
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
                Box::pin(async { store.list_checkpoints(NS, HUB, GROUP).await.map(drop) }),
            ),
            (
                "create_container_if_missing",
                Box::pin(async { store.create_container_if_missing().await.map(drop) }),
            ),
        ];
        for (name, call) in calls {
            let started = Instant::now();
            // A guard well past the bound, so an unbounded call fails the test instead of hanging it.
            let err = tokio::time::timeout(timeout + Duration::from_secs(10), call)
                .await
                .unwrap_or_else(|_| panic!("{name} under {fault:?} was not bounded"))
                .expect_err(name);
            let elapsed = started.elapsed();
            match &err {
                Error::Timeout {
                    operation,
                    timeout: t,
                    last_failure,
                } => {
                    assert_eq!(*operation, name);
                    assert_eq!(*t, timeout);
                    if let Fault::Status { .. } = fault {
                        assert_eq!(
                            last_failure.as_deref(),
                            Some("storage service returned 503 (InjectedFault)"),
                            "{err}"
                        );
                    }
                }
                other => panic!("{name} under {fault:?}: {other:?}"),
            }
            // The bound is the guarantee; the slack covers a loaded CI machine.
            assert!(
                elapsed < timeout + Duration::from_secs(2),
                "{name} under {fault:?} took {elapsed:?}"
            );
        }
        let seen = proxy.take_seen();
        assert!(seen.len() >= 5, "every call reached the proxy: {seen:?}");
        proxy.clear_rules();
    }
}
