//! The in-memory backend behind the store shell: records in a map, each write a new version.

use crate::error::{Error, Result};
use crate::model::{Checkpoint, Ownership};
use crate::scope::Scope;
use crate::shell::record::{self, Fields, Known, Listed, Record, StoredFields};
use crate::shell::{Backend, OnRecord, Version, Written};
use crate::store::ServiceTime;
use async_trait::async_trait;
use azure_core::{http::Etag, time::OffsetDateTime};
use std::{
    borrow::Cow,
    collections::BTreeMap,
    fmt,
    sync::{Mutex, MutexGuard},
};

/// Records by kind, scope and partition, in order (a listing is a range).
type Key = (Record, String, String, String, String);

#[derive(Default)]
struct State {
    records: BTreeMap<Key, Stored>,
    /// The last version handed out; etags are `"{version}"`.
    versions: u64,
}

struct Stored {
    fields: Fields,
    version: u64,
    last_modified: OffsetDateTime,
}

impl StoredFields for Fields {
    fn field(&self, key: &str) -> Option<Cow<'_, str>> {
        self.iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| Cow::Borrowed(v.as_str()))
    }
}

pub(crate) struct MemoryBackend {
    state: Mutex<State>,
    clock: Box<dyn Fn() -> OffsetDateTime + Send + Sync>,
}

impl MemoryBackend {
    pub(crate) fn new(clock: impl Fn() -> OffsetDateTime + Send + Sync + 'static) -> Self {
        Self {
            state: Mutex::new(State::default()),
            clock: Box::new(clock),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }

    /// Writes `fields` as the record's new version if the record is at `condition`: `None` for
    /// "no record yet", `Some(None)` for a version this store never issued (no record has it).
    fn write_if(&self, key: Key, fields: Fields, condition: Option<Option<u64>>) -> Written {
        let mut state = self.state();
        let current = state.records.get(&key).map(|s| s.version);
        let lost = |why: &str| Written::Lost(why.to_owned());
        match (condition, current) {
            (None, Some(_)) => lost("the record exists"),
            (Some(_), None) => lost("the record does not exist"),
            (Some(wanted), Some(current)) if wanted != Some(current) => {
                lost("the record has changed since that version")
            }
            _ => Written::Applied(self.write(&mut state, key, fields)),
        }
    }

    /// Writes `fields` as the record's new version.
    fn write(&self, state: &mut State, key: Key, fields: Fields) -> Version {
        state.versions += 1;
        let stored = Stored {
            fields,
            version: state.versions,
            last_modified: (self.clock)(),
        };
        let version = Version {
            etag: Some(etag_of(stored.version)),
            last_modified: Some(stored.last_modified),
        };
        state.records.insert(key, stored);
        version
    }
}

fn etag_of(version: u64) -> Etag {
    Etag::from(format!("\"{version}\""))
}

/// The version an etag names; `None` for one this store never issued (which no record has).
fn version_of(etag: &Etag) -> Option<u64> {
    etag.as_ref().trim().trim_matches('"').parse().ok()
}

/// The key of one partition's record; names must not be empty.
fn key(record: Record, scope: &Scope, partition_id: &str) -> Result<Key> {
    for (field, value) in [
        (
            "fully_qualified_namespace",
            scope.fully_qualified_namespace.as_str(),
        ),
        ("eventhub_name", &scope.eventhub_name),
        ("consumer_group", &scope.consumer_group),
        ("partition_id", partition_id),
    ] {
        if value.is_empty() {
            return Err(Error::invalid_input(format!("{field} is empty")));
        }
    }
    Ok((
        record,
        scope.fully_qualified_namespace.clone(),
        scope.eventhub_name.clone(),
        scope.consumer_group.clone(),
        partition_id.to_owned(),
    ))
}

/// One claim, checked and ready to apply.
pub(crate) struct Claim {
    key: Key,
    fields: Fields,
    /// The version it is conditioned on: `None` for "no record yet", `Some(None)` for an etag
    /// this store never issued (which no record has).
    condition: Option<Option<u64>>,
}

#[async_trait]
impl Backend for MemoryBackend {
    type Claim = Claim;
    const KIND: &'static str = "memory";
    const NEEDS_TOKIO: bool = false;

    fn describe(&self, f: &mut fmt::DebugStruct<'_, '_>) {
        f.field("records", &self.state().records.len());
    }

    fn prepare_claim(&self, requested: &Ownership) -> Result<Claim> {
        let condition = match &requested.etag {
            None => None,
            Some(etag) => {
                let inner = etag.as_ref().trim().trim_matches('"');
                if inner.is_empty() || inner == "*" {
                    return Err(Error::invalid_input(
                        "etag must be the etag of a listed or claimed ownership (not empty, not '*')",
                    ));
                }
                Some(version_of(etag))
            }
        };
        Ok(Claim {
            key: key(Record::Ownership, &requested.scope, &requested.partition_id)?,
            fields: record::ownership_fields(requested.owner_id.as_deref()),
            condition,
        })
    }

    async fn claim(&self, claim: Claim) -> Result<Written> {
        Ok(self.write_if(claim.key, claim.fields, claim.condition))
    }

    async fn update_checkpoint(&self, checkpoint: &Checkpoint) -> Result<Version> {
        let key = key(
            Record::Checkpoint,
            &checkpoint.scope,
            &checkpoint.partition_id,
        )?;
        let fields = record::checkpoint_fields(checkpoint)?;
        let mut state = self.state();
        Ok(self.write(&mut state, key, fields))
    }

    async fn read_checkpoint(
        &self,
        scope: &Scope,
        partition_id: &str,
    ) -> Result<Option<(Checkpoint, Etag)>> {
        let key = key(Record::Checkpoint, scope, partition_id)?;
        let state = self.state();
        Ok(state.records.get(&key).map(|stored| {
            let listed = Listed {
                partition_id: partition_id.to_owned(),
                version: &Known {
                    etag: None,
                    last_modified: Some(stored.last_modified),
                },
                fields: &stored.fields,
                source: partition_id,
            };
            (listed.into_checkpoint(scope), etag_of(stored.version))
        }))
    }

    async fn write_checkpoint_if(
        &self,
        checkpoint: &Checkpoint,
        version: Option<&Etag>,
    ) -> Result<Written> {
        let key = key(
            Record::Checkpoint,
            &checkpoint.scope,
            &checkpoint.partition_id,
        )?;
        let fields = record::checkpoint_fields(checkpoint)?;
        Ok(self.write_if(key, fields, version.map(version_of)))
    }

    async fn list(
        &self,
        scope: &Scope,
        record: Record,
        on_record: &mut OnRecord<'_>,
    ) -> Result<Option<ServiceTime>> {
        let (_, namespace, eventhub, consumer_group, _) = key(record, scope, "-")?;
        let start = (record, namespace, eventhub, consumer_group, String::new());
        let state = self.state();
        for ((kind, ns, eh, cg, partition), stored) in state.records.range(start.clone()..) {
            if (kind, ns, eh, cg) != (&start.0, &start.1, &start.2, &start.3) {
                break;
            }
            on_record(Listed {
                partition_id: partition.clone(),
                version: &Known {
                    etag: Some(etag_of(stored.version)),
                    last_modified: Some(stored.last_modified),
                },
                fields: &stored.fields,
                source: partition,
            });
        }
        Ok(Some(ServiceTime::new((self.clock)())))
    }
}
