//! Azurite killed (SIGKILL) in the middle of a run of checkpoint updates, and restarted on the
//! same directory.
//!
//! Guarantees checked: while Azurite is down every call ends with a typed timeout or transport
//! error (no panic, no hang); the writer carries on once Azurite is back; and once it has, no
//! partition's checkpoint is older than the last update the store acknowledged, nor newer than
//! the last one attempted.
//!
//! Azurite's `--location` persistence writes its database every 5 s (LokiJS autosave), so a
//! SIGKILL loses what it acknowledged since its last save; Azure Storage commits a write before
//! acknowledging it. What Azurite kept right after the restart tests the emulator, not the store:
//! the test reports how many partitions lost acknowledged updates, and asserts nothing on it.

use crate::common::unique_container;
use eventhub_checkpointstore::Scope;
use eventhub_checkpointstore::ServiceOptions;
use eventhub_checkpointstore::{
    BlobCheckpointStore, BlobCheckpointStoreOptions, Checkpoint, CheckpointStore, Error,
};
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Child, Command},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

const PARTITIONS: usize = 32;
const TIMEOUT: Duration = Duration::from_secs(2);
const NS: &str = "crash.servicebus.windows.net";
const HUB: &str = "hub";
const GROUP: &str = "$Default";
/// Azurite's database file in its `--location` directory.
const DB_FILE: &str = "__azurite_db_blob__.json";

/// One partition's history, as the writer saw it.
#[derive(Default, Debug)]
struct History {
    /// (sequence number, when the store acknowledged it).
    acknowledged: Vec<(i64, Instant)>,
    last_attempted: i64,
}

impl History {
    fn last_acknowledged_before(&self, instant: Instant) -> Option<i64> {
        self.acknowledged
            .iter()
            .filter(|(_, at)| *at < instant)
            .map(|(seq, _)| *seq)
            .max()
    }
}

