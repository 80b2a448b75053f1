//! Faults injected between the store and Azurite (see `proxy.rs`).
//!
//! Guarantees checked: transient faults (latency, 500, 503 with and without `Retry-After`,
//! connection resets, responses lost after the write was applied) are retried and the call
//! succeeds; a claim is never reported as won unless its write was applied; when a claim's
//! response is lost and its retry then loses to the first attempt's own write, the claim is
//! reported as not won while the record names the claimant (so its next listing shows the
//! partition as its own, and renewing with the listed etag wins); `operation_timeout` bounds every
//! call.

use crate::proxy::{Fault, FaultProxy, Match, Seen};
use eventhub_checkpointstore::Scope;
use eventhub_checkpointstore::ServiceOptions;
use eventhub_checkpointstore::{
    BlobCheckpointStore, BlobCheckpointStoreOptions, Checkpoint, CheckpointStore, Error, Ownership,
};
use std::time::Duration;

pub const NS: &str = "faults.servicebus.windows.net";
pub const HUB: &str = "hub";
pub const GROUP: &str = "$Default";

/// A proxy in front of the Azurite under test, and a store on a new container behind it.
async fn proxied_store(
    options: Option<BlobCheckpointStoreOptions>,
) -> (FaultProxy, BlobCheckpointStore) {
    let (proxy, store) = crate::common::proxied_blob_store(options).await;
    proxy.take_seen();
    (proxy, store)
}

pub fn checkpoint(partition: &str, sequence_number: i64) -> Checkpoint {
    Checkpoint::new(
        (NS, HUB, GROUP),
        partition,
        Some(sequence_number.to_string()),
        Some(sequence_number),
    )
}

pub fn statuses(seen: &[Seen]) -> Vec<(Option<Fault>, Option<u16>)> {
    seen.iter().map(|s| (s.fault, s.upstream_status)).collect()
}

/// Runs `call` with `fault` applied to the one request `rule` matches, and checks that it hit
/// exactly that request and that the same request (method and target) was tried again after it
/// (except after a delay, which the try itself survives), honouring `Retry-After`.
pub async fn faulted_once<T>(
    proxy: &FaultProxy,
    rule: Match,
    fault: Fault,
    call: impl std::future::Future<Output = Result<T, Error>>,
) -> T {
    proxy.take_seen();
    proxy.inject(rule.clone(), fault, 1);
    let result = call.await;
    proxy.clear_rules();
    let out = result.unwrap_or_else(|e| panic!("{fault:?} on {rule:?}: the call failed: {e}"));
    let seen = proxy.take_seen();
    let faulted: Vec<&Seen> = seen.iter().filter(|s| s.fault.is_some()).collect();
    assert_eq!(
        faulted.len(),
        1,
        "{fault:?} on {rule:?}: faulted {:?}",
        statuses(&seen)
    );
    let hit = faulted[0];
    assert!(rule.matches(&hit.method, &hit.target), "{hit:?}");
    if matches!(fault, Fault::Delay(_)) {
        return out;
    }
    let retry = seen
        .iter()
        .find(|s| {
            s.at >= hit.at && s.fault.is_none() && s.method == hit.method && s.target == hit.target
        })
        .unwrap_or_else(|| panic!("{fault:?}: {hit:?} was not tried again: {seen:?}"));
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
    out
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
        let checkpoint_blob = format!("/checkpoint/{partition}");
        let ownership_blob = format!("/ownership/{partition}");
        // Each kind of request the store sends, faulted by its target:
        // the first checkpoint's Put Blob (after Set Blob Metadata found no blob),
        faulted_once(
            &proxy,
            Match::method("PUT")
                .target(&checkpoint_blob)
                .not_target("comp="),
            fault,
            store.update_checkpoint(&checkpoint(&partition, 1)),
        )
        .await;
        // a later checkpoint's Set Blob Metadata,
        faulted_once(
            &proxy,
            Match::method("PUT")
                .target(&checkpoint_blob)
                .target("comp=metadata"),
            fault,
            store.update_checkpoint(&checkpoint(&partition, 2)),
        )
        .await;
        // a listing,
        let listed = faulted_once(
            &proxy,
            Match::method("GET").target("comp=list"),
            fault,
            store.list_checkpoints(&Scope::new(NS, HUB, GROUP)),
        )
        .await;
        let mine = listed.iter().find(|c| c.partition_id == partition).unwrap();
        assert_eq!(mine.sequence_number, Some(2), "{fault:?}");
        // A lost response to a claim is its own case (below): its retry meets its own write.
        if fault == Fault::DropResponse {
            continue;
        }
        // a new claim's Put Blob (If-None-Match: *),
        let won = faulted_once(
            &proxy,
            Match::method("PUT")
                .target(&ownership_blob)
                .not_target("comp="),
            fault,
            store.claim_ownership(&[Ownership::new((NS, HUB, GROUP), &partition, "me")]),
        )
        .await;
        assert_eq!(won.len(), 1, "{fault:?}: a new claim won on retry");
        // and a renewal's Set Blob Metadata (If-Match).
        let renewed = faulted_once(
            &proxy,
            Match::method("PUT")
                .target(&ownership_blob)
                .target("comp=metadata"),
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
async fn a_claim_is_never_reported_won_unless_its_write_was_applied() {
    let (proxy, store) = proxied_store(None).await;
    let mine = |partition: &str| Ownership::new((NS, HUB, GROUP), partition, "me");
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
    let listed = store
        .list_ownership(&Scope::new(NS, HUB, GROUP))
        .await
        .unwrap();
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
    let listed = store
        .list_ownership(&Scope::new(NS, HUB, GROUP))
        .await
        .unwrap();
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
    let listed = store
        .list_ownership(&Scope::new(NS, HUB, GROUP))
        .await
        .unwrap();
    assert_eq!(
        owner_of(&listed, "0"),
        Some((Some("them".into()), theirs[0].etag.clone()))
    );

    // 4. A claim won on a retry after a reset (nothing applied by the first try) is won, with
    //    the version the listing then reports.
    proxy.inject(Match::method("PUT"), Fault::Reset, 1);
    let won = store.claim_ownership(&[mine("1")]).await.unwrap();
    assert_eq!(won.len(), 1, "won on retry");
    let listed = store
        .list_ownership(&Scope::new(NS, HUB, GROUP))
        .await
        .unwrap();
    assert_eq!(
        owner_of(&listed, "1"),
        Some((Some("me".into()), won[0].etag.clone()))
    );
}

#[tokio::test]
async fn operation_timeout_bounds_every_call() {
    let timeout = Duration::from_millis(500);
    let (proxy, store) = proxied_store(Some(BlobCheckpointStoreOptions {
        service: ServiceOptions {
            operation_timeout: Some(timeout),
            ..Default::default()
        },
        ..Default::default()
    }))
    .await;
    let claim = [Ownership::new((NS, HUB, GROUP), "0", "me")];
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
                "create_container_if_missing",
                Box::pin(async { store.create_container_if_missing().await.map(drop) }),
            ),
        ];
        for (name, call) in calls {
            // A hang guard far past the bound (10x), so an unbounded call fails the test instead
            // of hanging it; the bound itself is checked by the typed error, not the clock.
            let err = tokio::time::timeout(timeout * 10, call)
                .await
                .unwrap_or_else(|_| panic!("{name} under {fault:?} was not bounded"))
                .expect_err(name);
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
        }
        let seen = proxy.take_seen();
        assert!(seen.len() >= 5, "every call reached the proxy: {seen:?}");
        proxy.clear_rules();
    }
}

