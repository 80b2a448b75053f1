//! A blocking [`BlobCheckpointStore`] (feature `blocking`), for programs without an async runtime:
//! the same operations as the async store, each run to completion on a small runtime the store
//! owns, the way `reqwest::blocking` works.
//!
//! ```
//! use eventhub_checkpointstore::{blocking::BlobCheckpointStore, Scope};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let connection = std::env::var("AZURE_STORAGE_CONNECTION_STRING")?;
//! let store = BlobCheckpointStore::from_connection_string(&connection, "checkpoints", None)?;
//! store.create_container_if_missing()?;
//! let scope = Scope::new("myns.servicebus.windows.net", "telemetry", "$Default");
//! store.update_checkpoint(&scope.checkpoint("0", Some("1024".into()), Some(17)))?;
//! for checkpoint in store.list_checkpoints(&scope)? {
//!     println!("{}: {:?}", checkpoint.partition_id, checkpoint.sequence_number);
//! }
//! # Ok(()) }
//! ```
//!
//! Calling it from inside an async runtime (a `#[tokio::main]` function, a spawned task) would
//! block that runtime's thread; it returns [`Error::BlockingInAsyncContext`] instead. Use the async
//! [`crate::BlobCheckpointStore`] there, or `tokio::task::spawn_blocking`.

use crate::blob::BlobCheckpointStoreOptions;
use crate::client::credential::StorageCredential;
use crate::error::{Error, Result};
use crate::model::{Checkpoint, Ownership};
use crate::scope::Scope;
use crate::store::CheckpointStore;
use std::{fmt, future::Future, sync::Arc};
use tokio::runtime::{Builder, Handle, Runtime};

/// The blocking twin of [`crate::BlobCheckpointStore`]. Cheap to clone; clones share one
/// connection pool and one runtime, and any thread may call it.
#[derive(Clone)]
pub struct BlobCheckpointStore {
    store: crate::BlobCheckpointStore,
    runtime: Arc<OwnedRuntime>,
}

impl BlobCheckpointStore {
    /// See [`crate::BlobCheckpointStore::new`].
    pub fn new(
        account_url: &str,
        container: &str,
        credential: impl Into<StorageCredential>,
        options: Option<BlobCheckpointStoreOptions>,
    ) -> Result<Self> {
        Self::from_async(crate::BlobCheckpointStore::new(
            account_url,
            container,
            credential,
            options,
        )?)
    }

    /// See [`crate::BlobCheckpointStore::from_connection_string`].
    pub fn from_connection_string(
        connection_string: &str,
        container: &str,
        options: Option<BlobCheckpointStoreOptions>,
    ) -> Result<Self> {
        Self::from_async(crate::BlobCheckpointStore::from_connection_string(
            connection_string,
            container,
            options,
        )?)
    }

    /// Wraps an async store; the two share their connection pool.
    pub fn from_async(store: crate::BlobCheckpointStore) -> Result<Self> {
        let runtime = Builder::new_current_thread()
            .enable_all()
            .thread_name("eventhub-checkpointstore-blocking")
            .build()
            .map_err(|e| Error::BlockingRuntime {
                message: e.to_string(),
            })?;
        Ok(Self {
            store,
            runtime: Arc::new(OwnedRuntime(Some(runtime))),
        })
    }

    /// The async store underneath.
    pub fn as_async(&self) -> &crate::BlobCheckpointStore {
        &self.store
    }

    /// See [`crate::BlobCheckpointStore::create_container_if_missing`].
    pub fn create_container_if_missing(&self) -> Result<bool> {
        self.block_on(self.store.create_container_if_missing())?
    }

    /// See [`CheckpointStore::list_ownership`].
    pub fn list_ownership(&self, scope: &Scope) -> Result<Vec<Ownership>> {
        self.block_on(self.store.list_ownership(scope))?
    }

    /// See [`CheckpointStore::claim_ownership`]: the claims won, in input order; lost races are
    /// left out.
    pub fn claim_ownership(&self, ownership: &[Ownership]) -> Result<Vec<Ownership>> {
        self.block_on(self.store.claim_ownership(ownership))?
    }

    /// See [`CheckpointStore::update_checkpoint`].
    pub fn update_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()> {
        self.block_on(self.store.update_checkpoint(checkpoint))?
    }

    /// See [`CheckpointStore::list_checkpoints`].
    pub fn list_checkpoints(&self, scope: &Scope) -> Result<Vec<Checkpoint>> {
        self.block_on(self.store.list_checkpoints(scope))?
    }

    fn block_on<F: Future>(&self, work: F) -> Result<F::Output> {
        // Blocking a runtime's worker would stall (or, on a single-threaded runtime, deadlock)
        // everything else it runs; tokio would panic. A clear error instead.
        if Handle::try_current().is_ok() {
            return Err(Error::BlockingInAsyncContext);
        }
        Ok(self.runtime.get().block_on(work))
    }
}

impl fmt::Debug for BlobCheckpointStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("blocking::BlobCheckpointStore")
            .field(&self.store)
            .finish()
    }
}

/// Dropping a runtime blocks until its tasks end, which tokio forbids inside another runtime; the
/// last clone may well be dropped there (moved into a task), so shut down without waiting.
struct OwnedRuntime(Option<Runtime>);

impl OwnedRuntime {
    fn get(&self) -> &Runtime {
        self.0.as_ref().expect("present until dropped")
    }
}

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}
