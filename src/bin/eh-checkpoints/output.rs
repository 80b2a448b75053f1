//! How the commands talk: positions and partitions for people, what a writing command is about to
//! write to, progress on a terminal, and a word when the store is slow to answer.

use eventhub_checkpointstore::{Checkpoint, Scope};
use indicatif::{ProgressBar, ProgressStyle};
use std::{future::Future, io::IsTerminal, time::Duration};

/// When to say what the command is waiting for.
const PATIENCE: Duration = Duration::from_secs(3);

/// Runs `command`; if it has not finished after a few seconds, says on stderr what it waits for
/// and when it gives up (the store's operation timeout bounds each request).
pub(crate) async fn with_patience<T>(
    what: &str,
    timeout: Duration,
    command: impl Future<Output = T>,
) -> T {
    let mut command = std::pin::pin!(command);
    tokio::select! {
        done = &mut command => return done,
        () = tokio::time::sleep(PATIENCE) => {}
    }
    eprintln!(
        "eh-checkpoints: still waiting for the {what} after {}s; each request gives up after {} (--timeout)",
        PATIENCE.as_secs(),
        humantime::format_duration(timeout)
    );
    command.await
}

/// A position for people: `sequence number 240, offset 8192`.
pub(crate) fn position(c: &Checkpoint) -> String {
    format!(
        "sequence number {}, offset {}",
        c.sequence_number
            .map_or_else(|| "none".into(), |n| n.to_string()),
        c.offset.as_deref().unwrap_or("none")
    )
}

/// A checkpoint as one line for people.
pub(crate) fn describe(c: &Checkpoint) -> String {
    format!("partition {}: {}", c.partition_id, position(c))
}

/// Partition ids in numeric order where they are numbers ("2" before "10").
pub(crate) fn partition_order(id: &str) -> (usize, &str) {
    let numeric = !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit());
    (if numeric { id.len() } else { usize::MAX }, id)
}

/// Says, on stderr, where a writing command writes (or would write) before it does.
pub(crate) fn announce(verb: &str, dry_run: bool, store: &str, scope: &Scope) {
    let verb = if dry_run {
        format!("dry run: would {verb}")
    } else {
        verb.to_owned()
    };
    eprintln!("eh-checkpoints: {verb} in {store}, consumer group {scope}");
}

/// A progress bar with rate and time left on a terminal, nothing when stderr is piped.
pub(crate) fn progress(total: usize, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    let template = format!("{{bar:30}} {{pos}}/{{len}} {what} ({{per_sec}}, {{eta}} left)");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}
