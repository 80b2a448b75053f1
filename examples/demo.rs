//! A fleet of consumer processes shares the 32 partitions of an event hub, each consumer this
//! crate's `processor::Processor` over a `BlobCheckpointStore` (balanced with cooperative
//! handover, checkpoints coalesced every 25 events). The fleet grows from one consumer to four,
//! one is killed (SIGKILL: no relinquish, no last checkpoint), and the survivors take over its
//! partitions from its last checkpoints. The run ends with a summary that is checked, not just printed; a failed check
//! exits non-zero.
//!
//! Run it with `scripts/demo.sh`, which starts the local Event Hubs endpoint
//! (`tools/eventhubs-local`, whose producer appends the events) and, when
//! `AZURE_STORAGE_CONNECTION_STRING` is not set, Azurite. Against a real storage account, set
//! that variable (and optionally `CHECKPOINT_CONTAINER`); each run uses an event hub and a
//! consumer group of its own. `--handover-intervals 0` runs the same fleet with cooperative
//! handover off (stealing, as every other language's processor does), for contrast: its handover
//! checks are then reported, not enforced.
//!
//! The demo is one binary in two roles: without a role it is the conductor, which creates the
//! event hub, starts the consumers as child processes of itself
//! (`demo consumer <name> <group> <hub> <handover>`), reads what they report on stdout, and
//! watches the store. Each partition gets `RATE` events a second until `EVENTS_PER_PARTITION`.
//!
//! What the checks rely on is what each consumer reports, as it happens: which partitions it
//! resumes (from where) and stops, which events it processed (and when, by this host's clock),
//! which checkpoints the store acknowledged, and which claims it won. None of them compares
//! timings: each is a property every run must have, however slow the machine.

use eventhub_checkpointstore::{
    balancer::Strategy, checkpointer::CheckpointerOptions, processor::Processor,
    BlobCheckpointStore, CheckpointStore, Ownership, Scope,
};
use eventhub_checkpointstore_testkit::{
    eventhubs::{self, HubSpec},
    wins::{self, recording, Win},
};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use std::{
    collections::BTreeMap,
    error::Error,
    io::Write,
    num::NonZeroU64,
    process::Stdio,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    sync::mpsc,
};

const EVENT_HUB: &str = "telemetry";
const PARTITIONS: usize = 32;
/// Events per second per partition while the endpoint's producer runs.
const RATE: u64 = 25;
const PRODUCE_FOR: Duration = Duration::from_secs(20);
const EVENTS_PER_PARTITION: u64 = RATE * PRODUCE_FOR.as_secs();
const INTERVAL: Duration = Duration::from_millis(500);
/// Azurite and Azure report modification times to the second, so an expiration of a few
/// intervals leaves room for that rounding.
const EXPIRATION: Duration = Duration::from_secs(3);
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
// Between two of its checkpoints (each partition is written every second or so), so it dies with
// events processed but not yet checkpointed.
const KILL_AT: Duration = Duration::from_millis(13_300);
const GIVE_UP_AFTER: Duration = Duration::from_secs(90);

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
        [role, name, group, hub, handover] if role == "consumer" => {
            if std::env::var("DEMO_TRACE").is_ok() {
                tracing_subscriber::fmt()
                    .with_max_level(tracing::Level::DEBUG)
                    .with_writer(std::io::stderr)
                    .init();
            }
            // What the store, balancer and checkpointer report through the `metrics` facade,
            // reported to the conductor as deltas (`metric` lines) for its summary.
            let recorder = DebuggingRecorder::new();
            let snapshotter = recorder.snapshotter();
            recorder.install()?;
            let _ = METRICS.set(snapshotter);
            consumer(store, name, group, hub, handover.parse()?).await
        }
        [] => conductor(store, 2).await,
        [flag, handover] if flag == "--handover-intervals" => {
            conductor(store, handover.parse()?).await
        }
        _ => Err("usage: demo [--handover-intervals N]".into()),
    }
}

