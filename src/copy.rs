//! Copying a consumer group's checkpoints from one store and scope to another: another consumer
//! group, event hub or namespace, another container or account, the other blob naming layout, or
//! the table store. The way to move a fleet between layouts or stores without losing its place:
//! stop it, copy, restart it on the new store.
//!
//! A copy never rewinds a live fleet by accident. It first reads the destination, and refuses
//! (writing nothing, [`CopyReport::refusals`]) when a destination checkpoint is past the source's,
//! which copying would move back, or when a consumer holds a live claim in the destination group
//! (judged by the service's clock), which would overwrite the copy or be overwritten by it.
//! [`CopyOptions::force`] overrides both. Destination checkpoints already at the source's
//! position are left alone, so a second run of a finished copy writes nothing; every write goes
//! out through [`CheckpointStore::advance_checkpoint`], so a checkpoint written in the
//! destination meanwhile is never moved back either.
//!
//! ```
//! use eventhub_checkpointstore::copy::{copy_checkpoints, CopyOptions};
//! use eventhub_checkpointstore::{BlobCheckpointStore, BlobCheckpointStoreOptions, BlobNaming, Scope};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let conn = std::env::var("AZURE_STORAGE_CONNECTION_STRING")?;
//! // A fleet of the official Rust processor (verbatim names) moving to the lower-case layout.
//! let verbatim = BlobCheckpointStore::from_connection_string(&conn, "checkpoints", Some(BlobCheckpointStoreOptions {
//!     naming: BlobNaming::Verbatim,
//!     ..Default::default()
//! }))?;
//! let lowercase = BlobCheckpointStore::from_connection_string(&conn, "checkpoints", None)?;
//! lowercase.create_container_if_missing().await?;
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
use crate::model::{Advance, Checkpoint, Ownership, Standing};
use crate::scope::Scope;
use crate::store::CheckpointStore;
use futures::StreamExt;
use std::{collections::HashMap, fmt, num::NonZeroUsize, time::Duration};
use time::OffsetDateTime;

/// How [`copy_checkpoints`] copies.
///
/// ```
/// use eventhub_checkpointstore::copy::CopyOptions;
///
/// let dry_run = CopyOptions { dry_run: true, ..Default::default() };
/// assert!(!dry_run.force);
/// ```
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
    /// Write even over destination checkpoints that are past the source's (moving them back)
    /// and into a consumer group with live owners. Default `false`: both refuse the copy.
    pub force: bool,
    /// A claim renewed within this long is live (judged by the service's clock). Default 60 s,
    /// the Python processor's ownership expiration.
    pub expiration: Duration,
}

impl Default for CopyOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            ownership: false,
            concurrency: NonZeroUsize::new(16).unwrap_or(NonZeroUsize::MIN),
            force: false,
            expiration: Duration::from_secs(60),
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

/// Why a copy would be unsafe: what refuses it, or, with [`CopyOptions::force`], what it
/// overrode.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The destination's checkpoint is at or past the source's (and not the same position):
    /// copying would move it back.
    MovesBack {
        /// The source's checkpoint, in the destination's scope.
        source: Checkpoint,
        /// What the destination holds.
        destination: Checkpoint,
    },
    /// A consumer holds a live claim on a partition of the destination group: it would write
    /// over the copy at its next checkpoint, or the copy would move it back.
    LiveOwner {
        /// The claim, as listed.
        ownership: Ownership,
        /// How long ago it was renewed, by the service's clock.
        age: Duration,
    },
}

impl Refusal {
    /// The partition it is about.
    pub fn partition_id(&self) -> &str {
        match self {
            Refusal::MovesBack { source, .. } => &source.partition_id,
            Refusal::LiveOwner { ownership, .. } => &ownership.partition_id,
        }
    }
}

