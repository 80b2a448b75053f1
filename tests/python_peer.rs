//! A mixed fleet: two of this crate's balancers beside two of Python's real processor load
//! balancers (`azure-eventhub`'s `OwnershipManager`, as its `EventProcessor` runs it, over
//! `azure-eventhub-checkpointstoreblob-aio`'s `BlobCheckpointStore`; versions pinned in
//! `tools/python-peer/requirements.txt`, installed by `scripts/python-peer.sh`, which
//! `scripts/test.sh` runs and whose python it passes in `PYTHON_PEER`). The Python consumers' Event
//! Hubs client is a stand-in that only supplies partition ids (`tools/python-peer/balancer.py`).
//!
//! Python's claim of a partition that has no ownership record yet sends Set Blob Metadata with
//! `If-None-Match: *`, which Azurite answers with 200 for an existing blob (docs/interoperability.md),
//! so on Azurite two claimants can both "win" a new partition. Real Azure answers 412. The test
//! keeps Python off that path: a Rust consumer claims all 32 partitions before the Python ones
//! start, so every claim Python makes names an etag (Set Blob Metadata `If-Match`), which Azurite
//! checks correctly. What is asserted is therefore the steady state of a fleet whose records exist,
//! which is every fleet after its first minute.

use eventhub_checkpointstore::Scope;
use eventhub_checkpointstore_testkit as common;

use eventhub_checkpointstore::{
    balancer::{BalancerOptions, PartitionBalancer, Strategy},
    checkpointer::{Checkpointer, CheckpointerOptions},
    CheckpointStore,
};
use std::{
    collections::BTreeMap,
    num::NonZeroU64,
    process::Stdio,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

const NS: &str = "mixed.servicebus.windows.net";
const HUB: &str = "hub";
const GROUP: &str = "$default";
const PARTITIONS: usize = 32;
const INTERVAL: Duration = Duration::from_secs(1);
const EXPIRATION: Duration = Duration::from_secs(6);
/// Generous: Python's greedy balancer takes one partition per cycle when it steals.
const DEADLINE: Duration = Duration::from_secs(90);

fn python() -> String {
    std::env::var("PYTHON_PEER").unwrap_or_else(|_| {
        panic!(
            "PYTHON_PEER is not set. Run the tests with scripts/test.sh, which installs Python's \
             processor with scripts/python-peer.sh, or set it to the python that prints."
        )
    })
}

fn python_consumer(container: &str, owner: &str) -> Child {
    python_peer(container, owner, PARTITIONS, None)
}

/// Python's load balancer as `owner` over `partitions`; with `checkpoint_at`, it also checkpoints
/// every partition it owns at that sequence number after each cycle.
fn python_peer(
    container: &str,
    owner: &str,
    partitions: usize,
    checkpoint_at: Option<i64>,
) -> Child {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/python-peer/balancer.py");
    let mut child = Command::new(python())
        .arg(script)
        .args([
            &common::connection_string(),
            container,
            NS,
            HUB,
            GROUP,
            owner,
            &INTERVAL.as_secs_f64().to_string(),
            &EXPIRATION.as_secs_f64().to_string(),
            &partitions.to_string(),
        ])
        .args(checkpoint_at.map(|n| n.to_string()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start a Python consumer");
    // Its report of each cycle goes to the test's output, for when something fails.
    let stdout = child.stdout.take().unwrap();
    let owner = owner.to_owned();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("{owner}: {line}");
        }
    });
    child
}

/// Owner of each partition with an unexpired claim, by the listing (judged by this host's clock,
/// as Python judges).
async fn live_owners(store: &dyn CheckpointStore) -> BTreeMap<String, String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    store
        .list_ownership(&Scope::new(NS, HUB, GROUP))
        .await
        .unwrap()
        .into_iter()
        .filter(|o| {
            o.last_modified
                .is_some_and(|t| now - t.unix_timestamp() < EXPIRATION.as_secs() as i64)
        })
        .filter_map(|o| Some((o.partition_id, o.owner_id?)))
        .collect()
}

fn counts(owners: &BTreeMap<String, String>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for owner in owners.values() {
        *counts.entry(owner.clone()).or_default() += 1;
    }
    counts
}

