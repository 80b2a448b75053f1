//! A fleet of consumer processes shares the 32 partitions of an event hub through a
//! [`PartitionBalancer`] over a `BlobCheckpointStore`, processes synthetic events and checkpoints
//! them. The fleet grows from one consumer to four, one is killed (SIGKILL: no relinquish, no last
//! checkpoint), and the survivors take over its partitions from its last checkpoints. The run
//! ends with a summary that is checked, not just printed; a failed check exits non-zero.
//!
//! Run it with `scripts/demo.sh`, which starts Azurite when `AZURE_STORAGE_CONNECTION_STRING` is
//! not set. Against a real account, set that variable (and optionally `CHECKPOINT_CONTAINER`);
//! each run uses a consumer group of its own.
//!
//! The demo is one binary in two roles: without arguments it is the conductor, which starts the
//! consumers as child processes of itself (`demo consumer <name> <group> <start>`), reads what
//! they report on stdout, and watches the store. The event hub is simulated: partition `p` has
//! event `n` available `n / RATE` seconds after the start, until `EVENTS_PER_PARTITION`.

// The recording store wrapper and the "no version won twice" check, shared with the tests.
use eventhub_checkpointstore_testkit::wins::{self, recording, Win};

use eventhub_checkpointstore::Scope;
use eventhub_checkpointstore::{
    balancer::{BalancerOptions, PartitionBalancer, Strategy},
    checkpointer::{Checkpointer, CheckpointerOptions},
    BlobCheckpointStore, CheckpointStore, Ownership,
};
use std::{
    collections::{BTreeMap, HashMap},
    error::Error,
    io::Write,
    process::Stdio,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    sync::mpsc,
};

const NAMESPACE: &str = "demo.servicebus.windows.net";
const EVENT_HUB: &str = "telemetry";
const PARTITIONS: usize = 32;
/// Events per second per partition while the simulated producers run.
const RATE: u64 = 25;
const PRODUCE_FOR: Duration = Duration::from_secs(20);
const EVENTS_PER_PARTITION: u64 = RATE * PRODUCE_FOR.as_secs();
const INTERVAL: Duration = Duration::from_millis(500);
/// Azurite and Azure report modification times to the second, so an expiration of a few
/// intervals leaves room for that rounding.
const EXPIRATION: Duration = Duration::from_secs(3);
const PROCESS_EVERY: Duration = Duration::from_millis(100);
/// Each partition's position is written every this many events (about 1 s of them), through a
/// coalescing `Checkpointer`, so a killed consumer leaves events past its last checkpoint.
const CHECKPOINT_EVERY_EVENTS: u64 = 25;
/// (consumer, when it starts); the second one is killed at `KILL_AT`.
const FLEET: [(char, Duration); 4] = [
    ('A', Duration::from_secs(0)),
    ('B', Duration::from_secs(2)),
    ('C', Duration::from_secs(5)),
    ('D', Duration::from_secs(8)),
];
const VICTIM: usize = 1;
// Between two of its checkpoints (each partition is written every second or so), so it dies with events
// processed but not yet checkpointed.
const KILL_AT: Duration = Duration::from_millis(13_300);
const GIVE_UP_AFTER: Duration = Duration::from_secs(50);

type AnyResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

#[tokio::main]
async fn main() -> AnyResult<()> {
    let connection = std::env::var("AZURE_STORAGE_CONNECTION_STRING").map_err(|_| {
        "AZURE_STORAGE_CONNECTION_STRING is not set (scripts/demo.sh sets it for Azurite)"
    })?;
    let container =
        std::env::var("CHECKPOINT_CONTAINER").unwrap_or_else(|_| "checkpointstore-demo".into());
    let store = Arc::new(BlobCheckpointStore::from_connection_string(
        &connection,
        &container,
        None,
    )?);
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [role, name, group, start] if role == "consumer" => {
            consumer(store, name.clone(), group.clone(), start.parse()?).await
        }
        [] => conductor(store).await,
        _ => Err("usage: demo (the conductor starts its consumers itself)".into()),
    }
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Events `0..available` of every partition exist at `now` (the simulated event hub).
fn available(start: u64, now: u64) -> u64 {
    (now.saturating_sub(start) * RATE / 1000).min(EVENTS_PER_PARTITION)
}

fn partition_ids() -> impl Iterator<Item = String> {
    (0..PARTITIONS).map(|p| p.to_string())
}

