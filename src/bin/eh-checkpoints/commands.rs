//! The commands, each over any `CheckpointStore`.

use crate::{connect, CopyArgs, Failure, Global, Output};
use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use eventhub_checkpointstore::azure_core::time::OffsetDateTime;
use eventhub_checkpointstore::copy::{copy_checkpoints, CopyOptions, CopyReport};
use eventhub_checkpointstore::{
    Checkpoint, CheckpointStore, InMemoryCheckpointStore, Ownership, Scope, ServiceTime,
};
use serde::Serialize;
use std::{
    collections::BTreeMap,
    io::{BufRead, IsTerminal, Write},
    num::NonZeroUsize,
    path::PathBuf,
    time::Duration,
};

/// One row of `list`, as `--output json` prints it.
#[derive(Serialize)]
struct Row {
    partition_id: String,
    owner_id: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    last_modified: Option<OffsetDateTime>,
    /// Whether any consumer may take the partition now: nobody owns it, or its claim has not been
    /// renewed within the expiration (by the service's clock).
    expired: bool,
    offset: Option<String>,
    sequence_number: Option<i64>,
}

/// Partition ids in numeric order when they are numbers ("2" before "10").
fn partition_order(id: &str) -> (usize, &str) {
    (
        if id.bytes().all(|b| b.is_ascii_digit()) {
            id.len()
        } else {
            usize::MAX
        },
        id,
    )
}

/// The service's time now, or this host's when the store reported none.
fn service_now(time: Option<ServiceTime>) -> OffsetDateTime {
    time.map_or_else(OffsetDateTime::now_utc, |t| t.now())
}

/// Whether `o` can be taken now: no owner, or not renewed within `expiration` at `now`.
fn expired(o: &Ownership, now: OffsetDateTime, expiration: Duration) -> bool {
    o.owner_id.is_none() || o.last_modified.is_none_or(|t| now - t >= expiration)
}

fn age(now: OffsetDateTime, then: Option<OffsetDateTime>) -> String {
    then.map(|t| {
        let seconds = (now - t).whole_seconds().max(0) as u64;
        format!(
            "{} ago",
            humantime::format_duration(Duration::from_secs(seconds))
        )
    })
    .unwrap_or_default()
}

/// The row of partition `id`, new (free, no position) if it has none yet.
fn row_of<'a>(rows: &'a mut BTreeMap<(usize, String), Row>, id: &str) -> &'a mut Row {
    rows.entry((partition_order(id).0, id.to_owned()))
        .or_insert_with(|| Row {
            partition_id: id.to_owned(),
            owner_id: None,
            last_modified: None,
            expired: true,
            offset: None,
            sequence_number: None,
        })
}

pub(crate) async fn list(
    store: &dyn CheckpointStore,
    scope: &Scope,
    expiration: Duration,
    output: Option<Output>,
) -> Result<(), Failure> {
    let (ownership, time) = store.list_ownership_with_service_time(scope).await?;
    let checkpoints = store.list_checkpoints(scope).await?;
    let now = service_now(time);
    let mut rows: BTreeMap<(usize, String), Row> = BTreeMap::new();
    for o in &ownership {
        let row = row_of(&mut rows, &o.partition_id);
        row.owner_id = o.owner_id.clone();
        row.last_modified = o.last_modified;
        row.expired = expired(o, now, expiration);
    }
    for c in checkpoints {
        let row = row_of(&mut rows, &c.partition_id);
        row.offset = c.offset;
        row.sequence_number = c.sequence_number;
    }
    let rows: Vec<Row> = rows.into_values().collect();
    let output = output.unwrap_or(if std::io::stdout().is_terminal() {
        Output::Table
    } else {
        Output::Json
    });
    let mut stdout = std::io::stdout().lock();
    match output {
        Output::Json => {
            serde_json::to_writer_pretty(&mut stdout, &rows).map_err(std::io::Error::from)?;
            writeln!(stdout)?;
        }
        Output::Table => {
            let mut table = Table::new();
            table.load_preset(UTF8_BORDERS_ONLY).set_header([
                "PARTITION",
                "OWNER",
                "CLAIMED",
                "EXPIRED",
                "OFFSET",
                "SEQUENCE NUMBER",
            ]);
            for r in &rows {
                table.add_row([
                    r.partition_id.clone(),
                    r.owner_id.clone().unwrap_or_else(|| "-".into()),
                    age(now, r.last_modified),
                    if r.expired { "yes" } else { "no" }.into(),
                    r.offset.clone().unwrap_or_default(),
                    r.sequence_number.map(|n| n.to_string()).unwrap_or_default(),
                ]);
            }
            writeln!(stdout, "{table}")?;
            writeln!(
                stdout,
                "{} partitions of {}/{}/{}; ages by the service's clock; expired = free, or not renewed for {}",
                rows.len(),
                scope.fully_qualified_namespace,
                scope.eventhub_name,
                scope.consumer_group,
                humantime::format_duration(expiration)
            )?;
        }
    }
    Ok(())
}

