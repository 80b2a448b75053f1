//! The checkpoint store contract, independent of where the records live.

use crate::error::Result;
use crate::model::{Advance, Checkpoint, Ownership, Standing};
use crate::scope::Scope;
use async_trait::async_trait;
use azure_core::{
    http::headers::Headers,
    time::{Duration, OffsetDateTime},
};
use std::time::Instant;

/// The service's clock, as a response's `Date` header showed it: judging a claim's age by it (its
/// `last_modified` is the service's time too) keeps a host whose own clock is off from stealing
/// live partitions or keeping dead ones.
///
/// ```
/// use eventhub_checkpointstore::ServiceTime;
/// use eventhub_checkpointstore::azure_core::time::{Duration, OffsetDateTime};
///
/// let seen = ServiceTime::new(OffsetDateTime::UNIX_EPOCH);
/// assert!(seen.now() >= OffsetDateTime::UNIX_EPOCH);
/// assert!(seen.now() - OffsetDateTime::UNIX_EPOCH < Duration::seconds(2));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceTime {
    date: OffsetDateTime,
    seen: Instant,
}

impl ServiceTime {
    /// The service's time was `date` just now.
    pub fn new(date: OffsetDateTime) -> Self {
        Self {
            date,
            seen: Instant::now(),
        }
    }

    /// The time a response's `Date` header gives; `None` without a readable one. `Date` has
    /// whole seconds and is stamped before the response travels back: the half second added
    /// centres its truncation, so the error is within ±0.5 s plus half the round trip.
    pub(crate) fn from_headers(headers: &Headers) -> Option<Self> {
        use crate::client::headers;
        let date = headers::get(
            headers,
            &azure_core::http::headers::HeaderName::from_static("date"),
        )?;
        Some(Self::new(
            headers::http_date(date)? + Duration::milliseconds(500),
        ))
    }

    /// The service's time now: what it said, plus the time since (on this host's monotonic clock,
    /// which its wall clock being off does not affect).
    pub fn now(&self) -> OffsetDateTime {
        self.date + self.seen.elapsed()
    }

    /// How far this host's wall clock is ahead of the service's (negative: behind).
    pub fn local_clock_offset(&self) -> Duration {
        OffsetDateTime::now_utc() - self.now()
    }
}