// ---------------------------------------------------------------------------------------------
// A consumer: balances, processes what it owns, checkpoints, and reports each step on stdout.

/// One line per fact, flushed at once, so the conductor sees everything written before a kill.
fn report(line: std::fmt::Arguments) {
    let mut out = std::io::stdout().lock();
    // A closed pipe means the conductor is gone; the consumer stops at its next read of stdin.
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

async fn consumer(
    store: Arc<BlobCheckpointStore>,
    name: String,
    group: String,
    start: u64,
) -> AnyResult<()> {
    // Every claim this consumer wins is reported, so the conductor can check that no version of
    // a partition was won twice across the fleet.
    let recording = Arc::new(recording((*store).clone()));
    let checkpointer = Arc::new(Checkpointer::new(
        store.clone(),
        (NAMESPACE, EVENT_HUB, &group),
        CheckpointerOptions {
            every_events: Some(std::num::NonZeroU64::new(CHECKPOINT_EVERY_EVENTS).ok_or("zero")?),
            every: None,
        },
    )?);
    let balancer = Arc::new(
        PartitionBalancer::new(
            recording.clone(),
            (NAMESPACE, EVENT_HUB, &group),
            &name,
            partition_ids(),
            BalancerOptions {
                interval: INTERVAL,
                expiration: EXPIRATION,
                strategy: Strategy::Greedy,
                ..Default::default()
            },
        )?
        .with_checkpointer(checkpointer.clone()),
    );
    let report_wins = {
        let wins = recording.hooks.clone();
        move || {
            for win in wins.take() {
                report(format_args!("won\t{}", win.line()));
            }
        }
    };

    // The conductor stops a consumer gracefully by closing its stdin.
    let (stop_tx, mut stop) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(_)) = lines.next_line().await {}
        let _ = stop_tx.send(true);
    });
    let (done_tx, done) = tokio::sync::oneshot::channel::<()>();
    let balancing = {
        let balancer = balancer.clone();
        let report_wins = report_wins.clone();
        tokio::spawn(async move {
            let stopped = async {
                let _ = done.await;
            };
            balancer
                .run(stopped, |result| match result {
                    Ok(_) => {
                        report_wins();
                        let claims: Vec<String> = balancer
                            .claims()
                            .iter()
                            .map(|o| {
                                let etag = o.etag.as_ref().map_or("-", |e| e.as_ref());
                                format!("{}={}", o.partition_id, etag)
                            })
                            .collect();
                        report(format_args!("owned {}", claims.join(" ")));
                    }
                    Err(err) => eprintln!(
                        "consumer {}: balancing cycle failed: {err}",
                        balancer.owner_id()
                    ),
                })
                .await
        })
    };

    // Next event to process, per owned partition.
    let mut next: BTreeMap<String, u64> = BTreeMap::new();
    let mut tick = tokio::time::interval(PROCESS_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        let owned = balancer.ready();
        next.retain(|p, _| owned.contains(p));
        if owned.iter().any(|p| !next.contains_key(p)) {
            // Newly owned partitions resume from the store's checkpoint, whoever wrote it.
            let checkpoints = store
                .list_checkpoints(&Scope::new(NAMESPACE, EVENT_HUB, &group))
                .await?;
            let new: Vec<&String> = owned.iter().filter(|p| !next.contains_key(*p)).collect();
            for p in new {
                let from = checkpoints
                    .iter()
                    .find(|c| &c.partition_id == p)
                    .and_then(|c| c.sequence_number)
                    .map_or(0, |s| s as u64 + 1);
                report(format_args!("resume {p} {from}"));
                next.insert(p.clone(), from);
            }
        }
        let upto = available(start, unix_millis());
        for (p, from) in next.iter_mut() {
            if *from < upto {
                report(format_args!("processed {p} {} {}", *from, upto - 1));
                // Each processed event is recorded; the checkpointer writes every
                // CHECKPOINT_EVERY_EVENTS of a partition and says when it did.
                for seq in *from..upto {
                    match checkpointer
                        .record(p, Some((seq * 100).to_string()), Some(seq as i64))
                        .await
                    {
                        Ok(true) => report(format_args!("checkpointed {p} {seq}")),
                        Ok(false) => {}
                        Err(err) => eprintln!("checkpoint of partition {p} failed: {err}"),
                    }
                }
                *from = upto;
            }
        }
    }
    // Graceful stop: `run` relinquishes, writing each partition's last position first.
    let _ = done_tx.send(());
    balancing.await??;
    report_wins();
    let stats = checkpointer.stats();
    report(format_args!("stats {} {}", stats.recorded, stats.writes));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The conductor: starts and kills consumers, tallies their reports, watches the store, verifies.

