//! The event hubs this endpoint serves: partitions as append-only logs of events, each with the
//! sequence number, offset and enqueued time Event Hubs gives it; events preloaded when a hub is
//! created, appended on demand, or produced live at a rate.

use serde_json::{json, Value as Json};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};
use tokio::sync::watch;

/// One event, as a partition holds it.
#[derive(Clone, Debug)]
pub struct Event {
    pub sequence_number: i64,
    /// An opaque string to clients; here the event's position times 1,024, so offsets grow as
    /// Event Hubs' byte offsets do.
    pub offset: i64,
    /// Milliseconds since the Unix epoch.
    pub enqueued_ms: i64,
    pub body: Vec<u8>,
    pub partition_key: Option<String>,
}

/// One partition: its events, and a signal to receivers waiting for more.
pub struct Partition {
    pub id: String,
    log: Mutex<Log>,
    /// The number of events, published after every append.
    appended: watch::Sender<usize>,
    /// Who may receive, per consumer group (see [`crate::epoch`]).
    pub receivers: Mutex<HashMap<String, crate::epoch::Receivers>>,
    /// Whether delivery is paused (a fault): receivers stay attached and get nothing.
    paused: watch::Sender<bool>,
    /// New receivers refused until then, with this error (a fault).
    refusal: Mutex<Option<Refusal>>,
}

/// Every event ever appended; those before `begin` have expired (retention).
#[derive(Default)]
struct Log {
    events: Vec<Event>,
    begin: usize,
}

/// Receivers refused for a while, as a busy or failing service refuses them.
#[derive(Clone, Debug)]
pub struct Refusal {
    pub until: Instant,
    /// The AMQP error condition, e.g. `com.microsoft:server-busy`.
    pub condition: String,
}

