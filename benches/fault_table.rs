//! The fault × consumer table of `docs/faults.md`: each kind of consumer (the official Rust
//! `EventProcessor` 0.15 over this crate's blob store, Python's `EventHubConsumerClient` with its
//! blob store, JavaScript's `EventHubConsumerClient` with its blob store, this crate's processor)
//! run alone under each fault the local endpoint injects,
//! on real events, every (partition, sequence number) counted (`tests/fleet/faults.rs`, the
//! same runner `tests/consumer_faults.rs` asserts this crate's rows with). Measured, not
//! asserted: where the others lose or repeat events, their clients are the cause.
//!
//! `scripts/bench.sh faults` (FAULT_KINDS=official,python,js,ours and FAULTS=DetachForced,...
//! pick rows). Runs one consumer at a time: about fifteen minutes.

#[path = "../tests/fleet/mod.rs"]
mod fleet;

use fleet::faults::{self, Fault, Row};
use fleet::*;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// This bench's name, which its nodes (copies of it) are started with.
const NAME: &str = "fault_table";

fn main() {
    if node::is_node() {
        return node::run();
    }
    let picked = |var: &str| std::env::var(var).ok().filter(|v| !v.is_empty());
    let kinds: Vec<(&'static str, Start)> = [
        ("official", Fleet::start as Start),
        ("python", Fleet::start_python as Start),
        ("js", Fleet::start_js as Start),
        ("ours", Fleet::start_balancer as Start),
    ]
    .into_iter()
    .filter(|(kind, _)| picked("FAULT_KINDS").is_none_or(|k| k.split(',').any(|p| p == *kind)))
    .collect();
    let faults: Vec<Fault> = Fault::ALL
        .into_iter()
        .filter(|f| {
            picked("FAULTS").is_none_or(|names| names.split(',').any(|n| n == format!("{f:?}")))
        })
        .collect();
    println!("| fault | consumer | lost | processed twice | read again after | claimed but unread | notes |");
    println!("|---|---|---|---|---|---|---|");
    for fault in faults {
        for (kind, start) in &kinds {
            let row = catch_unwind(AssertUnwindSafe(|| faults::run(NAME, kind, *start, fault)));
            match row {
                Ok(row) => println!("{}", line(&row)),
                Err(panic) => {
                    let why = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    println!(
                        "| {} | {kind} | | | | | run failed: {} |",
                        fault.describe(),
                        why.lines().next().unwrap_or_default().replace('|', "/")
                    );
                }
            }
        }
    }
}

fn line(row: &Row) -> String {
    let again = match (row.resumed_after, row.resumed_at) {
        (Some(after), _) => format!("{:.1} s", after.as_secs_f64()),
        (None, Some(at)) => format!("restarted at {at} (first retained {:?})", row.begin),
        (None, None) => "never".into(),
    };
    // What the consumer said about the partition, each different line once with its count.
    let mut notes: Vec<(String, usize)> = Vec::new();
    for line in row
        .said
        .iter()
        .filter(|line| !line.contains("SHUTDOWN") && !line.contains("Shutdown"))
    {
        let line: String = line.chars().take(160).collect::<String>().replace('|', "/");
        match notes.iter_mut().find(|(seen, _)| *seen == line) {
            Some((_, n)) => *n += 1,
            None => notes.push((line, 1)),
        }
    }
    let notes: Vec<String> = notes
        .into_iter()
        .map(|(line, n)| {
            if n > 1 {
                format!("{line} (x{n})")
            } else {
                line
            }
        })
        .collect();
    format!(
        "| {} | {} | {} | {} | {} | {} | {} |",
        row.fault.describe(),
        row.kind,
        row.lost,
        row.twice,
        again,
        if row.claimed_unread { "yes" } else { "no" },
        notes.join("; ")
    )
}