/// An Azurite blob service of this test's own, persisting to a directory.
struct Azurite {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Azurite {
    fn start(dir: &Path, port: u16) -> Self {
        let bin = std::env::var("AZURITE_BLOB_BIN").unwrap_or_else(|_| {
            panic!("AZURITE_BLOB_BIN is not set: run the tests with scripts/test.sh, which installs Azurite")
        });
        let log = std::fs::File::create(dir.join("azurite.log")).unwrap();
        let mut child = Command::new(bin)
            .current_dir(dir)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(dir)
            .args(["--disableTelemetry", "--silent"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start azurite-blob");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let log = || std::fs::read_to_string(dir.join("azurite.log")).unwrap_or_default();
            if let Some(status) = child.try_wait().unwrap() {
                panic!("Azurite exited ({status}) before answering:\n{}", log());
            }
            assert!(
                Instant::now() < deadline,
                "Azurite did not answer within 60 s:\n{}",
                log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            child,
            dir: dir.to_owned(),
            port,
        }
    }

    fn kill(&mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }

    fn restart(&mut self) {
        *self = Self::start(&self.dir.clone(), self.port);
    }

    /// When Azurite last wrote its database to disk.
    fn saved_at(&self) -> Option<SystemTime> {
        std::fs::metadata(self.dir.join(DB_FILE))
            .and_then(|m| m.modified())
            .ok()
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_acknowledged_is_lost_when_azurite_is_killed() {
    let dir = std::env::temp_dir().join(format!("crash-{}", unique_container()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = crate::common::unused_port();
    let mut azurite = tokio::task::block_in_place(|| Azurite::start(&dir, port));
    let connection = format!(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={};BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;",
        eventhub_checkpointstore::DEVELOPMENT_ACCOUNT_KEY
    );
    let options = BlobCheckpointStoreOptions {
        service: ServiceOptions {
            operation_timeout: Some(TIMEOUT),
            ..Default::default()
        },
        ..Default::default()
    };
    let store =
        BlobCheckpointStore::from_connection_string(&connection, "checkpoints", Some(options))
            .unwrap();
    store.create_container_if_missing().await.unwrap();

    let histories: Arc<Mutex<Vec<History>>> = Arc::new(Mutex::new(
        (0..PARTITIONS).map(|_| History::default()).collect(),
    ));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = tokio::spawn(write_until_stopped(
        store.clone(),
        histories.clone(),
        stop.clone(),
    ));

    // Kill mid-interval, 2.5 s after Azurite's first save of the run's updates.
    let initial_save = azurite.saved_at();
    let saved = loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if azurite.saved_at() != initial_save && !writer.is_finished() {
            break Instant::now();
        }
        assert!(!writer.is_finished(), "the writer stopped early");
    };
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let killed = Instant::now();
    azurite.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    tokio::task::block_in_place(|| azurite.restart());
    let restarted = Instant::now();
    let after_crash = store
        .list_checkpoints(&Scope::new(NS, HUB, GROUP))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let errors = writer.await.expect("the writer did not panic");
    let last = store
        .list_checkpoints(&Scope::new(NS, HUB, GROUP))
        .await
        .unwrap();
    drop(azurite);
    let _ = std::fs::remove_dir_all(&dir);

    // While Azurite was down: typed errors, each within the bound.
    assert!(!errors.is_empty(), "the writer never saw Azurite down");
    for (err, took) in &errors {
        assert!(
            matches!(err, Error::Timeout { .. } | Error::Transport { .. }),
            "not a transport error or timeout: {err:?}"
        );
        // A hang guard (10x the bound): the bound itself shows in the error's type, and a
        // loaded machine may run late.
        assert!(*took < TIMEOUT * 10, "took {took:?}: {err}");
    }

    let histories = histories.lock().unwrap();
    let listed = |checkpoints: &[Checkpoint]| -> HashMap<usize, i64> {
        checkpoints
            .iter()
            .map(|c| (c.partition_id.parse().unwrap(), c.sequence_number.unwrap()))
            .collect()
    };
    let (after_crash, last) = (listed(&after_crash), listed(&last));
    // What Azurite kept across its SIGKILL is the emulator's business (it saves every 5 s), not
    // the store's: reported, not asserted. A second of margin below the save seen on disk: the
    // save's snapshot was taken a little before the file appeared.
    let durable = saved - Duration::from_secs(1);
    let (mut lost_by_azurite, mut older_than_save) = (0, 0);
    for (p, history) in histories.iter().enumerate() {
        let survived = after_crash.get(&p).copied();
        if survived < history.last_acknowledged_before(durable) {
            older_than_save += 1;
        }
        if survived < history.last_acknowledged_before(killed) {
            lost_by_azurite += 1;
        }

        // After the writer carried on: the last acknowledged or a later attempt, never older.
        let acknowledged = history.last_acknowledged_before(Instant::now()).unwrap();
        let restarted_ok = history.acknowledged.iter().any(|(_, at)| *at > restarted);
        assert!(
            restarted_ok,
            "partition {p}: no update acknowledged after the restart"
        );
        let now = last[&p];
        assert!(
            (acknowledged..=history.last_attempted).contains(&now),
            "partition {p}: listed {now}, last acknowledged {acknowledged}, last attempted {}",
            history.last_attempted
        );
    }
    let acknowledged: usize = histories.iter().map(|h| h.acknowledged.len()).sum();
    println!(
        "crash: {acknowledged} updates acknowledged over {PARTITIONS} partitions, {} calls failed \
         while Azurite was down (slowest {:?}); {lost_by_azurite} partitions lost updates Azurite \
         acknowledged after its last save (its 5 s write-behind), {older_than_save} lost more than \
         that",
        errors.len(),
        errors
            .iter()
            .map(|(_, took)| *took)
            .max()
            .unwrap_or_default()
    );
}

/// Updates every partition's checkpoint with the next sequence number, all partitions at once,
/// round after round; returns the errors met and how long each failed call took.
async fn write_until_stopped(
    store: BlobCheckpointStore,
    histories: Arc<Mutex<Vec<History>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<(Error, Duration)> {
    let mut errors = Vec::new();
    let mut sequence_number = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        sequence_number += 1;
        let updates = (0..PARTITIONS).map(|p| {
            let store = &store;
            let histories = &histories;
            async move {
                let checkpoint = Checkpoint::new(
                    (NS, HUB, GROUP),
                    p.to_string(),
                    Some(sequence_number.to_string()),
                    Some(sequence_number),
                );
                histories.lock().unwrap()[p].last_attempted = sequence_number;
                let started = Instant::now();
                let result = store.update_checkpoint(&checkpoint).await;
                match result {
                    Ok(()) => {
                        let at = Instant::now();
                        histories.lock().unwrap()[p]
                            .acknowledged
                            .push((sequence_number, at));
                        None
                    }
                    Err(err) => Some((err, started.elapsed())),
                }
            }
        });
        errors.extend(
            futures::future::join_all(updates)
                .await
                .into_iter()
                .flatten(),
        );
    }
    errors
}
