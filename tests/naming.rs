//! The two blob naming layouts (docs/wire-format.md) against Azurite:
//! `BlobNaming::Verbatim` through the shared conformance suite with mixed-case names, byte for
//! byte against the official Rust store (`azure_messaging_eventhubs_checkpointstore_blob` 0.9,
//! in both directions) and against blobs written as Go's `checkpoints.BlobStore` writes them; what
//! depends on the layout (case folding); and `checkpoint_fallback` (found, superseded, never for
//! ownership).

use eventhub_checkpointstore::Scope;
use eventhub_checkpointstore_testkit as common;

use async_trait::async_trait;
use azure_messaging_eventhubs::models;
use azure_messaging_eventhubs_checkpointstore_blob::BlobCheckpointStore as OfficialStore;
use common::Recorder;
use eventhub_checkpointstore::azure_storage_blob::BlobContainerClient;
use eventhub_checkpointstore::conformance;
use eventhub_checkpointstore::{
    BlobCheckpointStore, BlobCheckpointStoreOptions, BlobNaming, Checkpoint, CheckpointStore,
    ConnectionString, Ownership,
};
use futures::TryStreamExt;
use std::collections::BTreeMap;
use std::sync::Arc;

const NS: &str = "MyNs.ServiceBus.Windows.Net";
const EH: &str = "Telemetry";
const CG: &str = "$Default";

fn options(naming: BlobNaming, checkpoint_fallback: bool) -> BlobCheckpointStoreOptions {
    BlobCheckpointStoreOptions {
        naming,
        checkpoint_fallback,
        ..Default::default()
    }
}

fn verbatim(container: &str) -> BlobCheckpointStore {
    common::store_on(container, Some(options(BlobNaming::Verbatim, false)))
}

/// The official store's calls, through its own trait (our store implements that trait too, with
/// feature `eventhubs`, so the two are not both imported here).
mod peer {
    use azure_messaging_eventhubs::{models, CheckpointStore};
    use azure_messaging_eventhubs_checkpointstore_blob::BlobCheckpointStore;

    pub async fn claim(
        store: &BlobCheckpointStore,
        o: &[models::Ownership],
    ) -> Vec<models::Ownership> {
        store.claim_ownership(o).await.unwrap()
    }
    pub async fn checkpoint(store: &BlobCheckpointStore, c: models::Checkpoint) {
        store.update_checkpoint(c).await.unwrap()
    }
    pub async fn ownerships(
        store: &BlobCheckpointStore,
        ns: &str,
        eh: &str,
        cg: &str,
    ) -> Vec<models::Ownership> {
        store.list_ownerships(ns, eh, cg).await.unwrap()
    }
    pub async fn checkpoints(
        store: &BlobCheckpointStore,
        ns: &str,
        eh: &str,
        cg: &str,
    ) -> Vec<models::Checkpoint> {
        store.list_checkpoints(ns, eh, cg).await.unwrap()
    }
}

/// The official Rust store on `container`, authenticated with an account SAS.
fn official(container: &str) -> Arc<OfficialStore> {
    let connection = ConnectionString::parse(&common::connection_string()).unwrap();
    let mut url = connection.blob_endpoint().unwrap().clone();
    url.path_segments_mut()
        .unwrap()
        .pop_if_empty()
        .push(container);
    url.set_query(Some(&common::account_sas(&connection)));
    OfficialStore::new(BlobContainerClient::new(url, None, None).unwrap())
}

/// Every blob of the container: name → metadata.
async fn blobs(store: &BlobCheckpointStore) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut pager = store
        .container_client()
        .list_blobs(Some(
            eventhub_checkpointstore::azure_storage_blob::models::BlobContainerClientListBlobsOptions {
                include: Some(vec![
                    eventhub_checkpointstore::azure_storage_blob::models::ListBlobsIncludeItem::Metadata,
                ]),
                ..Default::default()
            },
        ))
        .unwrap();
    let mut all = BTreeMap::new();
    while let Some(blob) = pager.try_next().await.unwrap() {
        let metadata = blob
            .metadata
            .and_then(|m| m.values)
            .unwrap_or_default()
            .into_iter()
            .collect();
        all.insert(blob.name.unwrap(), metadata);
    }
    all
}

fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The conformance suite for `Verbatim`, in a scope whose names are all mixed case.
struct VerbatimBackend {
    container: String,
}

async fn verbatim_backend() -> VerbatimBackend {
    VerbatimBackend {
        container: common::fresh_container().await,
    }
}

#[async_trait]
impl conformance::Fixture for VerbatimBackend {
    async fn client(&self) -> Arc<dyn CheckpointStore> {
        Arc::new(verbatim(&self.container))
    }

    fn scope(&self) -> Scope {
        Scope::new(
            "Conformance.ServiceBus.Windows.Net",
            "MixedCase-Hub",
            "$Default",
        )
    }
}

mod verbatim_conformance {
    use super::*;
    eventhub_checkpointstore::conformance_suite!(verbatim_backend());
}

#[tokio::test]
async fn verbatim_names_and_metadata_are_the_official_stores_and_gos() {
    let store = verbatim(&common::fresh_container().await);
    let won = store
        .claim_ownership(&[Ownership::new((NS, EH, CG), "0", "rust-a")])
        .await
        .unwrap();
    assert_eq!(won.len(), 1);
    store
        .update_checkpoint(&Checkpoint::new(
            (NS, EH, CG),
            "0",
            Some("4096".into()),
            Some(42),
        ))
        .await
        .unwrap();
    assert_eq!(
        blobs(&store).await,
        BTreeMap::from([
            (
                "MyNs.ServiceBus.Windows.Net/Telemetry/$Default/checkpoint/0".to_owned(),
                meta(&[("offset", "4096"), ("sequencenumber", "42")])
            ),
            (
                "MyNs.ServiceBus.Windows.Net/Telemetry/$Default/ownership/0".to_owned(),
                meta(&[("ownerid", "rust-a")])
            ),
        ])
    );
    // The names the official crate computes for the same records.
    assert_eq!(
        models::Ownership::get_ownership_name(NS, EH, CG, "0").unwrap(),
        "MyNs.ServiceBus.Windows.Net/Telemetry/$Default/ownership/0"
    );
    assert_eq!(
        models::Checkpoint::get_checkpoint_blob_name(NS, EH, CG, "0").unwrap(),
        "MyNs.ServiceBus.Windows.Net/Telemetry/$Default/checkpoint/0"
    );
}

