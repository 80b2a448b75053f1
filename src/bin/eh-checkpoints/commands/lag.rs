//! `lag`: per partition, who owns it, how far it was checkpointed, where the partition ends, and
//! how far behind the checkpoint is, in events and in time.

use super::{age, expired, row_of, service_now, Rows};
use crate::connect::Store;
use crate::eventhubs::{first_unprocessed, partition_ends, Connection, PartitionEnd};
use crate::{Failure, Liveness, Output};
use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use eventhub_checkpointstore::azure_core::time::OffsetDateTime;
use eventhub_checkpointstore::{Checkpoint, Scope};
use serde::Serialize;
use std::{
    collections::BTreeMap,
    io::{IsTerminal, Write},
    time::Duration,
};

/// One partition, as `--output json` prints it.
#[derive(Serialize, Default)]
struct Row {
    partition_id: String,
    owner_id: Option<String>,
    /// When the owner last renewed its claim.
    #[serde(with = "time::serde::rfc3339::option")]
    claim_renewed: Option<OffsetDateTime>,
    /// Whether any consumer may take the partition now (by the store's clock).
    claim_expired: bool,
    checkpoint_sequence_number: Option<i64>,
    checkpoint_offset: Option<String>,
    /// When the checkpoint was last written, by the store's clock.
    #[serde(with = "time::serde::rfc3339::option")]
    checkpointed: Option<OffsetDateTime>,
    /// The sequence number of the partition's newest event; none when it is empty.
    last_enqueued_sequence_number: Option<i64>,
    #[serde(with = "time::serde::rfc3339::option")]
    last_enqueued_time: Option<OffsetDateTime>,
    /// Events enqueued after the checkpoint (from the partition's start without one).
    lag_events: Option<i64>,
    /// How long the oldest of those events has waited; 0 when there are none.
    lag_seconds: Option<f64>,
    /// What else to know: no checkpoint, a partition the event hub does not have, events expired
    /// past the checkpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

/// The whole consumer group.
#[derive(Serialize)]
struct Report {
    namespace: String,
    eventhub: String,
    consumer_group: String,
    #[serde(with = "time::serde::rfc3339")]
    measured_at: OffsetDateTime,
    partitions: Vec<Row>,
    lag_events: i64,
    /// The largest partition lag in time.
    max_lag_seconds: Option<f64>,
}

pub(crate) struct Args<'a> {
    pub(crate) connection: Connection,
    pub(crate) liveness: Liveness,
    pub(crate) output: Option<Output>,
    pub(crate) watch: Option<Duration>,
    /// How long to wait for one partition's oldest unprocessed event.
    pub(crate) read_timeout: Duration,
    pub(crate) scope: &'a Scope,
}

/// Event Hubs calls tried this many times, each on a new client after the first failed (the
/// official client 0.15 can lose its connection for good, see docs/official-processor.md).
const ATTEMPTS: usize = 3;

pub(crate) async fn run(source: &Store, args: Args<'_>) -> Result<(), Failure> {
    let output = args.output.unwrap_or(if std::io::stdout().is_terminal() {
        Output::Table
    } else {
        Output::Json
    });
    let mut client = None;
    loop {
        let report = match measure_with_retries(source, &mut client, &args).await {
            Ok(report) => report,
            // Watching goes on: the next measurement opens a new client.
            Err(Failure::EventHubs(message)) if args.watch.is_some() => {
                eprintln!("eh-checkpoints: {message}; measuring again in a moment");
                tokio::time::sleep(args.watch.unwrap_or_default()).await;
                continue;
            }
            Err(failure) => return Err(failure),
        };
        let mut stdout = std::io::stdout().lock();
        match (output, args.watch) {
            (Output::Json, None) => {
                serde_json::to_writer_pretty(&mut stdout, &report).map_err(std::io::Error::from)?;
                writeln!(stdout)?;
            }
            // One line per measurement, for a pipe to follow.
            (Output::Json, Some(_)) => {
                serde_json::to_writer(&mut stdout, &report).map_err(std::io::Error::from)?;
                writeln!(stdout)?;
            }
            (Output::Table, watch) => {
                if watch.is_some() && std::io::stdout().is_terminal() {
                    // Redraw in place: clear the screen, cursor home.
                    write!(stdout, "\x1b[2J\x1b[H")?;
                }
                print_table(&mut stdout, &report, args.liveness)?;
            }
        }
        stdout.flush()?;
        drop(stdout);
        let Some(interval) = args.watch else {
            return Ok(());
        };
        tokio::time::sleep(interval).await;
    }
}