/// A position for people: `sequence number 240 (offset 8192)`.
fn position(c: &Checkpoint) -> String {
    match (c.sequence_number, &c.offset) {
        (Some(seq), Some(offset)) => format!("sequence number {seq} (offset {offset})"),
        (Some(seq), None) => format!("sequence number {seq}"),
        (None, Some(offset)) => format!("offset {offset}"),
        (None, None) => "no position".to_owned(),
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::MovesBack {
                source,
                destination,
            } => write!(
                f,
                "partition {}: the destination is at {}, the source at {}; copying would move it back",
                source.partition_id,
                position(destination),
                position(source)
            ),
            Refusal::LiveOwner { ownership, age } => write!(
                f,
                "partition {}: owned by {} (claim renewed {}s ago), a live consumer",
                ownership.partition_id,
                ownership.owner_id.as_deref().unwrap_or_default(),
                age.as_secs()
            ),
        }
    }
}

/// What a copy did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CopyOutcome {
    /// The checkpoints to write were written.
    Written,
    /// A dry run: nothing was written.
    DryRun,
    /// Refused ([`CopyReport::refusals`]): nothing was written.
    Refused,
}

/// What [`copy_checkpoints`] wrote, or would write.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CopyReport {
    /// Whether anything was written.
    pub outcome: CopyOutcome,
    /// The checkpoints to write, in the destination scope, in partition order: new ones and
    /// ones that move the destination forward (with `force`, also ones that move it back).
    /// Written only when the outcome is [`CopyOutcome::Written`], except those in `skipped`.
    pub checkpoints: Vec<Checkpoint>,
    /// Source checkpoints the destination holds already: nothing to write.
    pub unchanged: Vec<Checkpoint>,
    /// Why the copy was refused; empty unless the outcome is [`CopyOutcome::Refused`].
    pub refusals: Vec<Refusal>,
    /// With `force`: what would have refused the copy, and was overridden.
    pub overridden: Vec<Refusal>,
    /// Checkpoints not written because the destination moved past them while the copy ran.
    pub skipped: Vec<Checkpoint>,
    /// The ownership claims won in the destination (or planned), with `CopyOptions::ownership`.
    pub ownership: Vec<Ownership>,
    /// Ownership claims lost in the destination because its record changed meanwhile.
    pub ownership_lost: usize,
}