/// Why a receiver's start position is refused: the error condition and its description.
pub type Refused = (&'static str, String);

/// What Event Hubs answers a start past the end of a partition with.
const OUT_OF_RANGE: &str = "com.microsoft:argument-out-of-range";

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Partition {
    fn new(id: String) -> Self {
        Self {
            id,
            log: Mutex::new(Log::default()),
            appended: watch::channel(0).0,
            receivers: Mutex::new(HashMap::new()),
            paused: watch::channel(false).0,
            refusal: Mutex::new(None),
        }
    }

    /// Appends `count` events, enqueued now; returns the last sequence number.
    pub fn append(&self, hub: &str, count: usize) -> Option<i64> {
        let mut log = lock(&self.log);
        let enqueued_ms = now_ms();
        for _ in 0..count {
            let sequence_number = log.events.len() as i64;
            log.events.push(Event {
                sequence_number,
                offset: sequence_number * 1024,
                enqueued_ms,
                body: format!("{hub}/{}/{sequence_number}", self.id).into_bytes(),
                partition_key: None,
            });
        }
        let len = log.events.len();
        drop(log);
        self.appended.send_replace(len);
        len.checked_sub(1).map(|last| last as i64)
    }

    /// The first retained event at or after `index`, if there is one yet: a receiver whose next
    /// event expired goes on at the oldest retained one, as on the service.
    pub fn next_from(&self, index: usize) -> Option<Event> {
        let log = lock(&self.log);
        log.events.get(index.max(log.begin)).cloned()
    }

    pub fn len(&self) -> usize {
        lock(&self.log).events.len()
    }

    /// The last event, if any (expired or not: the service reports the last enqueued one).
    pub fn last(&self) -> Option<Event> {
        lock(&self.log).events.last().cloned()
    }

    /// The sequence number of the oldest retained event. With every event expired the service
    /// reports the last enqueued one (and the partition empty).
    pub fn begin_sequence_number(&self) -> i64 {
        let log = lock(&self.log);
        log.begin.min(log.events.len().saturating_sub(1)) as i64
    }

    /// Whether no event is retained.
    pub fn is_empty(&self) -> bool {
        let log = lock(&self.log);
        log.begin >= log.events.len()
    }

    /// Expires the events before sequence number `before` (retention ran); the new begin
    /// sequence number. Expiry never moves back.
    pub fn expire_before(&self, before: i64) -> i64 {
        let mut log = lock(&self.log);
        let before = usize::try_from(before.max(0))
            .unwrap_or(usize::MAX)
            .min(log.events.len());
        log.begin = log.begin.max(before);
        log.begin as i64
    }

    /// A receiver of the number of events, changed at every append.
    pub fn watch(&self) -> watch::Receiver<usize> {
        self.appended.subscribe()
    }

    /// A receiver of whether delivery is paused.
    pub fn paused(&self) -> watch::Receiver<bool> {
        self.paused.subscribe()
    }

    /// Pauses (`true`) or resumes delivery to every receiver of the partition.
    pub fn pause(&self, paused: bool) {
        self.paused.send_replace(paused);
    }

    /// Refuses new receivers for `time` with `condition`.
    pub fn refuse_receivers(&self, time: Duration, condition: String) {
        *lock(&self.refusal) = Some(Refusal {
            until: Instant::now() + time,
            condition,
        });
    }

    /// The refusal in force, if any.
    pub fn refusal(&self) -> Option<Refusal> {
        lock(&self.refusal)
            .clone()
            .filter(|refusal| Instant::now() < refusal.until)
    }

    /// The index of the first event that `position` selects, or where it will be; expired
    /// events are skipped. A sequence number or offset past the end of the partition (one that
    /// would skip events not enqueued yet) is refused, as Event Hubs refuses it; the next
    /// event's own position is accepted.
    pub fn start(&self, position: &crate::filter::Position) -> Result<usize, Refused> {
        use crate::filter::{Field, Position};
        let log = lock(&self.log);
        let events = &log.events;
        let index = match position {
            Position::Start => 0,
            Position::End => events.len(),
            Position::After {
                field,
                value,
                inclusive,
            } => {
                let key = |e: &Event| match field {
                    Field::Offset => e.offset,
                    Field::SequenceNumber => e.sequence_number,
                    Field::EnqueuedTime => e.enqueued_ms,
                };
                // The key the next event will have (times are not known ahead: never refused).
                let next_key = match field {
                    Field::Offset => Some(events.len() as i64 * 1024),
                    Field::SequenceNumber => Some(events.len() as i64),
                    Field::EnqueuedTime => None,
                };
                let first_wanted = if *inclusive {
                    *value
                } else {
                    value.saturating_add(1)
                };
                if let Some(next_key) = next_key.filter(|next| first_wanted > *next) {
                    let (what, last) = match field {
                        Field::Offset => ("offset", next_key - 1024),
                        _ => ("sequence number", next_key - 1),
                    };
                    return Err((
                        OUT_OF_RANGE,
                        format!(
                            "The supplied {what} '{value}' is invalid. The last {what} in the system is '{last}'. Is supplied {what} inclusive = {inclusive}."
                        ),
                    ));
                }
                events
                    .iter()
                    .position(|e| {
                        if *inclusive {
                            key(e) >= *value
                        } else {
                            key(e) > *value
                        }
                    })
                    .unwrap_or(events.len())
            }
        };
        Ok(index.max(log.begin))
    }

    /// The partition's properties, as `/hubs/{name}` reports them.
    fn json(&self) -> Json {
        let log = lock(&self.log);
        let events = &log.events;
        json!({
            "id": self.id,
            "events": events.len(),
            "begin_sequence_number": log.begin.min(events.len().saturating_sub(1)),
            "last_sequence_number": events.last().map(|e| e.sequence_number),
            "last_offset": events.last().map(|e| e.offset.to_string()),
            "last_enqueued_ms": events.last().map(|e| e.enqueued_ms),
            "paused": *self.paused.borrow(),
            // Attached receivers by consumer group (lower case).
            "receivers": lock(&self.receivers)
                .iter()
                .map(|(group, r)| (group.clone(), json!(r.attached())))
                .collect::<serde_json::Map<_, _>>(),
        })
    }
}

/// What a hub is created with.
#[derive(Clone, Debug)]
pub struct Spec {
    pub partitions: usize,
    /// Events in each partition when the hub is created.
    pub preload: usize,
    /// Events appended per second per partition, by a producer that runs until `total`.
    pub rate: f64,
    /// Events per partition at which the producer stops (`None`: never).
    pub total: Option<usize>,
}

impl Spec {
    /// `PARTITIONS[:PRELOAD[:RATE[:TOTAL]]]`, as `--hub NAME=…` takes it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = text.split(':');
        let number = |part: Option<&str>, what: &str| -> Result<Option<f64>, String> {
            part.filter(|p| !p.is_empty())
                .map(|p| {
                    p.parse::<f64>()
                        .map_err(|_| format!("{what} '{p}' is not a number"))
                })
                .transpose()
        };
        let partitions = number(parts.next(), "the partition count")?
            .ok_or("a hub needs a partition count")? as usize;
        Ok(Self {
            partitions,
            preload: number(parts.next(), "the preload")?.unwrap_or(0.0) as usize,
            rate: number(parts.next(), "the rate")?.unwrap_or(0.0),
            total: number(parts.next(), "the total")?.map(|t| t as usize),
        })
    }

    fn check(&self) -> Result<(), String> {
        if !(1..=1024).contains(&self.partitions) {
            return Err("a hub has 1 to 1024 partitions".into());
        }
        if !(self.rate.is_finite() && self.rate >= 0.0) {
            return Err("the rate must be a number of events per second, 0 or more".into());
        }
        Ok(())
    }
}