/// One measurement, on the client of the last one or a new one; a failed Event Hubs call drops the
/// client and tries again on a new one.
async fn measure_with_retries(
    source: &Store,
    client: &mut Option<azure_messaging_eventhubs::ConsumerClient>,
    args: &Args<'_>,
) -> Result<Report, Failure> {
    let scope = args.scope;
    let mut attempt = 1;
    loop {
        let result = async {
            if client.is_none() {
                let opened = args.connection.open(&scope.consumer_group).await?;
                *client = Some(opened);
            }
            let open = client.as_ref().expect("opened above");
            measure(source, open, args).await
        }
        .await;
        match result {
            Err(Failure::EventHubs(message)) if attempt < ATTEMPTS => {
                tracing::debug!(%message, attempt, "Event Hubs call failed; a new client");
                *client = None;
                attempt += 1;
            }
            other => return other,
        }
    }
}

async fn measure(
    source: &Store,
    client: &azure_messaging_eventhubs::ConsumerClient,
    args: &Args<'_>,
) -> Result<Report, Failure> {
    let scope = args.scope;
    let store = source.records();
    let (ownership, time) = store.list_ownership_with_service_time(scope).await?;
    let checkpoints = store.list_checkpoints_with_times(scope).await?;
    let ends = partition_ends(&args.connection, client).await?;
    let now = service_now(time);

    // Every partition the hub, the claims or the checkpoints name.
    let new = |id: &str| {
        let id = id.to_owned();
        move || Row {
            partition_id: id,
            claim_expired: true,
            ..Row::default()
        }
    };
    let mut rows: Rows<Row> = Rows::new();
    for (id, _) in &ends {
        row_of(&mut rows, id, new(id));
    }
    for o in &ownership {
        let r = row_of(&mut rows, &o.partition_id, new(&o.partition_id));
        r.owner_id = o.owner_id.clone();
        r.claim_renewed = o.last_modified;
        r.claim_expired = expired(o, now, args.liveness.expiration);
    }
    let mut checkpoint_of: BTreeMap<&str, &Checkpoint> = BTreeMap::new();
    for (c, written) in &checkpoints {
        let r = row_of(&mut rows, &c.partition_id, new(&c.partition_id));
        r.checkpoint_sequence_number = c.sequence_number;
        r.checkpoint_offset = c.offset.clone();
        r.checkpointed = *written;
        checkpoint_of.insert(&c.partition_id, c);
    }
    let in_hub: BTreeMap<&str, &PartitionEnd> =
        ends.iter().map(|(id, end)| (id.as_str(), end)).collect();
    for r in rows.values_mut() {
        let Some(end) = in_hub.get(r.partition_id.as_str()) else {
            r.note = Some("the event hub has no such partition".into());
            continue;
        };
        r.last_enqueued_sequence_number = end.last_sequence_number;
        r.last_enqueued_time = end.last_enqueued;
        let checkpoint = checkpoint_of.get(r.partition_id.as_str());
        let (lag, resume_after, note) = lag(end, checkpoint.and_then(|c| c.sequence_number));
        r.lag_events = lag;
        r.note = match (checkpoint, note) {
            (_, Some(note)) => Some(note),
            (Some(c), None) if c.sequence_number.is_none() => {
                Some("the checkpoint has no sequence number".into())
            }
            (None, None) => Some("no checkpoint: lag from the partition's start".into()),
            _ => None,
        };
        r.lag_seconds = match lag {
            Some(0) => Some(0.0),
            Some(_) => first_unprocessed(client, &r.partition_id, resume_after, args.read_timeout)
                .await
                .map(|oldest| (now - oldest).as_seconds_f64().max(0.0)),
            None => None,
        };
    }
    let partitions: Vec<Row> = rows.into_values().collect();
    Ok(Report {
        namespace: scope.fully_qualified_namespace.clone(),
        eventhub: scope.eventhub_name.clone(),
        consumer_group: scope.consumer_group.clone(),
        measured_at: now,
        lag_events: partitions.iter().filter_map(|r| r.lag_events).sum(),
        max_lag_seconds: partitions
            .iter()
            .filter_map(|r| r.lag_seconds)
            .reduce(f64::max),
        partitions,
    })
}