/// Copies every checkpoint of `from` in `source` to `to` in `destination`, keeping each
/// partition id, offset and sequence number, unless that is unsafe (see the
/// [module docs](self)): one listing of the source, one of the destination's checkpoints and one
/// of its ownership, then, for each checkpoint to write, an
/// [`advance_checkpoint`](CheckpointStore::advance_checkpoint) (with `force`, a
/// [`put_checkpoint`](CheckpointStore::put_checkpoint)), at most `options.concurrency` at once,
/// calling `progress` after each. Destination checkpoints of other partitions are left alone.
/// Ownership is copied only when asked.
///
/// Fails at the first write that fails, with that error; the checkpoints written before it stay
/// written (`progress` saw them), and running the copy again finishes it.
pub async fn copy_checkpoints(
    source: &dyn CheckpointStore,
    from: &Scope,
    destination: &dyn CheckpointStore,
    to: &Scope,
    options: &CopyOptions,
    mut progress: impl FnMut(CopyProgress<'_>),
) -> Result<CopyReport> {
    let mut plan = plan(source, from, destination, to, options).await?;
    if !plan.refusals.is_empty() {
        plan.outcome = CopyOutcome::Refused;
        tracing::info!(refusals = plan.refusals.len(), "copy refused");
        return Ok(plan);
    }
    let total = plan.checkpoints.len();
    if options.dry_run {
        for (i, checkpoint) in plan.checkpoints.iter().enumerate() {
            progress(CopyProgress {
                checkpoint,
                done: i + 1,
                total,
            });
        }
    } else {
        let force = options.force;
        let mut writes = futures::stream::iter(&plan.checkpoints)
            .map(|c| async move {
                if force {
                    destination.put_checkpoint(c).await.map(|()| (c, true))
                } else {
                    let advance = destination.advance_checkpoint(c).await?;
                    Ok((c, !matches!(advance, Advance::Stale { .. })))
                }
            })
            .buffer_unordered(options.concurrency.get());
        let mut done = 0;
        while let Some(written) = writes.next().await {
            let (checkpoint, written) = written?;
            done += 1;
            if !written {
                plan.skipped.push(checkpoint.clone());
            }
            progress(CopyProgress {
                checkpoint,
                done,
                total,
            });
        }
    }
    if options.ownership {
        let (ownership, lost) =
            copy_ownership(source, from, destination, to, options.dry_run).await?;
        plan.ownership = ownership;
        plan.ownership_lost = lost;
    }
    plan.skipped
        .sort_by(|a, b| partition_order(a).cmp(&partition_order(b)));
    tracing::info!(
        checkpoints = total,
        unchanged = plan.unchanged.len(),
        skipped = plan.skipped.len(),
        ownership = plan.ownership.len(),
        ownership_lost = plan.ownership_lost,
        dry_run = options.dry_run,
        "copied checkpoints"
    );
    Ok(plan)
}

/// What to write, what is there already, and what refuses the copy.
async fn plan(
    source: &dyn CheckpointStore,
    from: &Scope,
    destination: &dyn CheckpointStore,
    to: &Scope,
    options: &CopyOptions,
) -> Result<CopyReport> {
    let mut copies: Vec<Checkpoint> = source
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
    copies.sort_by(|a, b| partition_order(a).cmp(&partition_order(b)));
    let existing: HashMap<String, Checkpoint> = destination
        .list_checkpoints(to)
        .await?
        .into_iter()
        .map(|c| (c.partition_id.clone(), c))
        .collect();
    let (owners, time) = destination.list_ownership_with_service_time(to).await?;
    let now = time.map_or_else(OffsetDateTime::now_utc, |t| t.now());

    let mut report = CopyReport {
        outcome: if options.dry_run {
            CopyOutcome::DryRun
        } else {
            CopyOutcome::Written
        },
        checkpoints: Vec::new(),
        unchanged: Vec::new(),
        refusals: Vec::new(),
        overridden: Vec::new(),
        skipped: Vec::new(),
        ownership: Vec::new(),
        ownership_lost: 0,
    };
    let mut unsafe_ = Vec::new();
    for copy in copies {
        match existing
            .get(&copy.partition_id)
            .map(|d| d.standing_against(&copy))
        {
            Some(Standing::Same) => report.unchanged.push(copy),
            Some(Standing::AtOrPast) => {
                unsafe_.push(Refusal::MovesBack {
                    destination: existing[&copy.partition_id].clone(),
                    source: copy.clone(),
                });
                report.checkpoints.push(copy);
            }
            Some(Standing::Behind) | None => report.checkpoints.push(copy),
        }
    }
    for ownership in owners {
        let live = ownership.owner_id.is_some()
            && ownership
                .last_modified
                .is_some_and(|t| now - t < options.expiration);
        if live {
            let age = ownership.last_modified.map_or(Duration::ZERO, |t| {
                (now - t).try_into().unwrap_or(Duration::ZERO)
            });
            unsafe_.push(Refusal::LiveOwner { ownership, age });
        }
    }
    unsafe_.sort_by(|a, b| {
        let key = |r: &Refusal| {
            let (n, s) = partition_key(r.partition_id());
            (n, s.to_owned())
        };
        key(a).cmp(&key(b))
    });
    if options.force {
        report.overridden = unsafe_;
    } else {
        report.refusals = unsafe_;
    }
    Ok(report)
}

/// Partition ids in numeric order where they are numbers ("2" before "10"), then the others.
pub(crate) fn partition_key(id: &str) -> (usize, &str) {
    let numeric = !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit());
    (if numeric { id.len() } else { usize::MAX }, id)
}

fn partition_order(c: &Checkpoint) -> (usize, &str) {
    partition_key(&c.partition_id)
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