/// The consumer's recorder.
static METRICS: std::sync::OnceLock<Snapshotter> = std::sync::OnceLock::new();

/// Reports what the metrics recorded since the last report: `metric\tKEY\tDELTA` lines, KEY
/// the metric's name and its labels beyond the scope's. A histogram reports its count and sum.
fn report_metrics() {
    const SCOPE: [&str; 4] = [
        "messaging.system",
        "server.address",
        "messaging.destination.name",
        "messaging.consumer.group.name",
    ];
    let Some(snapshot) = METRICS.get().map(|s| s.snapshot()) else {
        return;
    };
    for (key, _, _, value) in snapshot.into_vec() {
        let key = key.key();
        let labels: Vec<String> = key
            .labels()
            .filter(|l| !SCOPE.contains(&l.key()) && l.key() != "messaging.client.id")
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        match value {
            DebugValue::Counter(n) if n > 0 => report(format_args!("metric\t{name}\t{n}")),
            DebugValue::Histogram(values) if !values.is_empty() => {
                let sum: f64 = values.iter().map(|v| v.into_inner()).sum();
                report(format_args!("metric\t{name}#count\t{}", values.len()));
                report(format_args!("metric\t{name}#sum\t{sum}"));
            }
            _ => {}
        }
    }
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn scope(hub: &str, group: &str) -> Scope {
    Scope::new(eventhubs::NAMESPACE, hub, group)
}

// ---------------------------------------------------------------------------------------------
// A consumer: balances, processes what is ready, checkpoints, and reports each step on stdout.

/// One line per fact, flushed at once, so the conductor sees everything written before a kill.
fn report(line: std::fmt::Arguments) {
    let mut out = std::io::stdout().lock();
    // A closed pipe means the conductor is gone; the consumer stops at its next read of stdin.
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

async fn consumer(
    store: Arc<BlobCheckpointStore>,
    name: &str,
    group: &str,
    hub: &str,
    handover_intervals: u32,
) -> AnyResult<()> {
    // Every claim this consumer wins is reported, so the conductor can check that no version of
    // a partition was won twice across the fleet.
    let recording = Arc::new(recording((*store).clone()));
    let processor = Arc::new(
        Processor::builder()
            .interval(INTERVAL)
            .expiration(EXPIRATION)
            .strategy(Strategy::Greedy)
            .handover_intervals(handover_intervals)
            .checkpointer_options(CheckpointerOptions {
                every_events: NonZeroU64::new(CHECKPOINT_EVERY_EVENTS),
                every: None,
            })
            .owner_id(name)
            .start(recording.clone(), eventhubs::connection(hub, group))
            .await?,
    );
    // Claims won, metrics and reconnects, reported as they come.
    let report_news = {
        let (wins, processor) = (recording.hooks.clone(), processor.clone());
        let mut reconnects = 0;
        move || {
            for win in wins.take() {
                report(format_args!("won\t{}", win.line()));
            }
            report_metrics();
            let now = processor.stats().reconnects;
            for _ in reconnects..now {
                report(format_args!("reconnected"));
            }
            reconnects = now;
        }
    };
    let reporting = tokio::spawn({
        let mut report_news = report_news.clone();
        async move {
            loop {
                tokio::time::sleep(INTERVAL / 4).await;
                report_news();
            }
        }
    });
    // The conductor stops a consumer gracefully by closing its stdin.
    let stopping = tokio::spawn({
        let processor = processor.clone();
        async move {
            let mut lines = BufReader::new(tokio::io::stdin()).lines();
            while let Ok(Some(_)) = lines.next_line().await {}
            processor.stop().await
        }
    });
    // Each partition handed over, from its checkpoint; each step reported with this host's time.
    let mut readers = tokio::task::JoinSet::new();
    while let Some(mut partition) = processor.next_partition().await {
        let p = partition.partition_id().to_owned();
        report(format_args!(
            "resume {p} {} {}",
            partition.resumed_after().map_or(0, |s| s + 1),
            unix_millis()
        ));
        readers.spawn(async move {
            while let Some(event) = partition.next_event().await {
                let Some(seq) = event.sequence_number() else {
                    continue;
                };
                // Reported processed before its position is recorded (which may write the
                // checkpoint): a consumer killed between the two would otherwise have events
                // resumed after but never reported, which reads as events lost.
                report(format_args!("processed {p} {seq} {seq} {}", unix_millis()));
                match partition.checkpoint(&event).await {
                    Ok(true) => report(format_args!("checkpointed {p} {seq}")),
                    Ok(false) => {}
                    Err(err) => eprintln!("consumer: partition {p}: checkpoint failed: {err}"),
                }
            }
            report(format_args!("stop {p} {}", unix_millis()));
        });
    }
    while readers.join_next().await.is_some() {}
    // Graceful stop: the readers have stopped; the processor wrote each partition's last
    // position and relinquished.
    stopping.await??;
    reporting.abort();
    let mut report_news = report_news;
    report_news();
    let stats = processor.checkpointer_stats();
    report(format_args!(
        "stats {} {} {}",
        stats.recorded, stats.writes, stats.refused
    ));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The conductor: starts and kills consumers, tallies their reports, watches the store, verifies.

struct Member {
    letter: char,
    child: Option<Child>,
    alive: bool,
    processed: u64,
    /// Checkpoint writes acknowledged.
    checkpoints: u64,
    /// What its checkpointer reported at a graceful stop: (recorded, written, refused).
    stats: Option<(u64, u64, u64)>,
    /// Consumer clients it replaced after one failed (see `eventhubs::consume`).
    reconnects: u64,
}

/// One consumer's stretch of processing one partition: from the resume to the stop (or death).
#[derive(Clone, Debug)]
struct Session {
    consumer: usize,
    /// When it processed the partition first and last in this session (unix ms).
    first: Option<u64>,
    last: Option<u64>,
    open: bool,
    /// A survivor's resume of a partition the killed consumer processed last.
    takeover: bool,
    /// Events it processed that had been processed before.
    reprocessed: u64,
    /// Where it resumed (the first sequence number it read), and when (unix ms).
    from: u64,
    resumed_at: u64,
    /// The last sequence number it processed.
    last_seq: Option<u64>,
}

#[derive(Default)]
struct Tally {
    /// Per partition and event: how often it was processed, and by whom first.
    seen: Vec<Vec<(u32, Option<usize>)>>,
    /// Per partition: every session, in the order they began.
    sessions: Vec<Vec<Session>>,
    /// Per partition: the consumer that processed it last.
    last_processor: Vec<Option<usize>>,
    /// Per partition: the last event the victim processed.
    victim_last: Vec<Option<u64>>,
    /// Every checkpoint write acknowledged, per partition, in the order the consumers reported
    /// them, with the consumer that wrote it.
    acked: Vec<Vec<(usize, u64)>>,
    /// Every claim won, by any consumer (relinquishes included).
    wins: Vec<Win>,
    /// The victim's partitions resumed by a survivor after the kill: where, and whether that was
    /// at or after its last acknowledged checkpoint and at most what anyone processed.
    takeovers: BTreeMap<usize, (u64, bool)>,
    /// How long after the kill the last of them was resumed.
    takeover_time: Option<Duration>,
    /// Partitions resumed by a consumer other than the one that processed them last.
    moves: u64,
    /// The fleet's metrics, summed over the consumers' reports (see `report_metrics`).
    metrics: BTreeMap<String, f64>,
}

impl Tally {
    fn new() -> Self {
        Self {
            seen: vec![vec![(0, None); EVENTS_PER_PARTITION as usize]; PARTITIONS],
            sessions: vec![Vec::new(); PARTITIONS],
            last_processor: vec![None; PARTITIONS],
            victim_last: vec![None; PARTITIONS],
            acked: vec![Vec::new(); PARTITIONS],
            ..Tally::default()
        }
    }

    fn open_session(&mut self, p: usize, consumer: usize) -> Option<&mut Session> {
        self.sessions[p]
            .iter_mut()
            .rev()
            .find(|s| s.consumer == consumer && s.open)
    }

    /// Sessions of different consumers on one partition whose processing overlapped in time.
    /// Sessions between live consumers that reprocessed events, each with the session before.
    fn reprocessing(&self) -> Vec<String> {
        let mut found = Vec::new();
        for (p, sessions) in self.sessions.iter().enumerate() {
            for (i, s) in sessions.iter().enumerate() {
                if s.takeover || s.reprocessed == 0 {
                    continue;
                }
                let before = i.checked_sub(1).map(|b| &sessions[b]);
                found.push(format!(
                    "partition {p}: consumer {} resumed at {} at {} ms and reprocessed {}; before it, {}",
                    s.consumer,
                    s.from,
                    s.resumed_at,
                    s.reprocessed,
                    before.map_or("nobody".to_owned(), |b| format!(
                        "consumer {} (resumed at {}, processed it up to {:?}, at {:?}-{:?} ms)",
                        b.consumer, b.from, b.last_seq, b.first, b.last
                    ))
                ));
            }
        }
        found
    }

    fn overlaps(&self) -> Vec<String> {
        let mut found = Vec::new();
        for (p, sessions) in self.sessions.iter().enumerate() {
            let windows: Vec<(usize, u64, u64)> = sessions
                .iter()
                .filter_map(|s| Some((s.consumer, s.first?, s.last?)))
                .collect();
            for (i, a) in windows.iter().enumerate() {
                for b in &windows[i + 1..] {
                    if a.0 != b.0 && a.1 <= b.2 && b.1 <= a.2 {
                        found.push(format!(
                            "partition {p}: consumer {} processed it {}-{} and consumer {} {}-{}",
                            a.0, a.1, a.2, b.0, b.1, b.2
                        ));
                    }
                }
            }
        }
        found
    }
}

async fn conductor(store: Arc<BlobCheckpointStore>, handover: u32) -> AnyResult<()> {
    let created = store.create_container_if_missing().await?;
    let group = format!("demo-{}", unix_millis());
    // The endpoint's producer starts appending as soon as the hub exists.
    let hub = eventhubs::create_hub(
        EVENT_HUB,
        HubSpec {
            partitions: PARTITIONS,
            preload: 0,
            rate: RATE as f64,
            total: Some(EVENTS_PER_PARTITION as usize),
        },
    );
    println!(
        "container {} ({}), event hub {}/{hub} at {}, consumer group {group}",
        store.container_url(),
        if created { "created" } else { "exists" },
        eventhubs::NAMESPACE,
        eventhubs::amqp_url(),
    );
    println!(
        "{PARTITIONS} partitions x {EVENTS_PER_PARTITION} events ({RATE}/s for {}s); \
         balancer: greedy, interval {:?}, expiration {:?}, handover {handover} intervals; \
         checkpoint every {CHECKPOINT_EVERY_EVENTS} events of a partition\n",
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
    let began = Instant::now();
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, String)>();
    let mut fleet: Vec<Member> = Vec::new();
    let mut tally = Tally::new();
    let mut killed_at: Option<(Instant, u64)> = None;
    let mut watch = tokio::time::interval(Duration::from_secs(1));

    let outcome: AnyResult<()> = loop {
        let elapsed = began.elapsed();
        if fleet.len() < FLEET.len() && elapsed >= FLEET[fleet.len()].1 {
            let letter = FLEET[fleet.len()].0;
            let mut child = Command::new(&exe)
                .args([
                    "consumer",
                    &letter.to_string(),
                    &group,
                    &hub,
                    &handover.to_string(),
                ])
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
                processed: 0,
                checkpoints: 0,
                stats: None,
                reconnects: 0,
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
            killed_at = Some((Instant::now(), unix_millis()));
            println!(
                "{:>5.1}s  x consumer {} killed (SIGKILL: no relinquish, no last checkpoint)",
                elapsed.as_secs_f64(),
                victim.letter,
            );
        }

        tokio::select! {
            Some((index, line)) = rx.recv() => {
                absorb(&mut fleet, &mut tally, index, &line, killed_at.map(|k| k.0));
                continue;
            }
            _ = watch.tick() => {}
        }

        let listed = store.list_ownership(&scope(&hub, &group)).await?;
        print_frame(began.elapsed(), &fleet, &listed, &tally);
        let all_done = tally
            .seen
            .iter()
            .all(|events| events.iter().all(|(n, _)| *n > 0));
        if all_done && fleet.len() == FLEET.len() {
            break Ok(());
        }
        if began.elapsed() > GIVE_UP_AFTER {
            let missing: Vec<String> = tally
                .seen
                .iter()
                .enumerate()
                .filter_map(|(p, events)| {
                    let first = events.iter().position(|(n, _)| *n == 0)?;
                    let count = events.iter().filter(|(n, _)| *n == 0).count();
                    Some(format!("partition {p}: {count} from {first}"))
                })
                .collect();
            break Err(format!(
                "the fleet did not process every event in time; never processed: {}",
                missing.join(", ")
            )
            .into());
        }
    };

    // Graceful stop of the survivors: closing stdin makes each checkpoint and relinquish.
    let mut failures = Vec::new();
    for member in fleet.iter_mut().filter(|m| m.alive) {
        if let Some(mut child) = member.child.take() {
            drop(child.stdin.take());
            let status = child.wait().await?;
            if !status.success() {
                failures.push(format!("consumer {} exited with {status}", member.letter));
            }
        }
    }
    while let Ok((index, line)) = rx.try_recv() {
        absorb(&mut fleet, &mut tally, index, &line, killed_at.map(|k| k.0));
    }
    // The victim's sessions ended when it died.
    if let Some((_, killed_ms)) = killed_at {
        for sessions in &mut tally.sessions {
            for s in sessions
                .iter_mut()
                .filter(|s| s.consumer == VICTIM && s.open)
            {
                s.open = false;
                s.last = s.last.map(|l| l.min(killed_ms));
            }
        }
    }
    let left = store.list_ownership(&scope(&hub, &group)).await?;
    let still_owned = left.iter().filter(|o| o.owner_id.is_some()).count();
    // Every partition's last event, written by whoever processed it last.
    let final_checkpoints = store
        .list_checkpoints(&scope(&hub, &group))
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
        handover,
        killed_at.is_some(),
        still_owned,
        final_checkpoints,
        failures,
    )
}

/// Folds one reported line of consumer `index` into the tally.
fn absorb(
    fleet: &mut [Member],
    tally: &mut Tally,
    index: usize,
    line: &str,
    killed_at: Option<Instant>,
) {
    if let Some(win) = line.strip_prefix("won\t").and_then(Win::parse) {
        tally.wins.push(win);
        return;
    }
    if let Some((key, delta)) = line
        .strip_prefix("metric\t")
        .and_then(|rest| rest.split_once('\t'))
    {
        *tally.metrics.entry(key.to_owned()).or_default() += delta.parse::<f64>().unwrap_or(0.0);
        return;
    }
    let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
    let nums: Vec<u64> = rest.split(' ').filter_map(|w| w.parse().ok()).collect();
    match (kind, nums.as_slice()) {
        ("processed", &[p, from, to, at]) => {
            let p = p as usize;
            let mut again = 0;
            for seq in from..=to {
                let (count, first) = &mut tally.seen[p][seq as usize];
                again += u64::from(*count > 0);
                *count += 1;
                first.get_or_insert(index);
            }
            if index == VICTIM {
                tally.victim_last[p] = Some(to);
            }
            tally.last_processor[p] = Some(index);
            if let Some(session) = tally.open_session(p, index) {
                session.first.get_or_insert(at);
                session.last = Some(at);
                session.reprocessed += again;
                session.last_seq = Some(to);
            }
            fleet[index].processed += to - from + 1;
        }
        ("checkpointed", &[p, seq]) => {
            fleet[index].checkpoints += 1;
            tally.acked[p as usize].push((index, seq));
        }
        ("stop", &[p, _]) => {
            if let Some(session) = tally.open_session(p as usize, index) {
                session.open = false;
            }
        }
        ("reconnected", &[]) => fleet[index].reconnects += 1,
        ("stats", &[recorded, writes, refused]) => {
            fleet[index].stats = Some((recorded, writes, refused))
        }
        ("resume", &[p, from, resumed_at]) => {
            let p = p as usize;
            let previous = tally.last_processor[p];
            // A partition the victim processed last, resumed by a survivor after the kill (the
            // victim may have been giving it up in a handover when it died).
            let takeover = killed_at.is_some()
                && index != VICTIM
                && previous == Some(VICTIM)
                && !tally.takeovers.contains_key(&p);
            if !takeover && previous.is_some_and(|prev| prev != index) {
                tally.moves += 1;
            }
            tally.sessions[p].push(Session {
                consumer: index,
                first: None,
                last: None,
                open: true,
                takeover,
                reprocessed: 0,
                from,
                resumed_at,
                last_seq: None,
            });
            if takeover {
                // At least the newest checkpoint of the partition anyone had acknowledged (the
                // victim's, or its previous owner's if the victim wrote none: checkpoints never
                // move back; a write the kill interrupted may have landed too), and never past
                // an event nobody had processed (that would lose it). With no checkpoint ever
                // acknowledged, exactly the partition's first event.
                let acked = tally.acked[p].iter().map(|(_, seq)| seq + 1).max();
                let processed = tally.seen[p]
                    .iter()
                    .rposition(|(count, _)| *count > 0)
                    .map_or(0, |last| last as u64 + 1);
                let ok = match acked {
                    Some(acked) => from >= acked && from <= processed,
                    None => from == 0,
                };
                tally.takeovers.insert(p, (from, ok));
                tally.takeover_time = killed_at.map(|k| k.elapsed());
            }
        }
        _ => {}
    }
}

fn print_frame(elapsed: Duration, fleet: &[Member], listed: &[Ownership], tally: &Tally) {
    let mut map = vec!['.'; PARTITIONS];
    for o in listed {
        let (Ok(p), Some(c)) = (
            o.partition_id.parse::<usize>(),
            o.owner_id.as_deref().and_then(|id| id.chars().next()),
        ) else {
            continue;
        };
        if p < PARTITIONS {
            let dead = fleet.iter().any(|m| m.letter == c && !m.alive);
            map[p] = if dead { c.to_ascii_lowercase() } else { c };
        }
    }
    let map: String = map.into_iter().collect();
    let events: u64 = fleet.iter().map(|m| m.processed).sum();
    let checkpoints: u64 = fleet.iter().map(|m| m.checkpoints).sum();
    let reprocessed: u64 = tally
        .seen
        .iter()
        .flatten()
        .map(|(n, _)| u64::from(n.saturating_sub(1)))
        .sum();
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
    handover: u32,
    killed: bool,
    still_owned: usize,
    final_checkpoints: usize,
    mut failures: Vec<String>,
) -> AnyResult<()> {
    let total = PARTITIONS as u64 * EVENTS_PER_PARTITION;
    let once = tally.seen.iter().flatten().filter(|(n, _)| *n > 0).count() as u64;
    let victim = fleet[VICTIM].letter;
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
        format!("every event processed at least once: {once} of {total}"),
    );

    // The kill: every partition the victim processed last (handovers it was giving included)
    // resumes elsewhere, from its acknowledged checkpoints.
    let orphaned: Vec<usize> = (0..PARTITIONS)
        .filter(|&p| tally.last_processor[p] == Some(VICTIM))
        .collect();
    let takeovers_ok = tally.takeovers.values().filter(|(_, ok)| *ok).count();
    check(
        killed && !tally.takeovers.is_empty() && takeovers_ok == tally.takeovers.len() && orphaned.is_empty(),
        format!(
            "{victim}'s partitions resumed by others from its acknowledged checkpoints: {takeovers_ok} of {}{}{}",
            tally.takeovers.len() + orphaned.len(),
            tally.takeover_time.map_or(String::new(), |t| format!(
                " (the last {:.1}s after the kill)",
                t.as_secs_f64()
            )),
            if orphaned.is_empty() {
                String::new()
            } else {
                format!("; never resumed: {orphaned:?}")
            }
        ),
    );
    for (p, (from, _)) in tally.takeovers.iter().filter(|(_, (_, ok))| !ok) {
        println!(
            "      partition {p} resumed at {from}; checkpoints acknowledged: {:?}",
            tally.acked[*p]
        );
    }

    // Reprocessing, by what caused it: a survivor resuming the dead consumer's partitions
    // (crash), or a move between live consumers (handover).
    let (mut crash, mut live) = (0u64, 0u64);
    for session in tally.sessions.iter().flatten() {
        if session.takeover {
            crash += session.reprocessed;
        } else {
            live += session.reprocessed;
        }
    }
    // What the victim processed past the checkpoints its partitions were resumed from: exactly
    // what the survivors process again, and no more than it processed past its acknowledged
    // checkpoints.
    let past_checkpoints: u64 = tally
        .takeovers
        .iter()
        .map(|(&p, &(from, _))| {
            tally.victim_last[p].map_or(0, |last| (last + 1).saturating_sub(from))
        })
        .sum();
    check(
        crash == past_checkpoints,
        format!(
            "crash reprocessing: {crash} events = what {victim} processed past the checkpoints its \
             partitions resumed from ({past_checkpoints})"
        ),
    );
    let overlaps = tally.overlaps();
    if handover > 0 {
        check(
            live == 0,
            format!(
                "handover reprocessing: {live} events at {} moves between live consumers \
                 (the taker resumes where the old owner stopped)",
                tally.moves
            ),
        );
        for session in tally.reprocessing().iter().take(5) {
            println!("      {session}");
        }
        check(
            overlaps.is_empty(),
            format!(
                "never processed by two live consumers at once: {} overlaps in {} sessions",
                overlaps.len(),
                tally.sessions.iter().map(Vec::len).sum::<usize>()
            ),
        );
        for overlap in overlaps.iter().take(5) {
            println!("      {overlap}");
        }
    } else {
        note(format!(
            "handover off, for contrast: {live} events reprocessed at {} moves between live consumers",
            tally.moves
        ));
        note(format!(
            "handover off, for contrast: {} times two live consumers processed one partition at once",
            overlaps.len()
        ));
    }

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
        still_owned == 0,
        format!("after the graceful stop, partitions still owned: {still_owned}"),
    );
    check(
        final_checkpoints == PARTITIONS,
        format!(
            "after the graceful stop, partitions checkpointed at their last event: {final_checkpoints} of {PARTITIONS}"
        ),
    );
    let (mut recorded, mut writes, mut refused) = (0, 0, 0);
    for m in fleet {
        // A killed consumer reports no totals: its events and acknowledged writes stand in.
        let (r, w, x) = m.stats.unwrap_or((m.processed, m.checkpoints, 0));
        recorded += r;
        writes += w;
        refused += x;
    }
    note(format!(
        "checkpoint writes: {writes} for {recorded} events processed ({} saved by coalescing, one \
         write per {CHECKPOINT_EVERY_EVENTS} events of a partition and on relinquish); {refused} \
         older positions refused",
        recorded.saturating_sub(writes)
    ));
    for m in fleet {
        note(format!(
            "consumer {}: {} events processed, {} checkpoints{}{}",
            m.letter,
            m.processed,
            m.checkpoints,
            if m.reconnects > 0 {
                format!(
                    ", {} consumer clients reopened after a failure",
                    m.reconnects
                )
            } else {
                String::new()
            },
            if m.alive { "" } else { " (killed)" }
        ));
    }
    print_metrics(&tally.metrics);
    for failure in &failures {
        if failure.starts_with("consumer") {
            println!("  [FAILED] {failure}");
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("{} check(s) failed", failures.len()).into())
    }
}