/// The official store writes; this store (Verbatim) reads it all and takes the partition over;
/// the official store then reads what this one wrote, and takes it back.
#[tokio::test]
async fn verbatim_reads_and_takes_over_what_the_official_store_wrote_and_back() {
    let container = common::fresh_container().await;
    let theirs = official(&container);
    let ours = verbatim(&container);
    let their_ownership = |partition: &str, etag| models::Ownership {
        fully_qualified_namespace: NS.into(),
        event_hub_name: EH.into(),
        consumer_group: CG.into(),
        partition_id: partition.into(),
        owner_id: Some("official-a".into()),
        etag,
        ..Default::default()
    };
    let claimed = peer::claim(
        &theirs,
        &[their_ownership("0", None), their_ownership("1", None)],
    )
    .await;
    assert_eq!(claimed.len(), 2);
    for (partition, sequence_number) in [("0", 10), ("1", 11)] {
        peer::checkpoint(
            &theirs,
            models::Checkpoint {
                fully_qualified_namespace: NS.into(),
                event_hub_name: EH.into(),
                consumer_group: CG.into(),
                partition_id: partition.into(),
                offset: Some(format!("{}", sequence_number * 100)),
                sequence_number: Some(sequence_number),
            },
        )
        .await;
    }

    // Read.
    let listed = ours.list_ownership(&Scope::new(NS, EH, CG)).await.unwrap();
    assert_eq!(listed.len(), 2);
    for o in &listed {
        assert_eq!(o.owner_id.as_deref(), Some("official-a"));
        assert_eq!(
            o.scope,
            Scope::new(NS, EH, CG),
            "the caller's names, as passed"
        );
    }
    let checkpoints: BTreeMap<String, Checkpoint> = ours
        .list_checkpoints(&Scope::new(NS, EH, CG))
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.partition_id.clone(), c))
        .collect();
    assert_eq!(checkpoints["0"].offset.as_deref(), Some("1000"));
    assert_eq!(checkpoints["1"].sequence_number, Some(11));

    // Take partition 0 over with the listed etag; the official store's stale etag then loses.
    let zero = listed.iter().find(|o| o.partition_id == "0").unwrap();
    let won = ours
        .claim_ownership(&[Ownership {
            owner_id: Some("rust-b".into()),
            ..zero.clone()
        }])
        .await
        .unwrap();
    assert_eq!(won.len(), 1);
    ours.update_checkpoint(&Checkpoint::new(
        (NS, EH, CG),
        "0",
        Some("2000".into()),
        Some(20),
    ))
    .await
    .unwrap();
    let stale = claimed
        .iter()
        .find(|o| o.partition_id == "0")
        .unwrap()
        .clone();
    assert!(
        peer::claim(&theirs, &[stale]).await.is_empty(),
        "the official store's stale claim loses to ours"
    );

    // The official store reads what we wrote, and takes it back with the etag it lists.
    let their_view = peer::ownerships(&theirs, NS, EH, CG).await;
    let zero = their_view.iter().find(|o| o.partition_id == "0").unwrap();
    assert_eq!(zero.owner_id.as_deref(), Some("rust-b"));
    let their_checkpoints = peer::checkpoints(&theirs, NS, EH, CG).await;
    let zero_checkpoint = their_checkpoints
        .iter()
        .find(|c| c.partition_id == "0")
        .unwrap();
    assert_eq!(
        (
            zero_checkpoint.offset.as_deref(),
            zero_checkpoint.sequence_number
        ),
        (Some("2000"), Some(20))
    );
    let back = peer::claim(
        &theirs,
        &[models::Ownership {
            owner_id: Some("official-a".into()),
            ..zero.clone()
        }],
    )
    .await;
    assert_eq!(back.len(), 1, "the official store takes it back");
    let mine_now = ours.list_ownership(&Scope::new(NS, EH, CG)).await.unwrap();
    assert_eq!(
        mine_now
            .iter()
            .find(|o| o.partition_id == "0")
            .unwrap()
            .owner_id
            .as_deref(),
        Some("official-a")
    );

    // The default (lower-case) layout sees none of it: the split this option bridges.
    let lowercase = common::store_on(&container, None);
    assert!(lowercase
        .list_ownership(&Scope::new(NS, EH, CG))
        .await
        .unwrap()
        .is_empty());
    assert!(lowercase
        .list_checkpoints(&Scope::new(NS, EH, CG))
        .await
        .unwrap()
        .is_empty());
}

/// Blobs as Go's `checkpoints.BlobStore` writes them (verbatim names; `ownerid`, and both
/// `offset` and `sequencenumber` as decimal strings), written with raw REST: read, and taken over.
#[tokio::test]
async fn verbatim_reads_and_takes_over_what_go_wrote() {
    let store = verbatim(&common::fresh_container().await);
    let go_ns = "GoFleet.servicebus.windows.net";
    for p in ["0", "1"] {
        common::put_raw(
            &store,
            &format!("{go_ns}/Orders/$Default/ownership/{p}"),
            &[("ownerid", "go-consumer-7")],
        )
        .await;
        common::put_raw(
            &store,
            &format!("{go_ns}/Orders/$Default/checkpoint/{p}"),
            &[("offset", "8589934592"), ("sequencenumber", "77")],
        )
        .await;
    }
    let listed = store
        .list_ownership(&Scope::new(go_ns, "Orders", CG))
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed
        .iter()
        .all(|o| o.owner_id.as_deref() == Some("go-consumer-7") && o.etag.is_some()));
    let checkpoints = store
        .list_checkpoints(&Scope::new(go_ns, "Orders", CG))
        .await
        .unwrap();
    assert_eq!(checkpoints.len(), 2);
    assert!(checkpoints
        .iter()
        .all(|c| c.offset.as_deref() == Some("8589934592") && c.sequence_number == Some(77)));
    let won = store
        .claim_ownership(
            &listed
                .iter()
                .map(|o| Ownership {
                    owner_id: Some("rust".into()),
                    ..o.clone()
                })
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    assert_eq!(won.len(), 2);
    // What Go reads back: both keys present, as it requires.
    store
        .update_checkpoint(&Checkpoint::new(
            (go_ns, "Orders", CG),
            "0",
            Some("9000".into()),
            Some(78),
        ))
        .await
        .unwrap();
    let raw = blobs(&store).await;
    assert_eq!(
        raw[&format!("{go_ns}/Orders/$Default/checkpoint/0")],
        meta(&[("offset", "9000"), ("sequencenumber", "78")])
    );
    assert_eq!(
        raw[&format!("{go_ns}/Orders/$Default/ownership/1")],
        meta(&[("ownerid", "rust")])
    );
}

