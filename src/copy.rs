//! Copying a consumer group's checkpoints from one store and scope to another: another consumer
//! group, event hub or namespace, another container or account, the other blob naming layout, or
//! the table store. The way to move a fleet between layouts or stores without losing its place:
//! stop it, copy, restart it on the new store.
//!
//! ```no_run
//! use eventhub_checkpointstore::copy::{copy_checkpoints, CopyOptions};
//! use eventhub_checkpointstore::{BlobCheckpointStore, BlobCheckpointStoreOptions, BlobNaming, Scope};
//!
//! # async fn run() -> eventhub_checkpointstore::Result<()> {
//! let conn = std::env::var("AZURE_STORAGE_CONNECTION_STRING").unwrap();
//! // A fleet of the official Rust processor (verbatim names) moving to the lower-case layout.
//! let verbatim = BlobCheckpointStore::from_connection_string(&conn, "checkpoints", Some(BlobCheckpointStoreOptions {
//!     naming: BlobNaming::Verbatim,
//!     ..Default::default()
//! }))?;
//! let lowercase = BlobCheckpointStore::from_connection_string(&conn, "checkpoints", None)?;
//! let scope = Scope::new("MyNs.servicebus.windows.net", "Telemetry", "$Default");
//!
//! let dry_run = CopyOptions { dry_run: true, ..Default::default() };
//! let plan = copy_checkpoints(&verbatim, &scope, &lowercase, &scope, &dry_run, |_| {}).await?;
//! println!("would write {} checkpoints", plan.checkpoints.len());
//! let done = copy_checkpoints(&verbatim, &scope, &lowercase, &scope, &CopyOptions::default(), |p| {
//!     println!("{}/{} partition {}", p.done, p.total, p.checkpoint.partition_id)
//! })
//! .await?;
//! # Ok(()) }
//! ```

use crate::error::Result;
use crate::model::{Checkpoint, Ownership};
use crate::scope::Scope;
use crate::store::CheckpointStore;
use futures::StreamExt;
use std::num::NonZeroUsize;

/// How [`copy_checkpoints`] copies.
#[derive(Clone, Debug)]
pub struct CopyOptions {
    /// Report what would be written, and write nothing. Default `false`.
    pub dry_run: bool,
    /// Copy ownership too: claim, in the destination, each partition the source names an owner
    /// for, for that owner, conditionally on the destination's record (a lost race is reported,
    /// not forced). Default `false`: ownership is left alone; a restarted fleet claims afresh.
    pub ownership: bool,
    /// How many writes may be in flight at once. Default 16.
    pub concurrency: NonZeroUsize,
}

impl Default for CopyOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            ownership: false,
            concurrency: NonZeroUsize::new(16).unwrap_or(NonZeroUsize::MIN),
        }
    }
}

/// One checkpoint written (or, in a dry run, planned).
#[derive(Debug)]
pub struct CopyProgress<'a> {
    /// The checkpoint as written to the destination.
    pub checkpoint: &'a Checkpoint,
    /// How many have been written so far, this one included.
    pub done: usize,
    /// How many will be written in all.
    pub total: usize,
}

/// What [`copy_checkpoints`] wrote, or would write in a dry run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// Whether this was a dry run (nothing was written).
    pub dry_run: bool,
    /// The checkpoints written to the destination scope (or planned), in partition order.
    pub checkpoints: Vec<Checkpoint>,
    /// The ownership claims won in the destination (or planned), with `CopyOptions::ownership`.
    pub ownership: Vec<Ownership>,
    /// Ownership claims lost in the destination because its record changed meanwhile.
    pub ownership_lost: usize,
}

/// Copies every checkpoint of `from` in `source` to `to` in `destination`, keeping each
/// partition id, offset and sequence number: one listing of the source, then one write per
/// checkpoint ([`CheckpointStore::put_checkpoint`]), at most `options.concurrency` at once,
/// calling `progress` after each. Existing destination checkpoints of those partitions are
/// replaced; others are left alone. Ownership is copied only when asked.
///
/// Fails at the first write that fails, with that error; the checkpoints written before it stay
/// written (`progress` saw them), and running the copy again finishes it. Copying is only safe
/// while no consumer writes to either scope: a running consumer would overwrite the copy with its
/// next checkpoint, or checkpoint past what was copied.
pub async fn copy_checkpoints(
    source: &dyn CheckpointStore,
    from: &Scope,
    destination: &dyn CheckpointStore,
    to: &Scope,
    options: &CopyOptions,
    mut progress: impl FnMut(CopyProgress<'_>),
) -> Result<CopyReport> {
    let mut checkpoints: Vec<Checkpoint> = source
        .list_checkpoints(from)
        .await?
        .into_iter()
        .filter(|c| {
            let usable = c.offset.is_some() || c.sequence_number.is_some();
            if !usable {
                tracing::warn!(
                    partition_id = %c.partition_id,
                    "not copied: the source checkpoint has neither an offset nor a sequence number"
                );
            }
            usable
        })
        .map(|c| Checkpoint {
            scope: to.clone(),
            ..c
        })
        .collect();
    checkpoints.sort_by(|a, b| a.partition_id.cmp(&b.partition_id));
    let total = checkpoints.len();

    if options.dry_run {
        for (i, checkpoint) in checkpoints.iter().enumerate() {
            progress(CopyProgress {
                checkpoint,
                done: i + 1,
                total,
            });
        }
    } else {
        let mut writes = futures::stream::iter(&checkpoints)
            .map(|c| async move { destination.put_checkpoint(c).await.map(|()| c) })
            .buffer_unordered(options.concurrency.get());
        let mut done = 0;
        while let Some(written) = writes.next().await {
            done += 1;
            progress(CopyProgress {
                checkpoint: written?,
                done,
                total,
            });
        }
    }

    let (ownership, ownership_lost) = if options.ownership {
        copy_ownership(source, from, destination, to, options.dry_run).await?
    } else {
        (Vec::new(), 0)
    };
    tracing::info!(
        checkpoints = total,
        ownership = ownership.len(),
        ownership_lost,
        dry_run = options.dry_run,
        "copied checkpoints"
    );
    Ok(CopyReport {
        dry_run: options.dry_run,
        checkpoints,
        ownership,
        ownership_lost,
    })
}

/// Claims, in `to`, each partition `from` names an owner for, conditionally on `to`'s record.
async fn copy_ownership(
    source: &dyn CheckpointStore,
    from: &Scope,
    destination: &dyn CheckpointStore,
    to: &Scope,
    dry_run: bool,
) -> Result<(Vec<Ownership>, usize)> {
    let owned = source.list_ownership(from).await?;
    let current = destination.list_ownership(to).await?;
    let claims: Vec<Ownership> = owned
        .into_iter()
        .filter(|o| o.owner_id.is_some())
        .map(|o| Ownership {
            etag: current
                .iter()
                .find(|c| c.partition_id == o.partition_id)
                .and_then(|c| c.etag.clone()),
            last_modified: None,
            ..Ownership::new(to.clone(), o.partition_id, o.owner_id.unwrap_or_default())
        })
        .collect();
    if dry_run {
        return Ok((claims, 0));
    }
    let won = destination.claim_ownership(&claims).await?;
    let lost = claims.len() - won.len();
    Ok((won, lost))
}