/// A checkpoint as one line of text for humans.
fn describe(c: &Checkpoint) -> String {
    format!(
        "partition {}: sequence number {}, offset {}",
        c.partition_id,
        c.sequence_number
            .map_or_else(|| "none".into(), |n| n.to_string()),
        c.offset.as_deref().unwrap_or("none")
    )
}

pub(crate) async fn set(
    store: &dyn CheckpointStore,
    checkpoint: &Checkpoint,
    expiration: Duration,
    force: bool,
    dry_run: bool,
) -> Result<(), Failure> {
    let (ownership, time) = store
        .list_ownership_with_service_time(&checkpoint.scope)
        .await?;
    let now = service_now(time);
    let live = ownership
        .iter()
        .find(|o| o.partition_id == checkpoint.partition_id && !expired(o, now, expiration));
    if let (Some(owner), false) = (live, force) {
        return Err(Failure::Refused(format!(
            "partition {} is owned by {} (claim renewed {}); its consumer would overwrite this \
             checkpoint at its next one. Stop the consumer group first, or pass --force",
            checkpoint.partition_id,
            owner.owner_id.as_deref().unwrap_or_default(),
            age(now, owner.last_modified)
        )));
    }
    if dry_run {
        println!("would write checkpoint {}", describe(checkpoint));
        return Ok(());
    }
    store.update_checkpoint(checkpoint).await?;
    println!("wrote checkpoint {}", describe(checkpoint));
    Ok(())
}

pub(crate) async fn release(
    store: &dyn CheckpointStore,
    scope: &Scope,
    partition: Option<String>,
    owner: Option<String>,
    dry_run: bool,
) -> Result<(), Failure> {
    let listed = store.list_ownership(scope).await?;
    let releases: Vec<Ownership> = listed
        .into_iter()
        .filter(|o| o.owner_id.is_some())
        .filter(|o| partition.as_ref().is_none_or(|p| *p == o.partition_id))
        .filter(|o| owner.is_none() || o.owner_id == owner)
        .map(|o| Ownership {
            owner_id: None,
            ..o
        })
        .collect();
    if releases.is_empty() {
        println!("nothing to release: no partition matches that is owned");
        return Ok(());
    }
    let verb = if dry_run { "would release" } else { "released" };
    let released = if dry_run {
        releases.clone()
    } else {
        // Conditional on the versions just listed: a claim renewed meanwhile is left alone.
        store.claim_ownership(&releases).await?
    };
    for o in &released {
        println!("{verb} partition {}", o.partition_id);
    }
    let changed = releases.len() - released.len();
    if changed > 0 {
        println!("{changed} partition(s) changed owner since the listing and were left alone");
    }
    Ok(())
}

