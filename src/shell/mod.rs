//! What every store does, written once: the operation timeout, a tracing span per operation, the
//! claim rules (every claim checked before the first request, bounded concurrency, lost races left
//! out, failures never reported as won), and the mapping of stored fields to records. A backend
//! (blob, table, in memory) only says how it names its records and how it reads and writes them:
//! one conditional write, one unconditional write, one listing.
//!
//! The public stores are thin: each holds an `Arc<Shell<ItsBackend>>` and implements
//! [`CheckpointStore`](crate::CheckpointStore) (and, with feature `eventhubs`, the official
//! processor's trait) by delegating here, one line per method.

mod claim;
pub(crate) mod record;
mod versions;

use crate::client::account::{Account, Open};
use crate::client::timeout::{bounded, OperationTimeout};
use crate::error::{Error, Result};
use crate::model::{Advance, Checkpoint, Ownership, Standing};
use crate::options::ServiceOptions;
use crate::scope::Scope;
use crate::store::ServiceTime;
use async_trait::async_trait;
use azure_core::{http::Etag, time::OffsetDateTime};
use claim::{claim_all, ClaimOutcome};
use record::{Listed, Record};
use versions::{Seen, Versions};

/// How often a write that must not move a checkpoint back re-reads the record after losing a
/// race before it gives up: each lost race means another writer wrote the same partition just
/// then, which a partition with one owner does not see twice in a row.
const ADVANCE_ATTEMPTS: usize = 16;
use std::{fmt, num::NonZeroUsize, sync::Arc, time::Duration};

/// Where a backend's listing hands each record as it reads it.
pub(crate) type OnRecord<'a> = dyn for<'r> FnMut(Listed<'r>) + Send + 'a;

/// The new version of a record after a write.
#[derive(Debug, Default)]
pub(crate) struct Version {
    pub(crate) etag: Option<Etag>,
    pub(crate) last_modified: Option<OffsetDateTime>,
}

/// What a conditional write did: it was applied, or someone else wrote the record first (the
/// condition no longer held). Any other failure is an error.
#[derive(Debug)]
pub(crate) enum Written {
    Applied(Version),
    /// Lost the race; why, in the service's words, for the log.
    Lost(String),
}

impl Written {
    /// A conditional write's result: applied, or lost where `lost_race` says its error means
    /// that someone else wrote the record first; any other error stays an error.
    pub(crate) fn of(
        written: Result<Version>,
        lost_race: impl FnOnce(&Error) -> bool,
    ) -> Result<Self> {
        match written {
            Ok(version) => Ok(Written::Applied(version)),
            Err(err) if lost_race(&err) => Ok(Written::Lost(err.to_string())),
            Err(err) => Err(err),
        }
    }
}

/// How one backend names, reads and writes records. Every method is one request in the common
/// case; the shell adds everything else.
#[async_trait]
pub(crate) trait Backend: Send + Sync + 'static {
    /// One claim, checked and ready to send.
    type Claim: Send + Sync;

    /// Whether its I/O needs a Tokio runtime (the HTTP client does).
    const NEEDS_TOKIO: bool = true;

    /// What kind of store it is, for metrics: `blob`, `table`, `memory`.
    const KIND: &'static str;

    /// Adds what the store's `Debug` shows of this backend (never a secret).
    fn describe(&self, f: &mut fmt::DebugStruct<'_, '_>);

    /// Checks a claim before any request: names or keys, the owner, the etag's form.
    fn prepare_claim(&self, requested: &Ownership) -> Result<Self::Claim>;

    /// The conditional write: with an etag, only if the record is still at that version; without
    /// one, only if the record does not exist. Lost when the condition did not hold.
    async fn claim(&self, claim: Self::Claim) -> Result<Written>;

    /// The unconditional write of a checkpoint, creating its record on first use; its new
    /// version.
    async fn update_checkpoint(&self, checkpoint: &Checkpoint) -> Result<Version>;

    /// The same, in one request whether or not the record exists, where the backend can.
    async fn put_checkpoint(&self, checkpoint: &Checkpoint) -> Result<Version> {
        self.update_checkpoint(checkpoint).await
    }

    /// One partition's stored checkpoint and the version it is at, or `None` without a record.
    async fn read_checkpoint(
        &self,
        scope: &Scope,
        partition_id: &str,
    ) -> Result<Option<(Checkpoint, Etag)>>;

    /// The conditional write of a checkpoint: only if its record is still at `version`, or, with
    /// `None`, only if it has no record yet. Lost when the condition did not hold.
    async fn write_checkpoint_if(
        &self,
        checkpoint: &Checkpoint,
        version: Option<&Etag>,
    ) -> Result<Written>;

    /// Every record of one kind in one scope, each handed to `on_record` as it is read; the
    /// service's time as the (last) response showed it, when it did.
    async fn list(
        &self,
        scope: &Scope,
        record: Record,
        on_record: &mut OnRecord<'_>,
    ) -> Result<Option<ServiceTime>>;
}

