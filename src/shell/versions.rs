//! The versions (ETags) of the checkpoint records a store last wrote or read, so that writes which
//! must not move a checkpoint back go out as one conditional request in the common case: the
//! store's own previous write is the version it expects. A version that is out of date (another
//! writer came in between) costs one lost race and a read, never a wrong write: the condition is
//! checked by the service.

use crate::model::Checkpoint;
use crate::sync::lock;
use azure_core::http::Etag;
use std::{collections::HashMap, sync::Mutex};

/// One entry per partition this store has written or read a checkpoint of, shared by its clones.
#[derive(Default)]
pub(crate) struct Versions(Mutex<HashMap<String, Etag>>);

impl Versions {
    /// The key of a checkpoint's record: its scope and partition, as given.
    pub(crate) fn key(checkpoint: &Checkpoint) -> String {
        let s = &checkpoint.scope;
        format!(
            "{}\0{}\0{}\0{}",
            s.fully_qualified_namespace, s.eventhub_name, s.consumer_group, checkpoint.partition_id
        )
    }

    pub(crate) fn get(&self, key: &str) -> Option<Etag> {
        lock(&self.0).get(key).cloned()
    }

    /// Remembers `etag` as the record's version; without one (a response that did not say),
    /// forgets it.
    pub(crate) fn set(&self, key: String, etag: Option<Etag>) {
        let mut versions = lock(&self.0);
        match etag {
            Some(etag) => {
                versions.insert(key, etag);
            }
            None => {
                versions.remove(&key);
            }
        }
    }
}