/// Event Hubs names are case-insensitive: in `Lowercase`, names that differ only by case are one
/// scope; in `Verbatim` they are two (as for Go and the official store).
#[tokio::test]
async fn case_folding_depends_on_the_layout() {
    // A container each: the lower-case blobs are exactly what `Verbatim` names the folded scope.
    let lowercase = common::store_on(&common::fresh_container().await, None);
    let verbatim = verbatim(&common::fresh_container().await);
    for store in [&lowercase, &verbatim] {
        store
            .update_checkpoint(&Checkpoint::new(
                (NS, EH, CG),
                "0",
                Some("1".into()),
                Some(1),
            ))
            .await
            .unwrap();
    }
    let folded = ("myns.servicebus.windows.net", "telemetry", "$default");
    assert_eq!(
        lowercase
            .list_checkpoints(&Scope::new(folded.0, folded.1, folded.2))
            .await
            .unwrap()
            .len(),
        1,
        "Lowercase: one scope"
    );
    assert!(
        verbatim
            .list_checkpoints(&Scope::new(folded.0, folded.1, folded.2))
            .await
            .unwrap()
            .is_empty(),
        "Verbatim: another scope"
    );
    assert_eq!(
        verbatim
            .list_checkpoints(&Scope::new(NS, EH, CG))
            .await
            .unwrap()
            .len(),
        1
    );
    // A claim of `Telemetry` and one of `telemetry` in Verbatim are two records, both won.
    let both = verbatim
        .claim_ownership(&[
            Ownership::new((NS, EH, CG), "0", "a"),
            Ownership::new((NS, "telemetry", CG), "0", "b"),
        ])
        .await
        .unwrap();
    assert_eq!(both.len(), 2);
    // In Lowercase the second is a lost race against the first.
    let one = lowercase
        .claim_ownership(&[
            Ownership::new((NS, EH, CG), "0", "a"),
            Ownership::new((NS, "telemetry", CG), "0", "b"),
        ])
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    // Partition ids too: `P1` and `p1` are one partition in Lowercase, two in Verbatim.
    assert_eq!(
        BlobNaming::Lowercase
            .checkpoint_blob(&Scope::new(NS, EH, CG), "P1")
            .unwrap(),
        BlobNaming::Lowercase
            .checkpoint_blob(&Scope::new(NS, EH, CG), "p1")
            .unwrap()
    );
    assert_ne!(
        BlobNaming::Verbatim
            .checkpoint_blob(&Scope::new(NS, EH, CG), "P1")
            .unwrap(),
        BlobNaming::Verbatim
            .checkpoint_blob(&Scope::new(NS, EH, CG), "p1")
            .unwrap()
    );
}

