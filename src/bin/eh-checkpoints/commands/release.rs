//! `release`: relinquish ownership, conditionally on the versions just listed.

use super::{partitions, ranges};
use crate::connect::Store;
use crate::output::{announce, partition_order};
use crate::{Failure, Global};
use eventhub_checkpointstore::{Ownership, Scope};
use std::io::Write;

pub(crate) async fn run(
    global: &Global,
    source: &Store,
    scope: &Scope,
    partition: Option<String>,
    owner: Option<String>,
    dry_run: bool,
) -> Result<(), Failure> {
    let store = source.records();
    announce("release ownership", dry_run, &source.describe(), scope);
    let listed = store.list_ownership(scope).await?;
    let mut releases: Vec<Ownership> = listed
        .into_iter()
        .filter(|o| o.owner_id.is_some())
        .filter(|o| partition.as_ref().is_none_or(|p| *p == o.partition_id))
        .filter(|o| owner.is_none() || o.owner_id == owner)
        .map(|o| Ownership {
            owner_id: None,
            ..o
        })
        .collect();
    releases
        .sort_by(|a, b| partition_order(&a.partition_id).cmp(&partition_order(&b.partition_id)));
    let mut out = std::io::stdout().lock();
    if releases.is_empty() {
        writeln!(
            out,
            "nothing to release: no partition matches that is owned"
        )?;
        return Ok(());
    }
    let verb = if dry_run { "would release" } else { "released" };
    let released = if dry_run {
        releases.clone()
    } else {
        // Conditional on the versions just listed: a claim renewed meanwhile is left alone.
        store.claim_ownership(&releases).await?
    };
    if released.len() == 1 || global.verbose > 0 {
        for o in &released {
            writeln!(out, "{verb} partition {}", o.partition_id)?;
        }
    }
    if released.len() > 1 {
        writeln!(
            out,
            "{verb} {}: {}",
            partitions(released.len()),
            ranges(released.iter().map(|o| o.partition_id.as_str()))
        )?;
    }
    let changed = releases.len() - released.len();
    if changed > 0 {
        writeln!(
            out,
            "{} changed owner since the listing and were left alone",
            partitions(changed)
        )?;
    }
    Ok(())
}