/// The events after `checkpoint` (a sequence number) up to the partition's end; where the
/// consumer resumes (after that sequence number, or from the start with `None`); and a note when
/// the checkpoint does not sit inside the partition's events.
fn lag(end: &PartitionEnd, checkpoint: Option<i64>) -> (Option<i64>, Option<i64>, Option<String>) {
    let begin = end.beginning_sequence_number;
    let Some(last) = end.last_sequence_number else {
        return (Some(0), checkpoint, None);
    };
    match checkpoint {
        None => (Some(last - begin + 1), None, None),
        Some(at) if at > last => (
            Some(0),
            Some(at),
            Some(format!(
                "the checkpoint ({at}) is past the partition's last event ({last})"
            )),
        ),
        // Events after the checkpoint have expired: the consumer resumes at the first one left.
        Some(at) if at + 1 < begin => (
            Some(last - begin + 1),
            None,
            Some(format!(
                "events {}-{} after the checkpoint expired unprocessed",
                at + 1,
                begin - 1
            )),
        ),
        Some(at) => (Some(last - at), Some(at), None),
    }
}

fn print_table(out: &mut impl Write, report: &Report, liveness: Liveness) -> std::io::Result<()> {
    let now = report.measured_at;
    let mut table = Table::new();
    table.load_preset(UTF8_BORDERS_ONLY).set_header([
        "PARTITION",
        "OWNER",
        "RENEWED",
        "CHECKPOINT",
        "OFFSET",
        "WRITTEN",
        "LAST ENQUEUED",
        "ENQUEUED",
        "LAG",
        "LAG TIME",
    ]);
    for r in &report.partitions {
        let owner = match (&r.owner_id, r.claim_expired) {
            (None, _) => "-".to_owned(),
            (Some(owner), true) => format!("{owner} (expired)"),
            (Some(owner), false) => owner.clone(),
        };
        table.add_row([
            r.partition_id.clone(),
            owner,
            age(now, r.claim_renewed),
            r.checkpoint_sequence_number
                .map_or_else(|| "-".into(), |n| n.to_string()),
            r.checkpoint_offset.clone().unwrap_or_default(),
            age(now, r.checkpointed),
            r.last_enqueued_sequence_number
                .map_or_else(|| "empty".into(), |n| n.to_string()),
            age(now, r.last_enqueued_time),
            r.lag_events.map_or_else(|| "?".into(), |n| n.to_string()),
            r.lag_seconds.map_or_else(|| "?".into(), seconds),
        ]);
    }
    writeln!(out, "{table}")?;
    for r in report.partitions.iter().filter(|r| r.note.is_some()) {
        writeln!(
            out,
            "partition {}: {}",
            r.partition_id,
            r.note.as_deref().unwrap_or_default()
        )?;
    }
    writeln!(
        out,
        "total lag: {} events over {} partitions of {}/{} ({}), the oldest waiting {}; owners expire after {}",
        report.lag_events,
        report.partitions.len(),
        report.namespace,
        report.eventhub,
        report.consumer_group,
        report.max_lag_seconds.map_or_else(|| "?".into(), seconds),
        humantime::format_duration(liveness.expiration)
    )
}

/// `0s`, `1m 5s`: whole seconds for people.
fn seconds(s: f64) -> String {
    humantime::format_duration(Duration::from_secs(s.round() as u64)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(begin: i64, last: Option<i64>) -> PartitionEnd {
        PartitionEnd {
            beginning_sequence_number: begin,
            last_sequence_number: last,
            last_enqueued: None,
        }
    }

    #[test]
    fn lag_counts_the_events_after_the_checkpoint() {
        assert_eq!(lag(&end(0, Some(99)), Some(89)), (Some(10), Some(89), None));
        assert_eq!(lag(&end(0, Some(99)), Some(99)), (Some(0), Some(99), None));
        // No checkpoint: everything the partition holds.
        assert_eq!(lag(&end(0, Some(99)), None), (Some(100), None, None));
        assert_eq!(lag(&end(40, Some(99)), None), (Some(60), None, None));
        // An empty partition has no lag, whatever the checkpoint.
        assert_eq!(lag(&end(0, None), None), (Some(0), None, None));
        // Events past the checkpoint expired: from the first one left, and said so.
        let (n, from, note) = lag(&end(50, Some(99)), Some(10));
        assert_eq!((n, from), (Some(50), None));
        assert!(note.unwrap().contains("11-49"));
        // A checkpoint past the end (a recreated hub): no lag, and said so.
        let (n, _, note) = lag(&end(0, Some(9)), Some(20));
        assert_eq!(n, Some(0));
        assert!(note.unwrap().contains("past the partition's last event"));
    }
}