/// `checkpoint_fallback`: a lower-case store reads the official store's (verbatim) checkpoints for
/// partitions it has none of its own for, logs it at INFO, and stops using each as soon as it
/// writes its own; it costs one more listing until nothing is left to fall back on, then none.
/// Ownership never falls back.
#[tokio::test]
async fn checkpoint_fallback_reads_the_other_layout_until_superseded() {
    let container = common::fresh_container().await;
    let theirs = verbatim(&container);
    for p in 0..4i64 {
        theirs
            .update_checkpoint(&Checkpoint::new(
                (NS, EH, CG),
                p.to_string(),
                Some(format!("{}", p * 100)),
                Some(p),
            ))
            .await
            .unwrap();
    }
    theirs
        .claim_ownership(&[Ownership::new((NS, EH, CG), "0", "their-owner")])
        .await
        .unwrap();

    let sent = Recorder::default();
    let ours = common::store_on(
        &container,
        Some(sent.install(options(BlobNaming::Lowercase, true))),
    );
    let listings = |sent: &Recorder| {
        sent.take()
            .iter()
            .filter(|s| s.operation() == "list")
            .count()
    };

    // Found: all four from the other layout, with an INFO line naming them.
    let (found, log) = common::with_info(ours.list_checkpoints(&Scope::new(NS, EH, CG))).await;
    let found = found.unwrap();
    assert_eq!(found.len(), 4);
    assert!(found
        .iter()
        .all(|c| c.sequence_number == c.partition_id.parse().ok()));
    assert!(
        log.contains("INFO") && log.contains("other layout") && log.contains("fallback"),
        "{log}"
    );
    assert_eq!(listings(&sent), 2, "own layout, then the other");

    // Superseded one by one: the first checkpoint written lands in the own layout.
    ours.update_checkpoint(&Checkpoint::new(
        (NS, EH, CG),
        "0",
        Some("5000".into()),
        Some(50),
    ))
    .await
    .unwrap();
    sent.take();
    let listed: BTreeMap<String, Option<i64>> = ours
        .list_checkpoints(&Scope::new(NS, EH, CG))
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.partition_id, c.sequence_number))
        .collect();
    assert_eq!(
        listed,
        BTreeMap::from([
            ("0".into(), Some(50)),
            ("1".into(), Some(1)),
            ("2".into(), Some(2)),
            ("3".into(), Some(3))
        ])
    );
    assert_eq!(listings(&sent), 2);
    assert!(
        blobs(&ours)
            .await
            .contains_key("myns.servicebus.windows.net/telemetry/$default/checkpoint/0"),
        "written in the own layout"
    );
    assert_eq!(
        theirs
            .list_checkpoints(&Scope::new(NS, EH, CG))
            .await
            .unwrap()
            .len(),
        4,
        "the other layout is left as it was"
    );

    // Once every partition has its own, the fallback listing stops.
    for p in 1..4i64 {
        ours.update_checkpoint(&Checkpoint::new(
            (NS, EH, CG),
            p.to_string(),
            None,
            Some(60 + p),
        ))
        .await
        .unwrap();
    }
    sent.take();
    assert_eq!(
        ours.list_checkpoints(&Scope::new(NS, EH, CG))
            .await
            .unwrap()
            .len(),
        4
    );
    assert_eq!(listings(&sent), 2, "one last look finds nothing left");
    for _ in 0..3 {
        let all = ours
            .list_checkpoints(&Scope::new(NS, EH, CG))
            .await
            .unwrap();
        assert!(all.iter().all(|c| c.sequence_number >= Some(50)));
    }
    assert_eq!(listings(&sent), 3, "then one listing per call");

    // Ownership never falls back: the other layout's owner is invisible, and is no lock here.
    assert!(ours
        .list_ownership(&Scope::new(NS, EH, CG))
        .await
        .unwrap()
        .is_empty());
    let won = ours
        .claim_ownership(&[Ownership::new((NS, EH, CG), "0", "our-owner")])
        .await
        .unwrap();
    assert_eq!(won.len(), 1);

    // Without the option, nothing falls back.
    let plain = common::store_on(&common::fresh_container().await, None);
    assert!(plain
        .list_checkpoints(&Scope::new(NS, EH, CG))
        .await
        .unwrap()
        .is_empty());
}

/// The other way: a `Verbatim` store with the fallback reads what Python, .NET or JS wrote
/// (lower-case names), e.g. a fleet moving to the official Rust processor's layout.
#[tokio::test]
async fn verbatim_fallback_reads_lowercase_checkpoints() {
    let container = common::fresh_container().await;
    let python_written = common::store_on(&container, None);
    python_written
        .update_checkpoint(&Checkpoint::new(
            (NS, EH, CG),
            "3",
            Some("30".into()),
            Some(3),
        ))
        .await
        .unwrap();
    let ours = common::store_on(&container, Some(options(BlobNaming::Verbatim, true)));
    let found = ours
        .list_checkpoints(&Scope::new(NS, EH, CG))
        .await
        .unwrap();
    assert_eq!(
        found,
        [Checkpoint::new(
            (NS, EH, CG),
            "3",
            Some("30".into()),
            Some(3)
        )]
    );
    // With names that are lower-case already, both layouts are the same blobs: no second listing.
    let sent = Recorder::default();
    let same = common::store_on(
        &container,
        Some(sent.install(options(BlobNaming::Verbatim, true))),
    );
    same.list_checkpoints(&Scope::new("ns", "eh", "cg"))
        .await
        .unwrap();
    assert_eq!(sent.take().len(), 1);
}
