//! The commands, one file each, over any `CheckpointStore` (a new command: a file here, a variant
//! of `Command` in `main.rs`, a test in `tests/cli.rs`). What several share is below.

pub(crate) mod copy;
pub(crate) mod export;
pub(crate) mod import;
#[cfg(feature = "eventhubs")]
pub(crate) mod lag;
pub(crate) mod list;
pub(crate) mod release;
pub(crate) mod set;

use crate::connect::Store;
use crate::output::{describe, partition_order};
use crate::{Failure, Global};
use eventhub_checkpointstore::azure_core::time::OffsetDateTime;
use eventhub_checkpointstore::copy::{CopyOutcome, CopyReport, Refusal};
use eventhub_checkpointstore::{Ownership, Scope, ServiceTime};
use std::{collections::BTreeMap, io::Write, time::Duration};

/// The service's time now, or this host's when the store reported none.
pub(crate) fn service_now(time: Option<ServiceTime>) -> OffsetDateTime {
    time.map_or_else(OffsetDateTime::now_utc, |t| t.now())
}

/// Whether `o` can be taken now: no owner, or not renewed within `expiration` at `now`.
pub(crate) fn expired(o: &Ownership, now: OffsetDateTime, expiration: Duration) -> bool {
    o.owner_id.is_none() || o.last_modified.is_none_or(|t| now - t >= expiration)
}

/// `3s ago`, by `now`.
pub(crate) fn age(now: OffsetDateTime, then: Option<OffsetDateTime>) -> String {
    then.map(|t| {
        let seconds = (now - t).whole_seconds().max(0) as u64;
        format!(
            "{} ago",
            humantime::format_duration(Duration::from_secs(seconds))
        )
    })
    .unwrap_or_default()
}

/// Partition ids as numeric ranges where they are numbers: `0-3, 7, 9-10, x`.
pub(crate) fn ranges<'a>(ids: impl IntoIterator<Item = &'a str>) -> String {
    let mut ids: Vec<&str> = ids.into_iter().collect();
    ids.sort_by_key(|id| partition_order(id));
    let mut parts: Vec<String> = Vec::new();
    let mut run: Option<(u64, u64)> = None;
    let flush = |run: &mut Option<(u64, u64)>, parts: &mut Vec<String>| {
        if let Some((first, last)) = run.take() {
            parts.push(if first == last {
                first.to_string()
            } else {
                format!("{first}-{last}")
            });
        }
    };
    for id in ids {
        // Only ids that are plain numbers, as written back ("08" and "+8" are names).
        let number = id.parse::<u64>().ok().filter(|n| n.to_string() == id);
        match (number, run) {
            (Some(n), Some((first, last))) if n == last + 1 => run = Some((first, n)),
            (Some(n), _) => {
                flush(&mut run, &mut parts);
                run = Some((n, n));
            }
            (None, _) => {
                flush(&mut run, &mut parts);
                parts.push(id.to_owned());
            }
        }
    }
    flush(&mut run, &mut parts);
    parts.join(", ")
}

/// Rows by partition, in numeric order where the ids are numbers.
pub(crate) type Rows<R> = BTreeMap<(usize, String), R>;

/// The row of partition `id`, made by `new` if it has none yet.
pub(crate) fn row_of<'a, R>(rows: &'a mut Rows<R>, id: &str, new: impl FnOnce() -> R) -> &'a mut R {
    rows.entry((partition_order(id).0, id.to_owned()))
        .or_insert_with(new)
}

/// `1 partition` / `4 partitions`.
pub(crate) fn partitions(n: usize) -> String {
    if n == 1 {
        "1 partition".to_owned()
    } else {
        format!("{n} partitions")
    }
}

/// Prints what a copy or import did (per checkpoint with `--verbose`), or, when it was refused,
/// returns the refusal: every partition, with both positions or the live owner.
pub(crate) fn report(global: &Global, report: &CopyReport, to: &Scope) -> Result<(), Failure> {
    if report.outcome == CopyOutcome::Refused {
        let mut message = format!(
            "refused, nothing written: {} would be unsafe",
            partitions(report.refusals.len())
        );
        for refusal in &report.refusals {
            message.push_str(&format!("\n  {refusal}"));
        }
        message.push_str(match report.refusals[0] {
            Refusal::LiveOwner { .. } => {
                "\nstop the consumers (or wait for their claims to expire), or pass --force"
            }
            _ => "\npass --force to write anyway (moving those checkpoints back)",
        });
        return Err(Failure::Refused(message));
    }
    let dry_run = report.outcome == CopyOutcome::DryRun;
    let mut out = std::io::stdout().lock();
    for overridden in &report.overridden {
        writeln!(out, "forced: {overridden}")?;
    }
    if global.verbose > 0 {
        let verb = if dry_run { "would write" } else { "wrote" };
        for c in &report.checkpoints {
            if !report.skipped.contains(c) {
                writeln!(out, "{verb} checkpoint {}", describe(c))?;
            }
        }
        for c in &report.unchanged {
            writeln!(out, "already there: checkpoint {}", describe(c))?;
        }
    }
    for c in &report.skipped {
        writeln!(
            out,
            "not written: partition {} moved past the source meanwhile",
            c.partition_id
        )?;
    }
    for o in &report.ownership {
        writeln!(
            out,
            "{} ownership of partition {} for {}",
            if dry_run { "would claim" } else { "claimed" },
            o.partition_id,
            o.owner_id.as_deref().unwrap_or_default()
        )?;
    }
    let written = report.checkpoints.len() - report.skipped.len();
    let unchanged = report.unchanged.len();
    if written == 0 && report.skipped.is_empty() {
        writeln!(
            out,
            "nothing to write: {to} already holds {}",
            if unchanged == 0 {
                "everything (the source has no checkpoints)".to_owned()
            } else {
                format!("these {unchanged} checkpoint(s)")
            }
        )?;
        return Ok(());
    }
    let ids = report
        .checkpoints
        .iter()
        .filter(|c| !report.skipped.contains(c))
        .map(|c| c.partition_id.as_str());
    writeln!(
        out,
        "{} {written} checkpoint(s) to {to}{}: partitions {}",
        if dry_run { "would write" } else { "wrote" },
        if unchanged > 0 {
            format!(" ({unchanged} already there)")
        } else {
            String::new()
        },
        ranges(ids)
    )?;
    Ok(())
}