struct Member {
    letter: char,
    child: Option<Child>,
    alive: bool,
    /// Its claims after its last cycle: partition -> etag.
    claims: HashMap<usize, String>,
    processed: u64,
    /// Checkpoint writes acknowledged.
    checkpoints: u64,
    /// What its checkpointer reported at a graceful stop: (positions recorded, writes).
    stats: Option<(u64, u64)>,
}

#[derive(Default)]
struct Tally {
    /// Per partition and event: how often it was processed, and by whom first.
    seen: Vec<Vec<(u32, Option<usize>)>>,
    /// Events processed more than once, counting every repeat.
    reprocessed: u64,
    /// The last event the victim processed, per partition.
    victim_last: Vec<Option<u64>>,
    /// Every checkpoint write acknowledged, per partition, in the order the consumers reported
    /// them, with the consumer that wrote it.
    acked: Vec<Vec<(usize, u64)>>,
    /// Every claim won, by any consumer (relinquishes included).
    wins: Vec<Win>,
    /// Resume points of the victim's partitions after the kill: (partition, resumed at, ok).
    takeovers: BTreeMap<usize, (u64, bool)>,
    /// How long after the kill the last of the victim's partitions was resumed by a survivor.
    takeover_time: Option<Duration>,
    /// Partitions resumed by a consumer other than the first one: steals, expiries, the kill.
    handovers: u64,
    snapshots: u64,
    double_owner: Vec<String>,
    stale_beliefs: u64,
}

