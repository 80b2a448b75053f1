//! Cooperative handover's bookkeeping (see the [module docs](super)): the partitions this
//! consumer took from live owners and holds back from `ready`, and the partitions it lost, whose
//! last positions go out once the application has stopped processing them.

use crate::checkpointer::Checkpointer;
use crate::error::Result;
use crate::sync::lock;
use std::{
    collections::{BTreeSet, HashMap},
    sync::Mutex,
    time::{Duration, Instant},
};

#[derive(Default)]
pub(super) struct Handover {
    /// Partitions taken from a live owner, and when they are ready.
    held: Mutex<HashMap<String, Instant>>,
    /// Partitions lost at the last cycle, whose last positions go out at the next.
    lost: Mutex<Vec<String>>,
}

impl Handover {
    /// Holds `partitions` (just taken from live owners) for `hold`.
    pub(super) fn hold(&self, partitions: impl IntoIterator<Item = String>, hold: Duration) {
        if hold.is_zero() {
            return;
        }
        // Validated: at most 100.5 days, far from `Instant`'s limits.
        let until = Instant::now() + hold;
        let mut held = lock(&self.held);
        for partition in partitions {
            held.insert(partition, until);
        }
    }

    /// `owned` without the partitions still held; forgets holds that ended or whose partition
    /// is no longer owned.
    pub(super) fn ready(&self, owned: BTreeSet<String>) -> BTreeSet<String> {
        let mut held = lock(&self.held);
        let now = Instant::now();
        held.retain(|p, until| owned.contains(p) && *until > now);
        owned
            .into_iter()
            .filter(|p| !held.contains_key(p))
            .collect()
    }

    /// Forgets every hold: the consumer gives everything up.
    pub(super) fn release_all(&self) {
        lock(&self.held).clear();
    }

    /// Notes partitions found taken, whose last positions go out at the next cycle.
    pub(super) fn lost(&self, partitions: impl IntoIterator<Item = String>) {
        lock(&self.lost).extend(partitions);
    }

    /// Whether partitions found taken still wait for their last positions.
    pub(super) fn any_lost(&self) -> bool {
        !lock(&self.lost).is_empty()
    }

    /// The partitions found taken since the last call.
    pub(super) fn take_lost(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.lost))
    }
}

/// Writes `checkpointer`'s pending position of each of `partitions`, which `owner` gives up,
/// logging each failure; the first failure is the error.
pub(super) async fn write_last<'a>(
    checkpointer: &Checkpointer,
    owner: &str,
    partitions: impl Iterator<Item = &'a str>,
) -> Result<()> {
    let mut first_error = Ok(());
    for partition in partitions {
        if let Err(err) = checkpointer.flush(partition).await {
            tracing::warn!(owner_id = %owner, partition, error = %err, "could not write the last checkpoint of a partition this consumer gives up");
            if first_error.is_ok() {
                first_error = Err(err);
            }
        }
    }
    first_error
}
