//! `list`: one row per partition, owner and position side by side.

use super::{age, expired, row_of, service_now, Rows};
use crate::connect::Store;
use crate::{Failure, Liveness, Output};
use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use eventhub_checkpointstore::azure_core::time::OffsetDateTime;
use eventhub_checkpointstore::Scope;
use serde::Serialize;
use std::io::{IsTerminal, Write};

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

impl Row {
    /// Partition `id` free, with no position.
    fn new(id: &str) -> Self {
        Row {
            partition_id: id.to_owned(),
            owner_id: None,
            last_modified: None,
            expired: true,
            offset: None,
            sequence_number: None,
        }
    }
}

pub(crate) async fn run(
    source: &Store,
    scope: &Scope,
    liveness: Liveness,
    output: Option<Output>,
) -> Result<(), Failure> {
    let store = source.records();
    let (ownership, time) = store.list_ownership_with_service_time(scope).await?;
    let checkpoints = store.list_checkpoints(scope).await?;
    let now = service_now(time);
    let mut rows: Rows<Row> = Rows::new();
    for o in &ownership {
        let row = row_of(&mut rows, &o.partition_id, || Row::new(&o.partition_id));
        row.owner_id = o.owner_id.clone();
        row.last_modified = o.last_modified;
        row.expired = expired(o, now, liveness.expiration);
    }
    for c in checkpoints {
        let row = row_of(&mut rows, &c.partition_id, || Row::new(&c.partition_id));
        row.offset = c.offset;
        row.sequence_number = c.sequence_number;
    }
    let rows: Vec<Row> = rows.into_values().collect();
    if rows.is_empty() {
        // A scope that matches nothing is most often a typo, or the other spelling of a
        // namespace (`localhost` against `localhost.servicebus.windows.net`): say what is there.
        let held = super::scopes_held(source).await.unwrap_or_default();
        if held.is_empty() {
            eprintln!("eh-checkpoints: no records for consumer group {scope}");
        } else {
            let held: Vec<String> = held
                .iter()
                .map(|(scope, n)| format!("{scope} ({n} records)"))
                .collect();
            eprintln!(
                "eh-checkpoints: no records for consumer group {scope}; the container holds records for {}",
                held.join(", ")
            );
        }
    }
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
                "RENEWED",
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
                "{} partitions of {scope}; ages by the service's clock; expired = free, or not renewed for {}",
                rows.len(),
                humantime::format_duration(liveness.expiration)
            )?;
        }
    }
    Ok(())
}