async fn conductor(store: Arc<BlobCheckpointStore>) -> AnyResult<()> {
    let created = store.create_container_if_missing().await?;
    let group = format!("demo-{}", unix_millis());
    println!(
        "container {} ({}), event hub {NAMESPACE}/{EVENT_HUB}, consumer group {group}",
        store.container_url(),
        if created { "created" } else { "exists" }
    );
    println!(
        "{PARTITIONS} partitions x {EVENTS_PER_PARTITION} synthetic events ({RATE}/s for {}s); \
         balancer: greedy, interval {:?}, expiration {:?}; checkpoint every {CHECKPOINT_EVERY_EVENTS} events of a partition\n",
        PRODUCE_FOR.as_secs(),
        INTERVAL,
        EXPIRATION,
    );
    println!(
        "one letter per partition: its owner in the store (. none, lower case: a killed consumer)"
    );
    println!(
        "{:>6}  {:<32} {:<19} {:>6}  {:>11}  {:>11}",
        "time", "partitions 0..31", "owned", "events", "reprocessed", "checkpoints"
    );

    let exe = std::env::current_exe()?;
    let start = unix_millis();
    let began = Instant::now();
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, String)>();
    let mut fleet: Vec<Member> = Vec::new();
    let mut tally = Tally {
        seen: vec![vec![(0, None); EVENTS_PER_PARTITION as usize]; PARTITIONS],
        acked: vec![Vec::new(); PARTITIONS],
        victim_last: vec![None; PARTITIONS],
        ..Tally::default()
    };
    let mut killed_at: Option<Instant> = None;
    let mut victim_holdings: Vec<usize> = Vec::new();
    let mut owners: Vec<Option<Ownership>> = vec![None; PARTITIONS];
    let mut watch = tokio::time::interval(Duration::from_millis(250));
    let mut frames = 0u64;

    let outcome: AnyResult<()> = loop {
        let elapsed = began.elapsed();
        if fleet.len() < FLEET.len() && elapsed >= FLEET[fleet.len()].1 {
            let letter = FLEET[fleet.len()].0;
            let mut child = Command::new(&exe)
                .args(["consumer", &letter.to_string(), &group, &start.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()?;
            let stdout = child.stdout.take().ok_or("child has no stdout")?;
            let (tx, index) = (tx.clone(), fleet.len());
            tokio::spawn(async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let _ = tx.send((index, line));
                }
            });
            fleet.push(Member {
                letter,
                child: Some(child),
                alive: true,
                claims: HashMap::new(),
                processed: 0,
                checkpoints: 0,
                stats: None,
            });
            println!(
                "{:>5.1}s  + consumer {letter} starts",
                elapsed.as_secs_f64()
            );
        }
        if killed_at.is_none() && elapsed >= KILL_AT {
            let victim = &mut fleet[VICTIM];
            if let Some(child) = victim.child.as_mut() {
                child.start_kill()?; // SIGKILL: no relinquish, no final checkpoint
                child.wait().await?;
            }
            victim.alive = false;
            killed_at = Some(Instant::now());
            // What the store says it held, now that it can no longer change anything.
            victim_holdings = store
                .list_ownership(&Scope::new(NAMESPACE, EVENT_HUB, &group))
                .await?
                .iter()
                .filter(|o| o.owner_id.as_deref() == Some(&victim.letter.to_string()))
                .filter_map(|o| o.partition_id.parse().ok())
                .collect();
            println!(
                "{:>5.1}s  x consumer {} killed (SIGKILL: no relinquish, no last checkpoint) holding {} partitions",
                elapsed.as_secs_f64(),
                victim.letter,
                victim_holdings.len()
            );
        }

        tokio::select! {
            Some((index, line)) = rx.recv() => {
                absorb(&mut fleet, &mut tally, index, &line, killed_at, &victim_holdings);
                continue;
            }
            _ = watch.tick() => {}
        }

        // Every 250 ms: a snapshot of the store, checked against what the live consumers hold.
        let listed = store
            .list_ownership(&Scope::new(NAMESPACE, EVENT_HUB, &group))
            .await?;
        owners = vec![None; PARTITIONS];
        for o in listed {
            if let Ok(p) = o.partition_id.parse::<usize>() {
                if p < PARTITIONS {
                    owners[p] = Some(o);
                }
            }
        }
        check_snapshot(&fleet, &owners, &mut tally);
        frames += 1;
        if frames.is_multiple_of(4) {
            print_frame(began.elapsed(), &fleet, &owners, &tally);
        }

        let all_done = tally
            .seen
            .iter()
            .all(|events| events.iter().all(|(n, _)| *n > 0));
        if all_done && fleet.len() == FLEET.len() {
            break Ok(());
        }
        if began.elapsed() > GIVE_UP_AFTER {
            break Err("the fleet did not process every event in time".into());
        }
    };

    // Graceful stop of the survivors: closing stdin makes each checkpoint and relinquish.
    for member in fleet.iter_mut().filter(|m| m.alive) {
        if let Some(mut child) = member.child.take() {
            drop(child.stdin.take());
            let status = child.wait().await?;
            if !status.success() {
                tally
                    .double_owner
                    .push(format!("consumer {} exited with {status}", member.letter));
            }
        }
    }
    while let Ok((index, line)) = rx.try_recv() {
        absorb(
            &mut fleet,
            &mut tally,
            index,
            &line,
            killed_at,
            &victim_holdings,
        );
    }
    let left = store
        .list_ownership(&Scope::new(NAMESPACE, EVENT_HUB, &group))
        .await?;
    let still_owned = left.iter().filter(|o| o.owner_id.is_some()).count();
    // Every partition's last event, written by whoever processed it last.
    let final_checkpoints = store
        .list_checkpoints(&Scope::new(NAMESPACE, EVENT_HUB, &group))
        .await?
        .iter()
        .filter(|c| c.sequence_number == Some(EVENTS_PER_PARTITION as i64 - 1))
        .count();
    println!(
        "{:>5.1}s  the survivors stop gracefully: they checkpoint and relinquish\n",
        began.elapsed().as_secs_f64()
    );
    outcome?;
    summarize(
        &fleet,
        &tally,
        killed_at.is_some(),
        &victim_holdings,
        still_owned,
        final_checkpoints,
    )
}

