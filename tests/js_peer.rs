//! JavaScript's blob checkpoint store (`@azure/eventhubs-checkpointstore-blob` 2.0.0 over
//! `@azure/storage-blob` 12.32.0, pinned in `tools/js-peer/package.json`, installed by
//! `scripts/js-peer.sh`, which `scripts/test.sh` runs and whose directory it passes in `JS_PEER`)
//! and this crate's, on one container: each reads what the other wrote (ownership with an owner
//! and relinquished, checkpoints up to the largest sequence number JavaScript can hold), and
//! their claims race on the same versions.

use eventhub_checkpointstore::{Checkpoint, CheckpointStore, Ownership, Scope};
use eventhub_checkpointstore_testkit as common;
use serde_json::{json, Value};
use std::{collections::BTreeMap, process::Command};

const NS: &str = "js.servicebus.windows.net";
const HUB: &str = "hub";
const GROUP: &str = "$default";
/// The largest integer a JavaScript number holds exactly (2^53 - 1).
const MAX_SAFE: i64 = 9_007_199_254_740_991;

fn scope() -> Scope {
    Scope::new(NS, HUB, GROUP)
}

/// JavaScript's store, one command (`tools/js-peer/store.js`); its JSON answer.
fn js(container: &str, command: &str, input: Option<Value>) -> Value {
    let dir = std::env::var("JS_PEER").unwrap_or_else(|_| {
        panic!(
            "JS_PEER is not set. Run the tests with scripts/test.sh, which installs JavaScript's \
             store with scripts/js-peer.sh, or set it to the directory that prints."
        )
    });
    let mut node = Command::new("node");
    node.arg(format!("{dir}/store.js")).args([
        common::connection_string().as_str(),
        container,
        NS,
        HUB,
        GROUP,
        command,
    ]);
    if let Some(input) = input {
        node.arg(input.to_string());
    }
    let out = node.output().expect("node runs");
    assert!(
        out.status.success(),
        "store.js {command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("store.js prints JSON")
}

/// An ETag without its quotes: JavaScript's listing gives them bare (as the listing's XML
/// does), its claims and this crate quoted (as the response header does).
fn bare(etag: &str) -> String {
    etag.trim_matches('"').to_owned()
}

/// This crate's ownership records by partition id.
async fn owned(store: &impl CheckpointStore) -> BTreeMap<String, Ownership> {
    store
        .list_ownership(&scope())
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.partition_id.clone(), o))
        .collect()
}

/// JavaScript's records by partition id.
fn by_partition(records: &Value) -> BTreeMap<String, Value> {
    records
        .as_array()
        .expect("an array")
        .iter()
        .map(|r| (r["partitionId"].as_str().unwrap().to_owned(), r.clone()))
        .collect()
}

#[tokio::test]
async fn javascript_reads_what_this_crate_writes() {
    let container = common::fresh_container().await;
    let store = common::store_on(&container, None);
    let won = store
        .claim_ownership(&[
            Ownership::new(scope(), "0", "rust-a"),
            Ownership::new(scope(), "1", "rust-b"),
        ])
        .await
        .unwrap();
    assert_eq!(won.len(), 2);
    // Partition 1 relinquished: an empty owner.
    let mut released = won.iter().find(|o| o.partition_id == "1").unwrap().clone();
    released.owner_id = Some(String::new());
    assert_eq!(store.claim_ownership(&[released]).await.unwrap().len(), 1);
    for (p, offset, seq) in [("0", "4096", 4), ("1", "9223372036854775807", MAX_SAFE)] {
        store
            .update_checkpoint(&Checkpoint::new(scope(), p, Some(offset.into()), Some(seq)))
            .await
            .unwrap();
    }
    let ours = owned(&store).await;

    let owners = by_partition(&js(&container, "list-ownership", None));
    assert_eq!(owners["0"]["ownerId"], "rust-a");
    assert_eq!(owners["1"]["ownerId"], "", "relinquished");
    for p in ["0", "1"] {
        assert_eq!(
            owners[p]["etag"].as_str().map(bare),
            ours[p].etag.as_ref().map(|e| bare(e.as_ref())),
            "partition {p}: the same version"
        );
    }
    let checkpoints = by_partition(&js(&container, "list-checkpoints", None));
    assert_eq!(checkpoints["0"]["offset"], "4096");
    assert_eq!(checkpoints["0"]["sequenceNumber"], 4);
    assert_eq!(checkpoints["1"]["offset"], "9223372036854775807");
    assert_eq!(checkpoints["1"]["sequenceNumber"], MAX_SAFE);
}

