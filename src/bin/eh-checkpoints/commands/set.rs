//! `set`: move one partition's checkpoint, never under a live consumer and never back, unless
//! forced.

use super::{age, expired, service_now};
use crate::connect::Store;
use crate::output::{announce, describe, position};
use crate::{Failure, Safety};
use eventhub_checkpointstore::{Advance, Checkpoint};
use std::io::Write;

pub(crate) async fn run(
    source: &Store,
    checkpoint: &Checkpoint,
    safety: Safety,
) -> Result<(), Failure> {
    let store = source.records();
    let scope = &checkpoint.scope;
    let partition = &checkpoint.partition_id;
    announce(
        "set a checkpoint",
        safety.dry_run,
        &source.describe(),
        scope,
    );
    let (ownership, time) = store.list_ownership_with_service_time(scope).await?;
    let now = service_now(time);
    let live = ownership
        .iter()
        .find(|o| o.partition_id == *partition && !expired(o, now, safety.liveness.expiration));
    if let (Some(owner), false) = (live, safety.force) {
        return Err(Failure::Refused(format!(
            "partition {partition} is owned by {} (claim renewed {}); its consumer would overwrite \
             this checkpoint at its next one. Stop the consumer group first, or pass --force",
            owner.owner_id.as_deref().unwrap_or_default(),
            age(now, owner.last_modified)
        )));
    }
    let checkpoints = store.list_checkpoints(scope).await?;
    let seen = |p: &str| {
        ownership.iter().any(|o| o.partition_id == p)
            || checkpoints.iter().any(|c| c.partition_id == p)
    };
    if !seen(partition) && !safety.force {
        // A typo in --partition (or in the scope) writes a checkpoint no consumer ever reads.
        let mut known: Vec<&str> = ownership
            .iter()
            .map(|o| o.partition_id.as_str())
            .chain(checkpoints.iter().map(|c| c.partition_id.as_str()))
            .collect();
        known.sort_by_key(|p| crate::output::partition_order(p));
        known.dedup();
        let holds = if known.is_empty() {
            format!("consumer group {scope} has no records at all (check --namespace, --eventhub, --consumer-group)")
        } else {
            format!(
                "consumer group {scope} has records for partitions {}",
                known.join(", ")
            )
        };
        return Err(Failure::Refused(format!(
            "partition {partition} has no ownership or checkpoint record: {holds}. Pass --force \
             to write it anyway (a partition no consumer has read yet)"
        )));
    }
    let stored = checkpoints
        .into_iter()
        .find(|c| c.partition_id == *partition);
    let moves_back = stored.as_ref().filter(|s| {
        matches!((s.sequence_number, checkpoint.sequence_number), (Some(old), Some(new)) if old > new)
    });
    if let (Some(stored), false) = (moves_back, safety.force) {
        return Err(Failure::Refused(format!(
            "partition {partition} is at {}; {} would move it back. Pass --force to rewind it",
            position(stored),
            position(checkpoint)
        )));
    }
    let mut out = std::io::stdout().lock();
    if safety.dry_run {
        writeln!(out, "would write checkpoint {}", describe(checkpoint))?;
        if let Some(stored) = moves_back {
            writeln!(
                out,
                "would move partition {partition} back from {}",
                position(stored)
            )?;
        }
        return Ok(());
    }
    if safety.force {
        // The operator's rewind (or overwrite under a live owner): exactly what was asked.
        store.update_checkpoint(checkpoint).await?;
        writeln!(out, "wrote checkpoint {}", describe(checkpoint))?;
        if let Some(stored) = moves_back {
            writeln!(
                out,
                "moved partition {partition} back from {} to {}",
                position(stored),
                position(checkpoint)
            )?;
        }
        return Ok(());
    }
    match store.advance_checkpoint(checkpoint).await? {
        Advance::Stale { stored } => Err(Failure::Refused(format!(
            "partition {partition} moved to {} meanwhile; {} would move it back. Pass --force to rewind it",
            position(&stored),
            position(checkpoint)
        ))),
        Advance::Unchanged => {
            writeln!(out, "checkpoint {} is already there", describe(checkpoint))?;
            Ok(())
        }
        _ => {
            writeln!(out, "wrote checkpoint {}", describe(checkpoint))?;
            Ok(())
        }
    }
}