/// Folds one reported line of consumer `index` into the tally.
fn absorb(
    fleet: &mut [Member],
    tally: &mut Tally,
    index: usize,
    line: &str,
    killed_at: Option<Instant>,
    victim_holdings: &[usize],
) {
    if let Some(win) = line.strip_prefix("won\t").and_then(Win::parse) {
        tally.wins.push(win);
        return;
    }
    let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
    let nums: Vec<u64> = rest.split(' ').filter_map(|w| w.parse().ok()).collect();
    match (kind, nums.as_slice()) {
        ("owned", _) => {
            fleet[index].claims = rest
                .split(' ')
                .filter_map(|w| w.split_once('='))
                .filter_map(|(p, etag)| Some((p.parse().ok()?, etag.to_string())))
                .collect();
        }
        ("processed", &[p, from, to]) => {
            let p = p as usize;
            for seq in from..=to {
                let (count, first) = &mut tally.seen[p][seq as usize];
                *count += 1;
                if first.is_none() {
                    *first = Some(index);
                } else {
                    tally.reprocessed += 1;
                }
            }
            if index == VICTIM {
                tally.victim_last[p] = Some(to);
            }
            fleet[index].processed += to - from + 1;
        }
        ("checkpointed", &[p, seq]) => {
            fleet[index].checkpoints += 1;
            tally.acked[p as usize].push((index, seq));
        }
        ("stats", &[recorded, writes]) => fleet[index].stats = Some((recorded, writes)),

        ("resume", &[p, from]) => {
            let p = p as usize;
            if tally.seen[p][0].1.is_some() {
                tally.handovers += 1;
            }
            if killed_at.is_some()
                && index != VICTIM
                && victim_holdings.contains(&p)
                && !tally.takeovers.contains_key(&p)
            {
                // At least the victim's last acknowledged checkpoint of the partition (a write
                // the kill interrupted may have landed too), and never past an event nobody had
                // processed (that would lose it). A partition the victim had just taken and not
                // yet processed resumes from its previous owner's last write.
                let acked = tally.acked[p]
                    .iter()
                    .rev()
                    .find(|(by, _)| *by == VICTIM)
                    .map_or(0, |(_, seq)| seq + 1);
                let processed = tally.seen[p]
                    .iter()
                    .rposition(|(count, _)| *count > 0)
                    .map_or(0, |last| last as u64 + 1);
                let ok = from >= acked && from <= processed;
                tally.takeovers.insert(p, (from, ok));
                if tally.takeovers.len() == victim_holdings.len() {
                    tally.takeover_time = killed_at.map(|k| k.elapsed());
                }
            }
        }
        _ => {}
    }
}

/// The store names one owner per partition; no other live consumer may hold that same version.
/// A live consumer holding an older version was stolen from and learns it at its next cycle.
fn check_snapshot(fleet: &[Member], owners: &[Option<Ownership>], tally: &mut Tally) {
    tally.snapshots += 1;
    for (p, record) in owners.iter().enumerate() {
        let Some(record) = record else { continue };
        let current = record.etag.as_ref().map(|e| e.as_ref().to_string());
        let owner = record.owner_id.as_deref().unwrap_or("");
        for member in fleet.iter().filter(|m| m.alive) {
            let Some(etag) = member.claims.get(&p) else {
                continue;
            };
            if Some(etag) != current.as_ref() {
                // Its own renewal may simply not have been reported yet; only a version written
                // by someone else means the partition was taken from it.
                if !owner.starts_with(member.letter) {
                    tally.stale_beliefs += 1;
                }
            } else if !owner.starts_with(member.letter) {
                tally.double_owner.push(format!(
                    "partition {p}: consumer {} holds the version owned by {owner:?}",
                    member.letter
                ));
            }
        }
    }
}

fn print_frame(elapsed: Duration, fleet: &[Member], owners: &[Option<Ownership>], tally: &Tally) {
    let map: String = owners
        .iter()
        .map(|o| {
            match o
                .as_ref()
                .and_then(|o| o.owner_id.as_deref())
                .and_then(|id| id.chars().next())
            {
                None => '.',
                Some(c) if fleet.iter().any(|m| m.letter == c && !m.alive) => {
                    c.to_ascii_lowercase()
                }
                Some(c) => c,
            }
        })
        .collect();
    let events: u64 = fleet.iter().map(|m| m.processed).sum();
    let checkpoints: u64 = fleet.iter().map(|m| m.checkpoints).sum();
    let reprocessed = tally.reprocessed;
    let counts: Vec<String> = fleet
        .iter()
        .map(|m| {
            format!(
                "{}:{}",
                m.letter,
                map.chars()
                    .filter(|c| c.eq_ignore_ascii_case(&m.letter))
                    .count()
            )
        })
        .collect();
    println!(
        "{:>5.1}s  {map} {:<19} {events:>6}  {reprocessed:>11}  {checkpoints:>11}",
        elapsed.as_secs_f64(),
        counts.join(" ")
    );
}