/// Past 2^53 a JavaScript number is not exact: JavaScript's store reads 2^53 + 1 as 2^53. This
/// crate keeps every 64-bit sequence number; an event hub partition reaches 2^53 after 285 years
/// at a million events a second.
#[tokio::test]
async fn javascript_rounds_sequence_numbers_past_2_to_the_53() {
    let container = common::fresh_container().await;
    let store = common::store_on(&container, None);
    store
        .update_checkpoint(&Checkpoint::new(
            scope(),
            "0",
            Some("1".into()),
            Some(MAX_SAFE + 2),
        ))
        .await
        .unwrap();
    let checkpoints = by_partition(&js(&container, "list-checkpoints", None));
    assert_eq!(
        checkpoints["0"]["sequenceNumber"].as_f64(),
        Some(9_007_199_254_740_992.0)
    );
    let ours = store.list_checkpoints(&scope()).await.unwrap();
    assert_eq!(ours[0].sequence_number, Some(MAX_SAFE + 2));
}

#[tokio::test]
async fn this_crate_reads_what_javascript_writes_and_their_claims_race_on_one_version() {
    let container = common::fresh_container().await;
    let store = common::store_on(&container, None);
    // JavaScript's store needs the container to exist, as a processor's does.
    store.create_container_if_missing().await.unwrap();
    let won = js(
        &container,
        "claim",
        Some(
            json!([{ "partitionId": "2", "ownerId": "js-a" }, { "partitionId": "3", "ownerId": "js-b" }]),
        ),
    );
    let won = by_partition(&won);
    assert_eq!(won.len(), 2);
    // JavaScript relinquishes 3: an empty owner, on its version.
    let released = js(
        &container,
        "claim",
        Some(json!([{ "partitionId": "3", "ownerId": "", "etag": won["3"]["etag"] }])),
    );
    assert_eq!(by_partition(&released).len(), 1);
    js(
        &container,
        "update-checkpoint",
        Some(json!({ "partitionId": "2", "offset": "123", "sequenceNumber": MAX_SAFE })),
    );
    js(
        &container,
        "update-checkpoint",
        Some(json!({ "partitionId": "3", "offset": "0", "sequenceNumber": 0 })),
    );

    let ours = owned(&store).await;
    assert_eq!(ours["2"].owner_id.as_deref(), Some("js-a"));
    assert!(
        ours["3"].owner_id.as_deref().unwrap_or_default().is_empty(),
        "relinquished by JavaScript: {:?}",
        ours["3"]
    );
    assert_eq!(
        ours["2"].etag.as_ref().map(|e| bare(e.as_ref())),
        won["2"]["etag"].as_str().map(bare),
        "the same version"
    );
    assert_eq!(
        common::positions(&store, &scope()).await,
        BTreeMap::from([
            ("2".to_owned(), (Some("123".to_owned()), Some(MAX_SAFE))),
            ("3".to_owned(), (Some("0".to_owned()), Some(0))),
        ])
    );

    // This crate takes partition 2 on JavaScript's version; JavaScript's renewal on it, now
    // stale, loses (an empty answer, not an error), and this crate's claim stands.
    let take = Ownership {
        owner_id: Some("rust-c".into()),
        ..ours["2"].clone()
    };
    assert_eq!(store.claim_ownership(&[take]).await.unwrap().len(), 1);
    let renewal = js(
        &container,
        "claim",
        Some(json!([{ "partitionId": "2", "ownerId": "js-a", "etag": won["2"]["etag"] }])),
    );
    assert_eq!(renewal, json!([]), "JavaScript's stale claim lost");
    let owners = by_partition(&js(&container, "list-ownership", None));
    assert_eq!(owners["2"]["ownerId"], "rust-c");
}
