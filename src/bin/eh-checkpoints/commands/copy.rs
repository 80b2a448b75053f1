//! `copy` and `migrate`: the library's `copy_checkpoints` from the command line's source to the
//! destination its `--to-…` options name.

use super::{ensure_exists, planned_against, report, run_copy};
use crate::connect::{self, Store};
use crate::output::announce;
use crate::{CopyArgs, Failure, Global};
use eventhub_checkpointstore::copy::{CopyOptions, CopyOutcome};
use eventhub_checkpointstore::{InMemoryCheckpointStore, Scope};
use std::{io::Write, num::NonZeroUsize};

pub(crate) async fn run(
    global: &Global,
    source: &Store,
    from: &Scope,
    to: &CopyArgs,
    migrate: bool,
) -> Result<(), Failure> {
    if migrate {
        if matches!(source, Store::Table(_)) {
            return Err(Failure::Refused(
                "migrate moves checkpoints between the two blob layouts; the source is a table \
                 (use copy)"
                    .into(),
            ));
        }
        if to.to_naming.is_none_or(|n| n == global.naming) {
            return Err(Failure::Refused(
                "migrate moves checkpoints to the other layout: give --to-naming (the one the \
                 source does not use; the source's is --naming)"
                    .into(),
            ));
        }
    }
    let destination = connect::destination(global, to)?;
    let to_scope = connect::destination_scope(from, to);
    if destination.same_as(source) && to_scope == *from {
        return Err(Failure::Refused(
            "copy onto its own records: give a --to-… option that changes the consumer group, \
             event hub, namespace, container, table, account or layout"
                .into(),
        ));
    }
    let safety = to.safety;
    announce(
        if migrate {
            "migrate checkpoints"
        } else {
            "copy checkpoints"
        },
        safety.dry_run,
        &destination.describe(),
        &to_scope,
    );
    let exists = ensure_exists(&destination, safety.dry_run).await?;
    let empty = InMemoryCheckpointStore::new();
    let options = CopyOptions {
        dry_run: safety.dry_run,
        ownership: to.ownership,
        concurrency: NonZeroUsize::new(usize::from(to.concurrency)).unwrap_or(NonZeroUsize::MIN),
        force: safety.force,
        expiration: safety.liveness.expiration,
    };
    let into = planned_against(&destination, exists, &empty);
    let done = run_copy(source.records(), from, into, &to_scope, &options).await?;
    report(global, &done, &to_scope)?;
    if migrate && done.outcome == CopyOutcome::Written && !done.checkpoints.is_empty() {
        writeln!(
            std::io::stdout().lock(),
            "restart the consumers on the new layout; the old layout's records are left as they were"
        )?;
    }
    Ok(())
}