pub(crate) async fn export(
    store: &dyn CheckpointStore,
    scope: &Scope,
    file: Option<PathBuf>,
) -> Result<(), Failure> {
    let checkpoints = store.list_checkpoints(scope).await?;
    let mut out: Box<dyn Write> = match &file {
        Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(path)?)),
        None => Box::new(std::io::stdout().lock()),
    };
    for c in &checkpoints {
        serde_json::to_writer(&mut out, c).map_err(std::io::Error::from)?;
        writeln!(out)?;
    }
    out.flush()?;
    if file.is_some() {
        eprintln!("exported {} checkpoints", checkpoints.len());
    }
    Ok(())
}

pub(crate) async fn import(
    store: &dyn CheckpointStore,
    scope: &Scope,
    file: Option<PathBuf>,
    dry_run: bool,
) -> Result<(), Failure> {
    let input: Box<dyn BufRead> = match &file {
        Some(path) => Box::new(std::io::BufReader::new(std::fs::File::open(path)?)),
        None => Box::new(std::io::stdin().lock()),
    };
    // The lines become a store of their own, in the target scope, so the copy (dry run,
    // concurrency, progress) is the library's.
    let staged = InMemoryCheckpointStore::new();
    for (number, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let c: Checkpoint = serde_json::from_str(&line)
            .map_err(|e| Failure::Refused(format!("line {}: not a checkpoint: {e}", number + 1)))?;
        staged
            .update_checkpoint(&Checkpoint {
                scope: scope.clone(),
                ..c
            })
            .await?;
    }
    let options = CopyOptions {
        dry_run,
        ..Default::default()
    };
    let report = run_copy(&staged, scope, store, scope, &options).await?;
    print_report(&report, scope);
    Ok(())
}

pub(crate) async fn copy(
    global: &Global,
    source: &dyn CheckpointStore,
    from: &Scope,
    to: &CopyArgs,
    migrate: bool,
) -> Result<(), Failure> {
    if migrate && to.to_naming.is_none_or(|n| n == global.naming) {
        return Err(Failure::Refused(
            "migrate moves checkpoints to the other layout: give --to-naming (the one the source \
             does not use; the source's is --naming)"
                .into(),
        ));
    }
    let destination = connect::store(global, Some(to))?;
    if !to.dry_run {
        destination.create_if_missing().await?;
    }
    let to_scope = connect::destination_scope(from, to);
    let concurrency = NonZeroUsize::new(to.concurrency)
        .ok_or_else(|| Failure::Refused("--concurrency must be at least 1".into()))?;
    let options = CopyOptions {
        dry_run: to.dry_run,
        ownership: to.ownership,
        concurrency,
    };
    let report = run_copy(source, from, destination.records(), &to_scope, &options).await?;
    print_report(&report, &to_scope);
    if migrate && !to.dry_run {
        println!(
            "restart the consumers on the new layout; the old layout's records are left as they were"
        );
    }
    Ok(())
}

/// The library's copy, with a progress bar on stderr when it is a terminal.
async fn run_copy(
    source: &dyn CheckpointStore,
    from: &Scope,
    destination: &dyn CheckpointStore,
    to: &Scope,
    options: &CopyOptions,
) -> Result<CopyReport, Failure> {
    let bar = if std::io::stderr().is_terminal() && !options.dry_run {
        indicatif::ProgressBar::new(0)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let report = copy_checkpoints(source, from, destination, to, options, |p| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
    })
    .await;
    bar.finish_and_clear();
    Ok(report?)
}

fn print_report(report: &CopyReport, to: &Scope) {
    let verb = if report.dry_run {
        "would write"
    } else {
        "wrote"
    };
    for c in &report.checkpoints {
        println!("{verb} checkpoint {}", describe(c));
    }
    for o in &report.ownership {
        println!(
            "{} ownership of partition {} for {}",
            if report.dry_run {
                "would claim"
            } else {
                "claimed"
            },
            o.partition_id,
            o.owner_id.as_deref().unwrap_or_default()
        );
    }
    println!(
        "{} {} checkpoint(s) to {}/{}/{}",
        verb,
        report.checkpoints.len(),
        to.fully_qualified_namespace,
        to.eventhub_name,
        to.consumer_group
    );
}