/// Creates the destination's container or table if it does not exist yet (a dry run says it
/// would). Returns whether it exists now: a dry run's destination may not.
pub(crate) async fn ensure_exists(
    destination: &crate::connect::Store,
    dry_run: bool,
) -> Result<bool, Failure> {
    if destination.exists().await? {
        return Ok(true);
    }
    if dry_run {
        eprintln!(
            "eh-checkpoints: dry run: would create {} (it does not exist)",
            destination.describe()
        );
        return Ok(false);
    }
    destination.create_if_missing().await?;
    eprintln!("eh-checkpoints: created {}", destination.describe());
    Ok(true)
}

/// What a dry run plans against when the destination does not exist yet: nothing.
pub(crate) fn planned_against<'a>(
    destination: &'a crate::connect::Store,
    exists: bool,
    empty: &'a eventhub_checkpointstore::InMemoryCheckpointStore,
) -> &'a dyn eventhub_checkpointstore::CheckpointStore {
    if exists {
        destination.records()
    } else {
        empty
    }
}

/// The library's copy, with a progress bar (rate, time left) on a terminal.
pub(crate) async fn run_copy(
    source: &dyn eventhub_checkpointstore::CheckpointStore,
    from: &Scope,
    destination: &dyn eventhub_checkpointstore::CheckpointStore,
    to: &Scope,
    options: &eventhub_checkpointstore::copy::CopyOptions,
) -> Result<CopyReport, Failure> {
    let bar = if options.dry_run {
        indicatif::ProgressBar::hidden()
    } else {
        crate::output::progress(0, "checkpoints")
    };
    let report = eventhub_checkpointstore::copy::copy_checkpoints(
        source,
        from,
        destination,
        to,
        options,
        |p| {
            bar.set_length(p.total as u64);
            bar.set_position(p.done as u64);
        },
    )
    .await;
    bar.finish_and_clear();
    Ok(report?)
}

/// The scopes a blob container holds records for (namespace/hub/group, lower-cased as stored),
/// with how many records each, from the first page of the container's blobs: for a hint when a
/// listing matches nothing. `None` for a table, or when the container cannot be listed.
pub(crate) async fn scopes_held(source: &Store) -> Option<BTreeMap<String, usize>> {
    use eventhub_checkpointstore::azure_storage_blob::models::{
        BlobContainerClientListBlobsOptions, ListBlobsResponse,
    };
    use futures::TryStreamExt;
    let Store::Blob(store) = source else {
        return None;
    };
    let options = BlobContainerClientListBlobsOptions {
        maxresults: Some(5_000),
        ..Default::default()
    };
    let mut pages = store
        .container_client()
        .list_blobs(Some(options))
        .ok()?
        .into_pages();
    let page: ListBlobsResponse = pages.try_next().await.ok()??.into_model().ok()?;
    let mut scopes = BTreeMap::new();
    for name in page.blob_items.into_iter().filter_map(|b| b.name) {
        // {namespace}/{hub}/{group}/{ownership|checkpoint}/{partition}
        let parts: Vec<&str> = name.rsplitn(3, '/').collect();
        if let [_, kind, scope] = parts.as_slice() {
            if kind.eq_ignore_ascii_case("ownership") || kind.eq_ignore_ascii_case("checkpoint") {
                *scopes.entry((*scope).to_owned()).or_default() += 1;
            }
        }
    }
    Some(scopes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_compress_numeric_runs_in_numeric_order() {
        assert_eq!(
            ranges(["10", "2", "0", "1", "3", "7", "x", "9"]),
            "0-3, 7, 9-10, x"
        );
        assert_eq!(ranges(["5"]), "5");
        assert_eq!(ranges(["07", "8", "+9"]), "8, 07, +9");
        assert_eq!(ranges(Vec::<&str>::new()), "");
        let all: Vec<String> = (0..1024).map(|p| p.to_string()).collect();
        assert_eq!(ranges(all.iter().map(String::as_str)), "0-1023");
    }
}