/// The fleet's metrics, as the consumers' recorders counted them (the killed consumer's up to its
/// last balancing cycle).
fn print_metrics(metrics: &BTreeMap<String, f64>) {
    use eventhub_checkpointstore::metrics::{
        CHECKPOINTS, CLAIMS, HANDOVER_HOLDS, OPERATION_DURATION, OWNERSHIP_CHANGES,
    };
    let sum = |prefix: &str, label: &str| -> f64 {
        metrics
            .iter()
            .filter(|(k, _)| k.starts_with(prefix) && k.contains(label))
            .map(|(_, v)| v)
            .sum()
    };
    let counted = |name: &str, label: &str, value: &str| {
        sum(&format!("{name}{{"), &format!("{label}={value}")) as u64
    };
    println!("metrics (what the consumers' `metrics` recorders counted)");
    let ops = |outcome: &str, part: &str| {
        metrics
            .iter()
            .filter(|(k, _)| {
                k.starts_with(OPERATION_DURATION)
                    && k.contains(&format!("outcome={outcome}"))
                    && k.ends_with(part)
            })
            .map(|(_, v)| v)
            .sum::<f64>()
    };
    let (ok, failed, seconds) = (ops("ok", "#count"), ops("error", "#count"), ops("", "#sum"));
    let mut by_operation: BTreeMap<&str, u64> = BTreeMap::new();
    for (key, value) in metrics {
        if let Some(operation) = key
            .strip_prefix(OPERATION_DURATION)
            .filter(|k| k.ends_with("#count"))
            .and_then(|k| k.split("operation=").nth(1))
            .and_then(|k| k.split([',', '}']).next())
        {
            *by_operation.entry(operation).or_default() += *value as u64;
        }
    }
    let split: Vec<String> = by_operation
        .iter()
        .map(|(operation, n)| format!("{operation} {n}"))
        .collect();
    println!(
        "       store operations: {} ({}), {} failed, mean {:.1} ms",
        (ok + failed) as u64,
        split.join(", "),
        failed as u64,
        seconds * 1000.0 / (ok + failed).max(1.0)
    );
    println!(
        "       claims: {} won, {} lost, {} failed",
        counted(CLAIMS, "outcome", "won"),
        counted(CLAIMS, "outcome", "lost"),
        counted(CLAIMS, "outcome", "failed")
    );
    println!(
        "       ownership changes: {} taken, {} stolen, {} lost, {} relinquished; {} handover holds",
        counted(OWNERSHIP_CHANGES, "change", "taken"),
        counted(OWNERSHIP_CHANGES, "change", "stolen"),
        counted(OWNERSHIP_CHANGES, "change", "lost"),
        counted(OWNERSHIP_CHANGES, "change", "relinquished"),
        sum(&format!("{HANDOVER_HOLDS}{{"), "") as u64
    );
    println!(
        "       checkpointer: {} written, {} coalesced, {} stale (the stored one was newer), {} failed",
        counted(CHECKPOINTS, "result", "written"),
        counted(CHECKPOINTS, "result", "coalesced"),
        counted(CHECKPOINTS, "result", "stale"),
        counted(CHECKPOINTS, "result", "failed")
    );
}
