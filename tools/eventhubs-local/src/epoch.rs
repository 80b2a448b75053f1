//! Who may receive from a partition, per consumer group, as Event Hubs arbitrates it: a receiver
//! with an owner level (epoch) is exclusive, and takes the partition from every receiver with a
//! lower or equal epoch and from every receiver without one (they are detached with
//! `amqp:link:stolen`); a receiver with a lower epoch than the current one, or one without an
//! epoch while an epoch receiver holds the partition, is refused with the same error. Receivers
//! without an epoch may otherwise be any number. A fault can detach every receiver of a
//! partition with another error.

use crate::hubs::{lock, Partition};
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};
use tokio::sync::oneshot;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The receivers of one consumer group on one partition.
#[derive(Default)]
pub struct Receivers {
    /// The epoch that holds the partition, if any, and its receiver.
    current: Option<(i64, u64)>,
    /// Every attached receiver, and how to tell it that it must go.
    attached: HashMap<u64, oneshot::Sender<Kick>>,
}

impl Receivers {
    /// How many receivers are attached.
    pub fn attached(&self) -> usize {
        self.attached.len()
    }
}

/// Why a receiver's link is detached by the endpoint: an AMQP error condition and its
/// description.
#[derive(Debug)]
pub struct Kick {
    pub condition: String,
    pub description: String,
}

const STOLEN: &str = "amqp:link:stolen";

/// A receiver's place: taken from it when another takes the partition; freed when dropped.
pub struct Registration {
    partition: Arc<Partition>,
    group: String,
    id: u64,
    /// Resolves when the receiver must go: another receiver took the partition, or a fault.
    pub kicked: oneshot::Receiver<Kick>,
}

/// Registers a receiver of `group` on `partition` with `epoch`, taking the partition from those
/// it outranks; or the reason it is refused.
pub fn register(
    partition: &Arc<Partition>,
    group: &str,
    epoch: Option<i64>,
) -> Result<Registration, String> {
    let mut all = lock(&partition.receivers);
    let receivers = all.entry(group.to_ascii_lowercase()).or_default();
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    match (epoch, receivers.current) {
        (Some(new), Some((current, _))) if new < current => {
            return Err(format!(
                "a receiver with epoch {current} holds partition {} of consumer group {group}; epoch {new} is lower",
                partition.id
            ))
        }
        (None, Some((current, _))) => {
            return Err(format!(
                "a receiver with epoch {current} holds partition {} of consumer group {group}; a receiver without an epoch cannot attach",
                partition.id
            ))
        }
        (Some(new), _) => {
            // Everyone else loses the partition.
            for (_, kick) in receivers.attached.drain() {
                let _ = kick.send(Kick {
                    condition: STOLEN.into(),
                    description: format!(
                        "a receiver with epoch {new} took partition {} of consumer group {group}",
                        partition.id
                    ),
                });
            }
            receivers.current = Some((new, id));
        }
        (None, None) => {}
    }
    let (kick, kicked) = oneshot::channel();
    receivers.attached.insert(id, kick);
    Ok(Registration {
        partition: partition.clone(),
        group: group.to_ascii_lowercase(),
        id,
        kicked,
    })
}

/// Detaches every receiver on `partition` (of `group`, or of every group) with `condition`;
/// how many. The partition is free afterwards: any receiver may attach.
pub fn detach_all(
    partition: &Partition,
    group: Option<&str>,
    condition: &str,
    description: &str,
) -> usize {
    let mut all = lock(&partition.receivers);
    let mut detached = 0;
    for (name, receivers) in all.iter_mut() {
        if group.is_some_and(|g| !g.eq_ignore_ascii_case(name)) {
            continue;
        }
        receivers.current = None;
        for (_, kick) in receivers.attached.drain() {
            detached += 1;
            let _ = kick.send(Kick {
                condition: condition.to_owned(),
                description: description.to_owned(),
            });
        }
    }
    detached
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut all = lock(&self.partition.receivers);
        if let Some(receivers) = all.get_mut(&self.group) {
            receivers.attached.remove(&self.id);
            if receivers
                .current
                .is_some_and(|(_, holder)| holder == self.id)
            {
                receivers.current = None;
            }
        }
    }
}