/// A claim the service accepted but whose response lacks the new version (ETag) or its time
/// (Last-Modified) cannot be renewed conditionally or expired: it is a failed claim with a clear
/// error, never "won" with no etag.
#[tokio::test]
async fn a_claim_response_without_etag_or_last_modified_is_not_won() {
    let (proxy, store) = proxied_store(None).await;
    for (partition, header) in [("0", "etag"), ("1", "last-modified")] {
        let claim = Ownership::new((NS, HUB, GROUP), partition, "me");
        let ownership_blob = format!("/ownership/{partition}");
        // A new claim (Put Blob), alone: the call fails with the reason.
        proxy.inject(
            Match::method("PUT").target(&ownership_blob),
            Fault::StripHeader(header),
            1,
        );
        let err = store
            .claim_ownership(std::slice::from_ref(&claim))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::UnexpectedResponse { message } if message.contains("not reported as won")),
            "{header}: {err:?}"
        );
        // A renewal (Set Blob Metadata) beside a claim that works: Ok with only that one.
        let listed = store
            .list_ownership(&Scope::new(NS, HUB, GROUP))
            .await
            .unwrap();
        let current = listed
            .iter()
            .find(|o| o.partition_id == partition)
            .unwrap()
            .clone();
        proxy.inject(
            Match::method("PUT")
                .target(&ownership_blob)
                .target("comp=metadata"),
            Fault::StripHeader(header),
            1,
        );
        let other = Ownership::new((NS, HUB, GROUP), format!("other-{partition}"), "me");
        let won = store.claim_ownership(&[current, other]).await.unwrap();
        assert_eq!(
            won.iter()
                .map(|o| o.partition_id.as_str())
                .collect::<Vec<_>>(),
            [format!("other-{partition}")],
            "{header}"
        );
        assert!(won
            .iter()
            .all(|o| o.etag.is_some() && o.last_modified.is_some()));
        proxy.clear_rules();
    }
}

/// `claim_concurrency` bounds the claim requests in flight, as the proxy counts them: with every
/// claim held 150 ms, exactly that many are in flight at the peak, never more.
#[tokio::test]
async fn claim_concurrency_bounds_requests_in_flight() {
    for concurrency in [1usize, 4, 16] {
        let (proxy, store) = proxied_store(Some(BlobCheckpointStoreOptions {
            service: ServiceOptions {
                claim_concurrency: std::num::NonZeroUsize::new(concurrency).unwrap(),
                ..Default::default()
            },
            ..Default::default()
        }))
        .await;
        let claims: Vec<Ownership> = (0..32)
            .map(|p| Ownership::new((NS, HUB, GROUP), p.to_string(), "me"))
            .collect();
        proxy.inject(
            Match::method("PUT"),
            Fault::Delay(Duration::from_millis(150)),
            usize::MAX,
        );
        proxy.take_max_in_flight();
        let won = store.claim_ownership(&claims).await.unwrap();
        assert_eq!(won.len(), 32);
        assert_eq!(
            proxy.take_max_in_flight(),
            concurrency,
            "claim_concurrency {concurrency}"
        );
    }
}
