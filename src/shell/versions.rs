//! What a store last saw of each checkpoint record it wrote or read: its version (ETag) and the
//! position it holds. A write that must not move a checkpoint back compares with that position
//! and goes out conditional on that version: one request in the common case, where the store's
//! own previous write is what the record still holds. When another writer came in between, the
//! condition fails (checked by the service, never assumed), and the record is read and compared
//! again.

use crate::model::Checkpoint;
use crate::sync::lock;
use azure_core::http::Etag;
use std::{collections::HashMap, sync::Mutex};

/// A record as last seen: its version and the checkpoint it held then.
#[derive(Clone)]
pub(crate) struct Seen {
    pub(crate) etag: Etag,
    pub(crate) stored: Checkpoint,
}

/// One entry per partition this store has written or read a checkpoint of, shared by its clones.
#[derive(Default)]
pub(crate) struct Versions(Mutex<HashMap<String, Seen>>);

impl Versions {
    /// The key of a checkpoint's record: its scope and partition, as given.
    pub(crate) fn key(checkpoint: &Checkpoint) -> String {
        let s = &checkpoint.scope;
        format!(
            "{}\0{}\0{}\0{}",
            s.fully_qualified_namespace, s.eventhub_name, s.consumer_group, checkpoint.partition_id
        )
    }

    pub(crate) fn get(&self, key: &str) -> Option<Seen> {
        lock(&self.0).get(key).cloned()
    }

    /// Remembers that the record holds `stored` at version `etag`; without an etag (a response
    /// that did not say), forgets the record.
    pub(crate) fn set(&self, key: String, etag: Option<Etag>, stored: &Checkpoint) {
        let mut versions = lock(&self.0);
        match etag {
            Some(etag) => {
                versions.insert(
                    key,
                    Seen {
                        etag,
                        stored: stored.clone(),
                    },
                );
            }
            None => {
                versions.remove(&key);
            }
        }
    }

    /// Forgets the record: the next conditional write reads it first.
    pub(crate) fn forget(&self, key: &str) {
        lock(&self.0).remove(key);
    }
}
