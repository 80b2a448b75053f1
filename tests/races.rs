//! Eight OS processes racing for the same 256 partitions of one container.
//!
//! The test binary is its own helper: the test below starts eight copies of this binary, each
//! running only this test with `RACE_CLAIMANT` set, which makes it one claimant. A claimant loops
//! list → claim every partition (with the listed etag, or none where no record exists yet) until a
//! common deadline, and logs every claim the store reported won as
//! `partition, etag it was conditioned on (or "none"), new etag, owner`.
//!
//! Guarantee checked: no two won claims of a partition were conditioned on the same version (or
//! both on "no record"), so nobody ever won a version someone else won; and each partition's won
//! claims form one chain from "no record" to the version the container holds at the end, so every
//! write the service applied was reported to exactly one claimant. Every call either succeeds or
//! loses races: a claimant counts its failed calls and its failed claims (the store's WARN events)
//! apart from lost races, and the test asserts there were none; the contention floor counts lost
//! races only.
//!
//! A test binary of its own, so its eight processes do not share the machine with other tests.

use eventhub_checkpointstore::Scope;
use eventhub_checkpointstore_testkit as common;

use common::{
    connection_string, unique_container,
    wins::{check_chains, Win},
};
use eventhub_checkpointstore::{BlobCheckpointStore, CheckpointStore, Ownership};
use std::{
    collections::HashMap,
    io::Write,
    process::{Command, Stdio},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

const CLAIMANTS: usize = 8;
const PARTITIONS: usize = 256;
const RUN_FOR: Duration = Duration::from_secs(6);
const NS: &str = "races.servicebus.windows.net";
const HUB: &str = "hub";
const GROUP: &str = "$Default";
const TEST_NAME: &str = "eight_processes_never_win_the_same_version_twice";

#[test]
fn eight_processes_never_win_the_same_version_twice() {
    if let Ok(id) = std::env::var("RACE_CLAIMANT") {
        return claimant(&id);
    }
    let container = unique_container();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let store = BlobCheckpointStore::from_connection_string(&connection_string(), &container, None)
        .unwrap();
    assert!(runtime
        .block_on(store.create_container_if_missing())
        .unwrap());

    let logs = tempdir();
    // A common start, late enough for every process to be up, so they race from the first round.
    let start_at = unix_millis() + 1_500;
    let stop_at = start_at + RUN_FOR.as_millis() as u64;
    let mut children: Vec<_> = (0..CLAIMANTS)
        .map(|i| {
            Command::new(std::env::current_exe().unwrap())
                .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
                .env("RACE_CLAIMANT", format!("claimant-{i}"))
                .env("RACE_CONTAINER", &container)
                .env("RACE_LOG", logs.join(format!("{i}.log")))
                .env("RACE_START_AT", start_at.to_string())
                .env("RACE_STOP_AT", stop_at.to_string())
                .stdout(Stdio::null())
                .spawn()
                .expect("start a claimant process")
        })
        .collect();
    for (i, child) in children.iter_mut().enumerate() {
        let status = child.wait().unwrap();
        assert!(status.success(), "claimant {i} failed: {status}");
    }

    let mut wins = Vec::new();
    let (mut attempted, mut lost, mut failures) = (0, 0, Vec::new());
    for i in 0..CLAIMANTS {
        let log = std::fs::read_to_string(logs.join(format!("{i}.log"))).unwrap();
        for line in log.lines() {
            let fields: Vec<&str> = line.split('\t').collect();
            match fields.as_slice() {
                ["summary", a, l] => {
                    attempted += a.parse::<usize>().unwrap();
                    lost += l.parse::<usize>().unwrap();
                }
                ["failure", what] => failures.push(format!("claimant {i}: {what}")),
                _ => wins.push(
                    Win::parse(line).unwrap_or_else(|| panic!("claimant {i} logged {line:?}")),
                ),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&logs);

    let last = runtime
        .block_on(store.list_ownership(&Scope::new(NS, HUB, GROUP)))
        .unwrap();
    let last: HashMap<String, Ownership> = last
        .into_iter()
        .map(|o| (o.partition_id.clone(), o))
        .collect();
    check_chains(&wins, &last);
    assert!(
        failures.is_empty(),
        "{} calls or claims failed (neither won nor lost a race), e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );

    // The race really happened: all partitions were claimed, and a good share of the claims
    // met a version someone else had just written. (How many depends on how the processes'
    // rounds overlap; serial rounds would lose none.)
    assert_eq!(last.len(), PARTITIONS);
    assert!(
        lost * 4 >= attempted,
        "too little contention to prove anything: {attempted} claims, {} won, {lost} lost",
        wins.len()
    );
    println!(
        "races: {} won claims checked ({attempted} attempted by {CLAIMANTS} processes over \
         {PARTITIONS} partitions, {lost} lost races, 0 failures): no double win, one chain per \
         partition",
        wins.len()
    );
}

/// One claimant process: list → claim all partitions, until the deadline.
fn claimant(id: &str) {
    let env = |name: &str| std::env::var(name).unwrap();
    let (start_at, stop_at): (u64, u64) = (
        env("RACE_START_AT").parse().unwrap(),
        env("RACE_STOP_AT").parse().unwrap(),
    );
    let store = BlobCheckpointStore::from_connection_string(
        &connection_string(),
        &env("RACE_CONTAINER"),
        None,
    )
    .unwrap();
    let mut log = std::io::BufWriter::new(std::fs::File::create(env("RACE_LOG")).unwrap());
    // The store reports a claim that failed (rather than lost) inside a call that won others only
    // as a WARN event: count those.
    let warnings = common::LogBuffer::default();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(warnings.clone())
            .finish(),
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    std::thread::sleep(Duration::from_millis(
        start_at.saturating_sub(unix_millis()),
    ));
    let (mut attempted, mut won_total, mut failed) = (0, 0, 0);
    let failure = |log: &mut std::io::BufWriter<std::fs::File>, what: String| {
        writeln!(log, "failure\t{}", what.replace(['\t', '\n'], " ")).unwrap();
    };
    runtime.block_on(async {
        while unix_millis() < stop_at {
            let listed: HashMap<String, Ownership> =
                match store.list_ownership(&Scope::new(NS, HUB, GROUP)).await {
                    Ok(listed) => listed
                        .into_iter()
                        .map(|o| (o.partition_id.clone(), o))
                        .collect(),
                    Err(err) => {
                        failure(&mut log, format!("list_ownership: {err}"));
                        continue;
                    }
                };
            let claims: Vec<Ownership> = (0..PARTITIONS)
                .map(|p| {
                    let partition = p.to_string();
                    Ownership {
                        etag: listed.get(&partition).and_then(|o| o.etag.clone()),
                        ..Ownership::new((NS, HUB, GROUP), partition, id)
                    }
                })
                .collect();
            attempted += claims.len();
            let won = match store.claim_ownership(&claims).await {
                Ok(won) => won,
                Err(err) => {
                    // Nothing won, and at least one claim failed: not a lost race.
                    failure(&mut log, format!("claim_ownership: {err}"));
                    failed += claims.len();
                    continue;
                }
            };
            let logged = std::mem::take(&mut *warnings.0.lock().unwrap());
            for line in String::from_utf8_lossy(&logged).lines() {
                failure(&mut log, line.to_owned());
                failed += 1;
            }
            won_total += won.len();
            for win in Win::of(&claims, &won) {
                writeln!(log, "{}", win.line()).unwrap();
            }
        }
    });
    writeln!(
        log,
        "summary\t{attempted}\t{}",
        attempted - won_total - failed
    )
    .unwrap();
    log.flush().unwrap();
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("races-{}", unique_container()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
