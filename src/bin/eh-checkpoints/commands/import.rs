//! `import`: checkpoints read as JSON lines (as `export` writes them) into the consumer group on
//! the command line. The whole input is read and checked before anything is created or written.

use super::{ensure_exists, planned_against, report, run_copy};
use crate::connect::Store;
use crate::output::announce;
use crate::{Failure, Global, Safety};
use eventhub_checkpointstore::copy::CopyOptions;
use eventhub_checkpointstore::{Checkpoint, CheckpointStore, InMemoryCheckpointStore, Scope};
use std::{collections::HashMap, io::BufRead, path::PathBuf};

pub(crate) async fn run(
    global: &Global,
    destination: &Store,
    scope: &Scope,
    file: Option<PathBuf>,
    safety: Safety,
) -> Result<(), Failure> {
    let checkpoints = read(file.as_ref())?;
    // The lines become a store of their own, in the target scope, so the copy (its checks, dry
    // run, concurrency, progress) is the library's.
    let staged = InMemoryCheckpointStore::new();
    for checkpoint in checkpoints {
        staged
            .update_checkpoint(&Checkpoint {
                scope: scope.clone(),
                ..checkpoint
            })
            .await?;
    }
    announce(
        "import checkpoints",
        safety.dry_run,
        &destination.describe(),
        scope,
    );
    let exists = ensure_exists(destination, safety.dry_run).await?;
    let empty = InMemoryCheckpointStore::new();
    let options = CopyOptions {
        dry_run: safety.dry_run,
        force: safety.force,
        expiration: safety.liveness.expiration,
        ..Default::default()
    };
    let into = planned_against(destination, exists, &empty);
    let done = run_copy(&staged, scope, into, scope, &options).await?;
    report(global, &done, scope)
}

/// Every line of the input as a checkpoint, each checked: a refusal names the line.
fn read(file: Option<&PathBuf>) -> Result<Vec<Checkpoint>, Failure> {
    let in_file = |err: std::io::Error| match file {
        Some(path) => Failure::Refused(format!("{}: {err}", path.display())),
        None => Failure::Refused(format!("standard input: {err}")),
    };
    let input: Box<dyn BufRead> = match file {
        Some(path) => Box::new(std::io::BufReader::new(
            std::fs::File::open(path).map_err(in_file)?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let mut lines_of: HashMap<String, usize> = HashMap::new();
    let mut checkpoints = Vec::new();
    for (index, line) in input.lines().enumerate() {
        let number = index + 1;
        let line = line.map_err(in_file)?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: String| Failure::Refused(format!("line {number}: {why}; nothing imported"));
        let c: Checkpoint =
            serde_json::from_str(&line).map_err(|e| bad(format!("not a checkpoint: {e}")))?;
        let p = &c.partition_id;
        if p.is_empty() {
            return Err(bad("partition_id is empty".into()));
        }
        if c.offset.is_none() && c.sequence_number.is_none() {
            return Err(bad(format!(
                "partition {p} has neither an offset nor a sequence number"
            )));
        }
        if let Some(seq) = c.sequence_number.filter(|s| *s < 0) {
            return Err(bad(format!(
                "partition {p} has a negative sequence number ({seq})"
            )));
        }
        if let Some(offset) = &c.offset {
            if offset.is_empty() || !offset.chars().all(|ch| ch.is_ascii_graphic()) {
                return Err(bad(format!(
                    "partition {p} has an offset that is not printable ASCII without spaces"
                )));
            }
        }
        if let Some(first) = lines_of.insert(p.clone(), number) {
            return Err(bad(format!("partition {p} is on line {first} too")));
        }
        checkpoints.push(c);
    }
    Ok(checkpoints)
}