/// A backend with what every store does around it.
pub(crate) struct Shell<B> {
    pub(crate) backend: B,
    claim_concurrency: usize,
    timeout: OperationTimeout,
    /// The checkpoint versions this store last wrote or read.
    versions: Versions,
}

impl<B: Backend> Shell<B> {
    /// The shell around `backend`, shared by a store's clones.
    pub(crate) fn new(
        backend: B,
        claim_concurrency: NonZeroUsize,
        operation_timeout: Option<Duration>,
    ) -> Result<Arc<Self>> {
        Ok(Arc::new(Self {
            backend,
            claim_concurrency: claim_concurrency.get(),
            timeout: OperationTimeout::new(operation_timeout)?,
            versions: Versions::default(),
        }))
    }

    /// A service-backed store: the account `open` names, the backend `make` builds on it, and
    /// the shell with `options`' bounds. Nothing is sent.
    pub(crate) fn over_account(
        open: Open<'_>,
        options: &ServiceOptions,
        make: impl FnOnce(Account) -> Result<B>,
    ) -> Result<Arc<Self>> {
        let backend = make(Account::new(open)?)?;
        Self::new(
            backend,
            options.claim_concurrency,
            options.operation_timeout,
        )
    }

    /// Runs one operation within the timeout. Outside a Tokio runtime, a backend whose I/O needs
    /// one fails at once with [`Error::NoRuntime`]: its HTTP client would otherwise panic on first
    /// use, wherever that happens to be.
    pub(crate) async fn bounded<T>(
        &self,
        operation: &'static str,
        future: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        if B::NEEDS_TOKIO && tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::NoRuntime { operation });
        }
        bounded(self.timeout, operation, future).await
    }

    /// [`bounded`](Self::bounded), timed and counted for the metrics (feature `metrics`).
    async fn measured<T>(
        &self,
        operation: &'static str,
        scope: Option<&Scope>,
        future: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let started = std::time::Instant::now();
        let result = self.bounded(operation, future).await;
        crate::metrics::operation(
            B::KIND,
            operation,
            scope,
            started.elapsed(),
            result.as_ref().err(),
        );
        result
    }

    #[tracing::instrument(level = "debug", skip_all, fields(scope = %scope), err)]
    pub(crate) async fn list_ownership(
        &self,
        scope: &Scope,
    ) -> Result<(Vec<Ownership>, Option<ServiceTime>)> {
        self.measured("list_ownership", Some(scope), async move {
            let mut ownership = Vec::new();
            let time = self
                .backend
                .list(scope, Record::Ownership, &mut |listed| {
                    ownership.push(listed.into_ownership(scope))
                })
                .await?;
            tracing::debug!(count = ownership.len(), "listed ownership");
            Ok((ownership, time))
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(count = ownership.len()), err)]
    pub(crate) async fn claim_ownership(&self, ownership: &[Ownership]) -> Result<Vec<Ownership>> {
        self.measured(
            "claim_ownership",
            ownership.first().map(|o| &o.scope),
            async move {
                let backend = &self.backend;
                claim_all(
                    ownership,
                    self.claim_concurrency,
                    |requested| backend.prepare_claim(requested),
                    |requested, claim| async move {
                        ClaimOutcome::of_write(requested, backend.claim(claim).await)
                    },
                )
                .await
            },
        )
        .await
    }

    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(partition_id = %checkpoint.partition_id, sequence_number = ?checkpoint.sequence_number),
        err
    )]
    pub(crate) async fn update_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()> {
        let written = self
            .measured(
                "update_checkpoint",
                Some(&checkpoint.scope),
                self.backend.update_checkpoint(checkpoint),
            )
            .await;
        self.remember(checkpoint, written)
    }

    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(partition_id = %checkpoint.partition_id, sequence_number = ?checkpoint.sequence_number),
        err
    )]
    pub(crate) async fn put_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()> {
        let written = self
            .measured(
                "put_checkpoint",
                Some(&checkpoint.scope),
                self.backend.put_checkpoint(checkpoint),
            )
            .await;
        self.remember(checkpoint, written)
    }

    /// Notes the version an unconditional checkpoint write made, for the next conditional one.
    fn remember(&self, checkpoint: &Checkpoint, written: Result<Version>) -> Result<()> {
        let key = Versions::key(checkpoint);
        match written {
            Ok(version) => {
                self.versions.set(key, version.etag, checkpoint);
                crate::metrics::checkpointed(checkpoint);
                Ok(())
            }
            Err(err) => {
                self.versions.forget(&key);
                Err(err)
            }
        }
    }

    /// Writes `checkpoint` unless the stored one is at or past it (see
    /// [`CheckpointStore::advance_checkpoint`](crate::CheckpointStore::advance_checkpoint)). The
    /// record as this store last saw it is compared first, and the write is conditional on that
    /// version: a write by anyone else in between fails the condition, and is read and compared
    /// before anything is written, never overwritten.
    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(partition_id = %checkpoint.partition_id, sequence_number = ?checkpoint.sequence_number),
        err
    )]
    pub(crate) async fn advance_checkpoint(&self, checkpoint: &Checkpoint) -> Result<Advance> {
        // Refused now, not after a read.
        record::checkpoint_fields(checkpoint)?;
        let key = Versions::key(checkpoint);
        self.measured("advance_checkpoint", Some(&checkpoint.scope), async {
            let mut seen = self.versions.get(&key);
            for _ in 0..ADVANCE_ATTEMPTS {
                // What this store last saw decides a write; only the record as read now decides
                // against one (someone may have moved it back since: an operator's rewind).
                let (seen_now, fresh) = match seen.take() {
                    Some(seen) => (Some(seen), false),
                    None => match self
                        .backend
                        .read_checkpoint(&checkpoint.scope, &checkpoint.partition_id)
                        .await
                    {
                        Ok(read) => (read.map(|(stored, etag)| Seen { etag, stored }), true),
                        Err(err) => {
                            self.versions.forget(&key);
                            return Err(err);
                        }
                    },
                };
                if let Some(Seen { etag, stored }) = &seen_now {
                    match stored.standing_against(checkpoint) {
                        Standing::Behind => {}
                        _ if !fresh => continue,
                        standing => {
                            self.versions.set(key, Some(etag.clone()), stored);
                            return Ok(if standing == Standing::Same {
                                Advance::Unchanged
                            } else {
                                tracing::debug!(
                                    stored = ?stored.sequence_number,
                                    "the stored checkpoint is at or past this one: not written"
                                );
                                Advance::Stale {
                                    stored: stored.clone(),
                                }
                            });
                        }
                    }
                }
                let version = seen_now.as_ref().map(|seen| &seen.etag);
                match self.backend.write_checkpoint_if(checkpoint, version).await {
                    Ok(Written::Applied(written)) => {
                        self.versions.set(key, written.etag, checkpoint);
                        crate::metrics::checkpointed(checkpoint);
                        return Ok(Advance::Written);
                    }
                    // Someone else wrote it since: read what they wrote, and compare again.
                    Ok(Written::Lost(reason)) => {
                        tracing::debug!(%reason, "checkpoint changed since last seen; reading it")
                    }
                    Err(err) => {
                        self.versions.forget(&key);
                        return Err(err);
                    }
                }
            }
            Err(Error::Conflict {
                message: format!(
                    "the checkpoint of partition {} changed {ADVANCE_ATTEMPTS} times while this write was tried; not written",
                    checkpoint.partition_id
                ),
            })
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(scope = %scope), err)]
    pub(crate) async fn list_checkpoints(&self, scope: &Scope) -> Result<Vec<Checkpoint>> {
        self.listed_checkpoints(scope, |listed| listed.into_checkpoint(scope))
            .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(scope = %scope), err)]
    pub(crate) async fn list_checkpoints_with_times(
        &self,
        scope: &Scope,
    ) -> Result<Vec<(Checkpoint, Option<OffsetDateTime>)>> {
        self.listed_checkpoints(scope, |listed| {
            let written = listed.version.last_modified();
            (listed.into_checkpoint(scope), written)
        })
        .await
    }

    /// Every checkpoint record of `scope`, each as `keep` makes it.
    async fn listed_checkpoints<T: Send>(
        &self,
        scope: &Scope,
        keep: impl Fn(Listed<'_>) -> T + Send + Sync,
    ) -> Result<Vec<T>> {
        self.measured("list_checkpoints", Some(scope), async move {
            let mut checkpoints = Vec::new();
            self.backend
                .list(scope, Record::Checkpoint, &mut |listed| {
                    checkpoints.push(keep(listed))
                })
                .await?;
            tracing::debug!(count = checkpoints.len(), "listed checkpoints");
            Ok(checkpoints)
        })
        .await
    }

    /// The store's `Debug`: its name, the backend's fields, and the shell's options.
    pub(crate) fn debug(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct(name);
        self.backend.describe(&mut debug);
        debug
            .field("claim_concurrency", &self.claim_concurrency)
            .field("operation_timeout", &self.timeout)
            .finish()
    }
}