fn summarize(
    fleet: &[Member],
    tally: &Tally,
    killed: bool,
    victim_holdings: &[usize],
    still_owned: usize,
    final_checkpoints: usize,
) -> AnyResult<()> {
    let total = PARTITIONS as u64 * EVENTS_PER_PARTITION;
    let once = tally.seen.iter().flatten().filter(|(n, _)| *n > 0).count() as u64;
    let takeovers_ok = tally.takeovers.values().filter(|(_, ok)| *ok).count();
    let mut failures = Vec::new();
    let mut check = |ok: bool, line: String| {
        println!("  [{}] {line}", if ok { "ok" } else { "FAILED" });
        if !ok {
            failures.push(line);
        }
    };
    let note = |line: String| println!("       {line}");
    println!("summary");
    check(
        once == total,
        format!("every synthetic event processed at least once: {once} of {total}"),
    );
    check(
        killed && !victim_holdings.is_empty() && takeovers_ok == victim_holdings.len(),
        format!(
            "{}'s partitions resumed by others from their last checkpoints: {takeovers_ok} of {}{}",
            fleet[VICTIM].letter,
            victim_holdings.len(),
            tally.takeover_time.map_or(String::new(), |t| format!(
                " (the last {:.1}s after the kill)",
                t.as_secs_f64()
            )),
        ),
    );
    for (p, (from, ok)) in tally.takeovers.iter().filter(|(_, (_, ok))| !ok) {
        println!(
            "      partition {p} resumed at {from} (ok: {ok}), checkpoints acknowledged: {:?}",
            tally.acked[*p]
        );
    }
    // After the kill, the survivors reprocess exactly what the victim had processed past the
    // checkpoints they resumed from.
    let (mut expected, mut after_kill) = (0, 0);
    for (&p, &(from, _)) in &tally.takeovers {
        let last = tally.victim_last[p].map_or(from, |l| (l + 1).max(from));
        expected += last - from;
        after_kill += (from..last)
            .filter(|&seq| {
                let (count, first) = tally.seen[p][seq as usize];
                count >= 2 && first == Some(VICTIM)
            })
            .count() as u64;
    }
    check(
        after_kill == expected,
        format!(
            "reprocessed after the kill: {after_kill} events = what {} processed past those \
             checkpoints ({expected})",
            fleet[VICTIM].letter
        ),
    );
    let handover_reprocessing = tally.reprocessed.saturating_sub(after_kill);
    check(
        handover_reprocessing == 0,
        format!(
            "handover reprocessing: {handover_reprocessing} events at {} moves between live \
             consumers (cooperative handover: the taker resumes where the old owner stopped)",
            tally.handovers.saturating_sub(tally.takeovers.len() as u64),
        ),
    );
    let doubles = wins::double_wins(&tally.wins);
    check(
        doubles.is_empty(),
        format!(
            "no version of a partition won twice: {} won claims of the fleet checked, {} won twice",
            tally.wins.len(),
            doubles.len()
        ),
    );
    for double in &doubles {
        println!("      {double}");
    }
    check(
        tally.double_owner.is_empty(),
        format!(
            "no partition owned by two live consumers at once: {} violations in {} store snapshots",
            tally.double_owner.len(),
            tally.snapshots,
        ),
    );
    note(format!(
        "{} times a snapshot found a consumer still holding a version stolen since (until its next cycle)",
        tally.stale_beliefs
    ));
    for violation in &tally.double_owner {
        println!("      {violation}");
    }
    check(
        still_owned == 0,
        format!("after the graceful stop, partitions still owned: {still_owned}"),
    );
    check(
        final_checkpoints == PARTITIONS,
        format!(
            "after the graceful stop, partitions checkpointed at their last event: {final_checkpoints} of {PARTITIONS}"
        ),
    );
    let (mut recorded, mut writes) = (0, 0);
    for m in fleet {
        // A killed consumer reports no totals: its events and acknowledged writes stand in.
        let (r, w) = m.stats.unwrap_or((m.processed, m.checkpoints));
        recorded += r;
        writes += w;
    }
    note(format!(
        "checkpoint writes: {writes} for {recorded} events processed ({} saved by coalescing, one \
         write per {CHECKPOINT_EVERY_EVENTS} events of a partition and on relinquish)",
        recorded.saturating_sub(writes)
    ));
    for m in fleet {
        note(format!(
            "consumer {}: {} events processed, {} checkpoints{}",
            m.letter,
            m.processed,
            m.checkpoints,
            if m.alive { "" } else { " (killed)" }
        ));
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("{} check(s) failed", failures.len()).into())
    }
}