pub struct Hub {
    pub name: String,
    pub created_ms: i64,
    pub partitions: Vec<Arc<Partition>>,
}

impl Hub {
    pub fn partition(&self, id: &str) -> Option<&Arc<Partition>> {
        self.partitions.iter().find(|p| p.id == id)
    }

    pub fn json(&self) -> Json {
        json!({
            "name": self.name,
            "created_ms": self.created_ms,
            "partitions": self.partitions.iter().map(|p| p.json()).collect::<Vec<_>>(),
        })
    }
}

/// Every hub, by name; names are case-insensitive, as Event Hubs' are.
#[derive(Default)]
pub struct Hubs(Mutex<HashMap<String, Arc<Hub>>>);

impl Hubs {
    pub fn get(&self, name: &str) -> Option<Arc<Hub>> {
        lock(&self.0).get(&name.to_ascii_lowercase()).cloned()
    }

    /// Creates hub `name` as `spec` says, preloaded, and starts its producer; an error when the
    /// name is taken or the spec is out of range.
    pub fn create(&self, name: &str, spec: &Spec) -> Result<Arc<Hub>, String> {
        spec.check()?;
        if name.is_empty() || name.contains('/') {
            return Err(format!("'{name}' is not an event hub name"));
        }
        let mut hubs = lock(&self.0);
        let key = name.to_ascii_lowercase();
        if hubs.contains_key(&key) {
            return Err(format!("event hub '{name}' exists"));
        }
        let hub = Arc::new(Hub {
            name: name.to_owned(),
            created_ms: now_ms(),
            partitions: (0..spec.partitions)
                .map(|p| Arc::new(Partition::new(p.to_string())))
                .collect(),
        });
        for partition in &hub.partitions {
            partition.append(name, spec.preload);
        }
        hubs.insert(key, hub.clone());
        drop(hubs);
        if spec.rate > 0.0 {
            tokio::spawn(produce(hub.clone(), spec.clone()));
        }
        tracing::info!(hub = name, ?spec, "event hub created");
        Ok(hub)
    }
}

/// Appends `spec.rate` events per second to every partition of `hub`, until `spec.total`.
async fn produce(hub: Arc<Hub>, spec: Spec) {
    let started = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tick.tick().await;
        let due = spec.preload + (started.elapsed().as_secs_f64() * spec.rate) as usize;
        let due = spec.total.map_or(due, |total| due.min(total));
        for partition in &hub.partitions {
            let have = partition.len();
            if due > have {
                partition.append(&hub.name, due - have);
            }
        }
        if spec.total.is_some_and(|total| due >= total) {
            return;
        }
    }
}