/// A durable, shared record of partition ownership and checkpoints for Event Hubs consumers.
///
/// Method names follow Python's `azure-eventhub` `CheckpointStore`; listings take the consumer
/// group's [`Scope`]. The trait is object safe: a consumer can hold an
/// `Arc<dyn CheckpointStore>`.
///
/// ```
/// use eventhub_checkpointstore::{BlobCheckpointStore, CheckpointStore, Scope};
/// use std::sync::Arc;
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let blob = BlobCheckpointStore::from_connection_string(
///     &std::env::var("AZURE_STORAGE_CONNECTION_STRING")?,
///     "checkpoints",
///     None,
/// )?;
/// blob.create_container_if_missing().await?;
/// let store: Arc<dyn CheckpointStore> = Arc::new(blob);
/// let scope = Scope::new("myns.servicebus.windows.net", "telemetry", "$Default");
/// let won = store.claim_ownership(&[scope.ownership("0", "processor-a")]).await?;
/// println!("claimed {} partition(s)", won.len());
/// # Ok(()) }
/// ```
///
/// The official processor (`azure_messaging_eventhubs`) has a trait of the same name, which this
/// crate's stores implement too (feature `eventhubs`). With both in scope, method calls are
/// ambiguous: import one of them under another name or as `_` (see [`crate::eventhubs`]).
#[async_trait]
pub trait CheckpointStore: Send + Sync {
    /// Every ownership record of the consumer group, owned or not.
    async fn list_ownership(&self, scope: &Scope) -> Result<Vec<Ownership>>;

    /// Tries to claim each ownership, conditionally on its `etag`, and returns exactly the ones
    /// won, in the order given, with their new `etag` and `last_modified`.
    ///
    /// - **Invalid input** anywhere in the batch (an empty name or partition id, an `etag` that is
    ///   not a version this store issued, such as `*`) fails the whole call with
    ///   [`Error::InvalidInput`](crate::Error::InvalidInput) before any request is sent: no claim
    ///   of the batch is made.
    /// - **Losing a race** (someone else wrote the record first) is a normal outcome: that
    ///   partition is left out of the result.
    /// - **Any other failure** of one claim (bad credentials, a missing container, a lease held on
    ///   the record, a response without a new version) is never reported as won. It is logged at
    ///   `WARN`; the call still returns `Ok` with the claims that were won, and fails with the first
    ///   such error only when nothing was won.
    ///
    /// The input is not modified.
    async fn claim_ownership(&self, ownership: &[Ownership]) -> Result<Vec<Ownership>>;

    /// Records `checkpoint` unconditionally, creating the record on first use: whatever is stored
    /// is replaced, a newer checkpoint included (an operator's rewind). At least one of `offset`
    /// and `sequence_number` must be set.
    async fn update_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()>;

    /// Records `checkpoint` only if that moves the stored checkpoint forward: nothing is written
    /// when the store holds the same position ([`Advance::Unchanged`]) or one at or past it by
    /// sequence number ([`Advance::Stale`]), so a consumer that lost a partition (a stall past
    /// its claim's expiry, a steal) cannot write its old position over its successor's newer one.
    /// Without a sequence number on either side the two cannot be ordered, and `checkpoint` is
    /// written.
    ///
    /// This crate's stores make it one conditional request in the common case (on the version of
    /// the record they last wrote or read, so a concurrent writer is never overwritten: its write
    /// is read and compared first), and two (a read, then the write) the first time a store
    /// writes a partition. The checkpointer, the balancer's handover, `copy` and the CLI write
    /// through it.
    ///
    /// The default, for stores outside this crate, lists the scope's checkpoints, compares, and
    /// updates: correct for one writer per partition, not atomic against a concurrent writer.
    /// Implement it with a conditional write where the backend has one.
    async fn advance_checkpoint(&self, checkpoint: &Checkpoint) -> Result<Advance> {
        let stored = self
            .list_checkpoints(&checkpoint.scope)
            .await?
            .into_iter()
            .find(|c| c.partition_id == checkpoint.partition_id);
        match stored.as_ref().map(|s| s.standing_against(checkpoint)) {
            Some(Standing::Same) => Ok(Advance::Unchanged),
            Some(Standing::AtOrPast) => Ok(Advance::Stale {
                stored: stored.expect("compared"),
            }),
            Some(Standing::Behind) | None => {
                self.update_checkpoint(checkpoint).await?;
                Ok(Advance::Written)
            }
        }
    }

    /// Records `checkpoint` as [`update_checkpoint`](Self::update_checkpoint) does, in the fewest
    /// requests for a record that probably does not exist yet: the blob store's
    /// `update_checkpoint` tries Set Blob Metadata first (one request for an existing record, two
    /// for a new one), this writes the blob whole (always one). For bulk writes such as
    /// [`copy_checkpoints`](crate::copy::copy_checkpoints). The default calls
    /// `update_checkpoint`.
    async fn put_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()> {
        self.update_checkpoint(checkpoint).await
    }

    /// [`list_ownership`](Self::list_ownership), and the service's time when it listed them, to
    /// judge the claims' ages by the same clock that stamped them. The default lists and reports
    /// no time (callers then fall back to their own clock); this crate's stores report the time
    /// of the listing's response (the in-memory store, its own clock's).
    async fn list_ownership_with_service_time(
        &self,
        scope: &Scope,
    ) -> Result<(Vec<Ownership>, Option<ServiceTime>)> {
        Ok((self.list_ownership(scope).await?, None))
    }

    /// Every checkpoint of the consumer group.
    async fn list_checkpoints(&self, scope: &Scope) -> Result<Vec<Checkpoint>>;

    /// [`list_checkpoints`](Self::list_checkpoints), each with when it was last written, by the
    /// service's clock (the record's `Last-Modified` or `Timestamp`), for reports such as
    /// `eh-checkpoints lag`. The default lists and reports no times; this crate's stores report
    /// them (the in-memory store, by its own clock).
    async fn list_checkpoints_with_times(
        &self,
        scope: &Scope,
    ) -> Result<Vec<(Checkpoint, Option<OffsetDateTime>)>> {
        Ok(self
            .list_checkpoints(scope)
            .await?
            .into_iter()
            .map(|c| (c, None))
            .collect())
    }
}

/// A shared store is a store: an `Arc<dyn CheckpointStore>` (or an `Arc` of a concrete store) can
/// be passed, or wrapped, wherever a store is taken. Every call goes to the store inside.
#[async_trait]
impl<T: CheckpointStore + ?Sized> CheckpointStore for std::sync::Arc<T> {
    async fn list_ownership(&self, scope: &Scope) -> Result<Vec<Ownership>> {
        (**self).list_ownership(scope).await
    }

    async fn claim_ownership(&self, ownership: &[Ownership]) -> Result<Vec<Ownership>> {
        (**self).claim_ownership(ownership).await
    }

    async fn update_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()> {
        (**self).update_checkpoint(checkpoint).await
    }

    async fn advance_checkpoint(&self, checkpoint: &Checkpoint) -> Result<Advance> {
        (**self).advance_checkpoint(checkpoint).await
    }

    async fn put_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()> {
        (**self).put_checkpoint(checkpoint).await
    }

    async fn list_ownership_with_service_time(
        &self,
        scope: &Scope,
    ) -> Result<(Vec<Ownership>, Option<ServiceTime>)> {
        (**self).list_ownership_with_service_time(scope).await
    }

    async fn list_checkpoints(&self, scope: &Scope) -> Result<Vec<Checkpoint>> {
        (**self).list_checkpoints(scope).await
    }

    async fn list_checkpoints_with_times(
        &self,
        scope: &Scope,
    ) -> Result<Vec<(Checkpoint, Option<OffsetDateTime>)>> {
        (**self).list_checkpoints_with_times(scope).await
    }
}