/// Waits until every partition has a live owner among `fleet` and the counts are `share` (in any
/// order); then checks that no partition changes owner for four intervals.
async fn settles(store: &dyn CheckpointStore, fleet: &[&str], share: &[usize]) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let settled = loop {
        let owners = live_owners(store).await;
        let by_owner = counts(&owners);
        let mut sizes: Vec<usize> = by_owner.values().copied().collect();
        sizes.sort_unstable();
        if owners.len() == PARTITIONS
            && by_owner.keys().all(|o| fleet.contains(&o.as_str()))
            && sizes == share
        {
            break owners;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no complete, fair assignment over {fleet:?} within {DEADLINE:?}: {by_owner:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    eprintln!("settled: {:?}", counts(&settled));
    tokio::time::sleep(INTERVAL * 4).await;
    assert_eq!(
        live_owners(store).await,
        settled,
        "partitions changed owner after a fair assignment"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_and_python_balancers_share_fairly_and_take_over_a_killed_python_consumer() {
    let container = common::fresh_container().await;
    let store: Arc<dyn CheckpointStore> = Arc::new(common::store_on(&container, None));
    let options = BalancerOptions {
        interval: INTERVAL,
        expiration: EXPIRATION,
        strategy: Strategy::Greedy,
        ..Default::default()
    };
    let rust = |name: &str| {
        Arc::new(
            PartitionBalancer::new(
                store.clone(),
                (NS, HUB, GROUP),
                name,
                (0..PARTITIONS).map(|p| p.to_string()),
                options.clone(),
            )
            .unwrap(),
        )
    };
    let (rust_1, rust_2) = (rust("rust-1"), rust("rust-2"));
    // Every ownership record exists before Python runs (see the module docs).
    assert_eq!(rust_1.cycle().await.unwrap().len(), PARTITIONS);

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running: Vec<_> = [rust_1.clone(), rust_2.clone()]
        .into_iter()
        .map(|balancer| {
            let mut stopped = stopped.clone();
            tokio::spawn(async move {
                balancer
                    .run(
                        async move {
                            let _ = stopped.wait_for(|s| *s).await;
                        },
                        |_| {},
                    )
                    .await
            })
        })
        .collect();
    let python_1 = python_consumer(&container, "python-1");
    let mut python_2 = python_consumer(&container, "python-2");

    settles(
        store.as_ref(),
        &["rust-1", "rust-2", "python-1", "python-2"],
        &[8, 8, 8, 8],
    )
    .await;

    // SIGKILL: no release. Its partitions are taken after they expire.
    python_2.kill().await.unwrap();
    settles(
        store.as_ref(),
        &["rust-1", "rust-2", "python-1"],
        &[10, 11, 11],
    )
    .await;

    stop.send(true).unwrap();
    for run in running {
        run.await.unwrap().unwrap();
    }
    drop(python_1);
    let left = live_owners(store.as_ref()).await;
    assert!(
        left.values().all(|o| o == "python-1"),
        "the Rust consumers relinquished on shutdown: {left:?}"
    );
}

/// Python's processor steals partitions from a Rust consumer that hands over (it holds nothing,
/// as no other language's processor does), resumes and checkpoints further at once. The Rust
/// consumer learns of the steals at its next cycle and then writes its last positions, which are
/// older: none of them lands over Python's checkpoints. (Fails when the checkpointer writes with
/// `update_checkpoint`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_stealing_from_a_rust_consumer_keeps_its_newer_checkpoints() {
    const SMALL: usize = 8;
    let container = common::fresh_container().await;
    let store: Arc<dyn CheckpointStore> = Arc::new(common::store_on(&container, None));
    let scope = Scope::new(NS, HUB, GROUP);
    let checkpointer = Arc::new(
        Checkpointer::new(
            store.clone(),
            scope.clone(),
            CheckpointerOptions {
                every_events: NonZeroU64::new(1_000_000),
                every: None,
            },
        )
        .unwrap(),
    );
    let rust = PartitionBalancer::new(
        store.clone(),
        scope.clone(),
        "rust",
        (0..SMALL).map(|p| p.to_string()),
        BalancerOptions {
            interval: INTERVAL,
            expiration: EXPIRATION,
            strategy: Strategy::Greedy,
            ..Default::default()
        },
    )
    .unwrap()
    .with_checkpointer(checkpointer.clone());
    // Every ownership record exists before Python runs (see the module docs).
    assert_eq!(rust.cycle().await.unwrap().len(), SMALL);
    for p in 0..SMALL {
        for seq in 0..=50i64 {
            checkpointer
                .record(&p.to_string(), Some(seq.to_string()), Some(seq))
                .await
                .unwrap();
        }
    }

    let python = python_peer(&container, "python", SMALL, Some(1000));
    // Python steals one partition per cycle and checkpoints what it owns at 1000.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let stolen = loop {
        let stolen: Vec<String> = store
            .list_checkpoints(&scope)
            .await
            .unwrap()
            .into_iter()
            .filter(|c| c.sequence_number == Some(1000))
            .map(|c| c.partition_id)
            .collect();
        if stolen.len() >= 2 {
            break stolen;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Python stole nothing within {DEADLINE:?}"
        );
        rust.cycle().await.unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // The Rust consumer finds the steals and writes its last positions of everything it lost.
    rust.cycle().await.unwrap();
    rust.cycle().await.unwrap();
    drop(python);
    rust.relinquish().await.unwrap();
    checkpointer.flush_all().await.unwrap();
    let after: BTreeMap<String, Option<i64>> = store
        .list_checkpoints(&scope)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.partition_id, c.sequence_number))
        .collect();
    for p in &stolen {
        assert_eq!(
            after[p],
            Some(1000),
            "partition {p}: Python's checkpoint moved back: {after:?}"
        );
    }
    assert!(
        checkpointer.stats().refused >= stolen.len() as u64,
        "{after:?}"
    );
    // What Python did not take keeps the Rust consumer's last position.
    assert!(after.values().all(|s| *s == Some(50) || *s == Some(1000)));
}
