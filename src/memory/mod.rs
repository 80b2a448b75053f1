//! A checkpoint store in memory: the third backend behind the store shell, with the same
//! conditional semantics as the storage services (every write makes a new version; a claim is
//! won only against the version it names, or only if no record exists), for unit tests of code
//! built on [`CheckpointStore`](crate::CheckpointStore) and for a single process that needs no
//! durability.

mod backend;

use crate::error::Result;
use crate::model::{Advance, Checkpoint, Ownership};
use crate::options::DEFAULT_CLAIM_CONCURRENCY;
use crate::scope::Scope;
use crate::shell::Shell;
use crate::store::{CheckpointStore, ServiceTime};
use async_trait::async_trait;
use azure_core::time::OffsetDateTime;
use backend::MemoryBackend;
use std::{fmt, sync::Arc};

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
/// use eventhub_checkpointstore::{CheckpointStore, InMemoryCheckpointStore, Scope};
///
/// // No runtime of its own is needed: any executor polls it.
/// futures::executor::block_on(async {
///     let store = InMemoryCheckpointStore::new();
///     let claim = Scope::new("ns", "hub", "$Default").ownership("0", "a");
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
        let inner = Shell::new(MemoryBackend::new(clock), DEFAULT_CLAIM_CONCURRENCY, None)
            .unwrap_or_else(|_| unreachable!("no timeout is always valid"));
        Self { inner }
    }
}

#[async_trait]
impl CheckpointStore for InMemoryCheckpointStore {
    async fn list_ownership(&self, scope: &Scope) -> Result<Vec<Ownership>> {
        Ok(self.inner.list_ownership(scope).await?.0)
    }

    async fn list_ownership_with_service_time(
        &self,
        scope: &Scope,
    ) -> Result<(Vec<Ownership>, Option<ServiceTime>)> {
        self.inner.list_ownership(scope).await
    }

    async fn claim_ownership(&self, ownership: &[Ownership]) -> Result<Vec<Ownership>> {
        self.inner.claim_ownership(ownership).await
    }

    async fn update_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()> {
        self.inner.update_checkpoint(checkpoint).await
    }

    async fn put_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()> {
        self.inner.put_checkpoint(checkpoint).await
    }

    async fn advance_checkpoint(&self, checkpoint: &Checkpoint) -> Result<Advance> {
        self.inner.advance_checkpoint(checkpoint).await
    }

    async fn list_checkpoints(&self, scope: &Scope) -> Result<Vec<Checkpoint>> {
        self.inner.list_checkpoints(scope).await
    }

    async fn list_checkpoints_with_times(
        &self,
        scope: &Scope,
    ) -> Result<Vec<(Checkpoint, Option<OffsetDateTime>)>> {
        self.inner.list_checkpoints_with_times(scope).await
    }
}

impl fmt::Debug for InMemoryCheckpointStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.debug("InMemoryCheckpointStore", f)
    }
}
