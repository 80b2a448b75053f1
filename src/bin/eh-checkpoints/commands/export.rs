//! `export`: the consumer group's checkpoints as JSON lines.

use crate::connect::Store;
use crate::output::partition_order;
use crate::Failure;
use eventhub_checkpointstore::Scope;
use std::{io::Write, path::PathBuf};

pub(crate) async fn run(
    source: &Store,
    scope: &Scope,
    file: Option<PathBuf>,
) -> Result<(), Failure> {
    let mut checkpoints = source.records().list_checkpoints(scope).await?;
    checkpoints
        .sort_by(|a, b| partition_order(&a.partition_id).cmp(&partition_order(&b.partition_id)));
    let in_file = |err: std::io::Error, path: &PathBuf| {
        Failure::Refused(format!("{}: {err}", path.display()))
    };
    let mut out: Box<dyn Write> = match &file {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|e| in_file(e, path))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let written = (|| {
        for c in &checkpoints {
            serde_json::to_writer(&mut out, c).map_err(std::io::Error::from)?;
            writeln!(out)?;
        }
        out.flush()
    })();
    match (written, &file) {
        (Err(err), Some(path)) => return Err(in_file(err, path)),
        (Err(err), None) => return Err(err.into()),
        _ => {}
    }
    if let Some(path) = &file {
        eprintln!(
            "eh-checkpoints: exported {} checkpoints to {}",
            checkpoints.len(),
            path.display()
        );
    }
    Ok(())
}
