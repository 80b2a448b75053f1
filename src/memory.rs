//! A checkpoint store in memory: the third backend behind the store shell, with the same
//! conditional semantics as the storage services (every write makes a new version; a claim is
//! won only against the version it names, or only if no record exists), for unit tests of code
//! built on [`CheckpointStore`](crate::CheckpointStore) and for a single process that needs no
//! durability.

use crate::error::{Error, Result};
use crate::model::{Checkpoint, Ownership};
use crate::record::{self, Fields, Listed, Record, Scope, StoredFields};
use crate::shell::{Backend, OnRecord, Shell, Version};
use crate::store::ServiceTime;
use async_trait::async_trait;
use azure_core::{http::Etag, time::OffsetDateTime};
use std::{
    borrow::Cow,
    collections::BTreeMap,
    fmt,
    sync::{Arc, Mutex, MutexGuard},
};

/// A [`CheckpointStore`](crate::CheckpointStore) that keeps its records in memory, shared by its
/// clones, gone with the last of them. It behaves as the blob and table stores do (it passes the
/// same conformance suite): claims are conditional on the etag of the version they name, a lost
/// race is left out of the result, bad input is refused before anything is written; and it makes
/// no request. Names are kept exactly as given (case-sensitive).
///
/// `last_modified` comes from a clock the store owns: the system clock, or one the test controls
/// ([`with_clock`](Self::with_clock)), so expiry can be tested without waiting.
///
/// ```
/// use eventhub_checkpointstore::{CheckpointStore, InMemoryCheckpointStore, Ownership};
///
/// // No runtime of its own is needed: any executor polls it.
/// futures::executor::block_on(async {
///     let store = InMemoryCheckpointStore::new();
///     let claim = Ownership::new("ns", "hub", "$Default", "0", "a");
///     let won = store.claim_ownership(&[claim.clone()]).await?;
///     assert_eq!(won.len(), 1);
///     // A second claim of a new record loses: it exists now.
///     assert!(store.claim_ownership(&[claim]).await?.is_empty());
///     Ok::<(), eventhub_checkpointstore::Error>(())
/// })?;
/// # Ok::<(), eventhub_checkpointstore::Error>(())
/// ```
#[derive(Clone)]
pub struct InMemoryCheckpointStore {
    inner: Arc<Shell<MemoryBackend>>,
}

checkpoint_store!(InMemoryCheckpointStore);

impl Default for InMemoryCheckpointStore {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryCheckpointStore {
    /// An empty store on the system clock.
    pub fn new() -> Self {
        Self::with_clock(OffsetDateTime::now_utc)
    }

    /// An empty store whose records' `last_modified` is what `clock` says at each write.
    ///
    /// ```
    /// use eventhub_checkpointstore::InMemoryCheckpointStore;
    /// use eventhub_checkpointstore::azure_core::time::OffsetDateTime;
    ///
    /// let store = InMemoryCheckpointStore::with_clock(|| OffsetDateTime::UNIX_EPOCH);
    /// ```
    pub fn with_clock(clock: impl Fn() -> OffsetDateTime + Send + Sync + 'static) -> Self {
        let backend = MemoryBackend {
            state: Mutex::new(State::default()),
            clock: Box::new(clock),
        };
        let inner = Shell::new(backend, crate::DEFAULT_CLAIM_CONCURRENCY, None)
            .unwrap_or_else(|_| unreachable!("no timeout is always valid"));
        Self { inner }
    }
}

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

struct MemoryBackend {
    state: Mutex<State>,
    clock: Box<dyn Fn() -> OffsetDateTime + Send + Sync>,
}

impl MemoryBackend {
    fn state(&self) -> MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
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

/// The key of one partition's record; names must not be empty.
fn key(
    record: Record,
    namespace: &str,
    eventhub: &str,
    consumer_group: &str,
    partition_id: &str,
) -> Result<Key> {
    for (field, value) in [
        ("fully_qualified_namespace", namespace),
        ("eventhub_name", eventhub),
        ("consumer_group", consumer_group),
        ("partition_id", partition_id),
    ] {
        if value.is_empty() {
            return Err(Error::invalid_input(format!("{field} is empty")));
        }
    }
    Ok((
        record,
        namespace.to_owned(),
        eventhub.to_owned(),
        consumer_group.to_owned(),
        partition_id.to_owned(),
    ))
}

/// A lost race, in the form the shell's rules classify.
fn lost(status: u16, code: &str, message: &str) -> Error {
    Error::Service {
        status,
        error_code: Some(code.to_owned()),
        message: message.to_owned(),
    }
}

/// One claim, checked and ready to apply.
struct Claim {
    key: Key,
    fields: Fields,
    /// The version it is conditioned on: `None` for "no record yet", `Some(None)` for an etag
    /// this store never issued (which no record has).
    condition: Option<Option<u64>>,
}

#[async_trait]
impl Backend for MemoryBackend {
    type Claim = Claim;
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
                Some(inner.parse().ok())
            }
        };
        Ok(Claim {
            key: key(
                Record::Ownership,
                &requested.fully_qualified_namespace,
                &requested.eventhub_name,
                &requested.consumer_group,
                &requested.partition_id,
            )?,
            fields: record::ownership_fields(requested.owner_id.as_deref()),
            condition,
        })
    }

    async fn claim(&self, claim: Claim) -> Result<Version> {
        let mut state = self.state();
        let current = state.records.get(&claim.key).map(|s| s.version);
        match (claim.condition, current) {
            (None, Some(_)) => Err(lost(409, "RecordAlreadyExists", "the record exists")),
            (Some(_), None) => Err(lost(404, "RecordNotFound", "the record does not exist")),
            (Some(wanted), Some(current)) if wanted != Some(current) => Err(lost(
                412,
                "ConditionNotMet",
                "the record has changed since that version",
            )),
            _ => Ok(self.write(&mut state, claim.key, claim.fields)),
        }
    }

    fn lost_race(&self, err: &Error, _conditional: bool) -> bool {
        matches!(
            err.error_code(),
            Some("RecordAlreadyExists" | "RecordNotFound" | "ConditionNotMet")
        )
    }

    async fn update_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()> {
        let key = key(
            Record::Checkpoint,
            &checkpoint.fully_qualified_namespace,
            &checkpoint.eventhub_name,
            &checkpoint.consumer_group,
            &checkpoint.partition_id,
        )?;
        let fields = record::checkpoint_fields(checkpoint)?;
        let mut state = self.state();
        self.write(&mut state, key, fields);
        Ok(())
    }

    async fn list(
        &self,
        scope: Scope<'_>,
        record: Record,
        on_record: &mut OnRecord<'_>,
    ) -> Result<Option<ServiceTime>> {
        let (_, namespace, eventhub, consumer_group, _) = key(
            record,
            scope.namespace,
            scope.eventhub,
            scope.consumer_group,
            "-",
        )?;
        let start = (record, namespace, eventhub, consumer_group, String::new());
        let state = self.state();
        for ((kind, ns, eh, cg, partition), stored) in state.records.range(start.clone()..) {
            if (kind, ns, eh, cg) != (&start.0, &start.1, &start.2, &start.3) {
                break;
            }
            on_record(Listed {
                partition_id: partition.clone(),
                etag: Some(etag_of(stored.version)),
                last_modified: Some(stored.last_modified),
                fields: &stored.fields,
                source: partition,
            });
        }
        Ok(Some(ServiceTime::new((self.clock)())))
    }
}
