//! What every store does, written once: the operation timeout, a tracing span per operation, the
//! claim rules (every claim checked before the first request, bounded concurrency, lost races left
//! out, failures never reported as won), and the mapping of stored fields to records. A backend
//! (blob, table, in memory) only says how it names its records and how it reads and writes them:
//! one conditional write, one unconditional write, one listing.
//!
//! The public stores are thin: each holds an `Arc<Shell<ItsBackend>>`, and
//! `checkpoint_store!` implements [`CheckpointStore`] (and, with feature
//! `eventhubs`, the official processor's trait) and `Debug` for it by delegating here.

use crate::claim::{claim_all, ClaimOutcome};
use crate::error::{Error, Result};
use crate::model::{Checkpoint, Ownership};
use crate::record::{Listed, Record, Scope};
use crate::store::ServiceTime;
use crate::timeout::{bounded, OperationTimeout};
use async_trait::async_trait;
use azure_core::{http::Etag, time::OffsetDateTime};
use std::{fmt, num::NonZeroUsize, sync::Arc, time::Duration};

/// The default bound on concurrent claim requests of one `claim_ownership` call.
pub const DEFAULT_CLAIM_CONCURRENCY: NonZeroUsize = match NonZeroUsize::new(32) {
    Some(n) => n,
    None => unreachable!(),
};

/// Where a backend's listing hands each record as it reads it.
pub(crate) type OnRecord<'a> = dyn for<'r> FnMut(Listed<'r>) + Send + 'a;

/// The new version of a record after a write.
#[derive(Debug, Default)]
pub(crate) struct Version {
    pub(crate) etag: Option<Etag>,
    pub(crate) last_modified: Option<OffsetDateTime>,
}

/// How one backend names, reads and writes records. Every method is one request in the common
/// case; the shell adds everything else.
#[async_trait]
pub(crate) trait Backend: Send + Sync + 'static {
    /// One claim, checked and ready to send.
    type Claim: Send + Sync;

    /// Whether its I/O needs a Tokio runtime (the HTTP client does).
    const NEEDS_TOKIO: bool = true;

    /// Adds what the store's `Debug` shows of this backend (never a secret).
    fn describe(&self, f: &mut fmt::DebugStruct<'_, '_>);

    /// Checks a claim before any request: names or keys, the owner, the etag's form.
    fn prepare_claim(&self, requested: &Ownership) -> Result<Self::Claim>;

    /// The conditional write: with an etag, only if the record is still at that version; without
    /// one, only if the record does not exist.
    async fn claim(&self, claim: Self::Claim) -> Result<Version>;

    /// Whether a failed claim lost a race (someone else wrote the record first) rather than
    /// failed; `conditional` when it named a version (an etag), not "no record yet".
    fn lost_race(&self, err: &Error, conditional: bool) -> bool;

    /// The unconditional write of a checkpoint, creating its record on first use.
    async fn update_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()>;

    /// The same, in one request whether or not the record exists, where the backend can.
    async fn put_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()> {
        self.update_checkpoint(checkpoint).await
    }

    /// Every record of one kind in one scope, each handed to `on_record` as it is read; the
    /// service's time as the (last) response showed it, when it did.
    async fn list(
        &self,
        scope: Scope<'_>,
        record: Record,
        on_record: &mut OnRecord<'_>,
    ) -> Result<Option<ServiceTime>>;
}

/// A backend with what every store does around it.
pub(crate) struct Shell<B> {
    pub(crate) backend: B,
    claim_concurrency: usize,
    timeout: OperationTimeout,
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
        }))
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

    #[tracing::instrument(level = "debug", skip(self), err)]
    pub(crate) async fn list_ownership(
        &self,
        fully_qualified_namespace: &str,
        eventhub_name: &str,
        consumer_group: &str,
    ) -> Result<(Vec<Ownership>, Option<ServiceTime>)> {
        let scope = Scope {
            namespace: fully_qualified_namespace,
            eventhub: eventhub_name,
            consumer_group,
        };
        self.bounded("list_ownership", async move {
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
        self.bounded("claim_ownership", async move {
            let backend = &self.backend;
            claim_all(
                ownership,
                self.claim_concurrency,
                |requested| backend.prepare_claim(requested),
                |requested, claim| async move {
                    let written = backend.claim(claim).await;
                    ClaimOutcome::of_write(
                        requested,
                        written.map(|v| (v.etag, v.last_modified)),
                        |err| backend.lost_race(err, requested.etag.is_some()),
                    )
                },
            )
            .await
        })
        .await
    }

    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(partition_id = %checkpoint.partition_id, sequence_number = ?checkpoint.sequence_number),
        err
    )]
    pub(crate) async fn update_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()> {
        self.bounded(
            "update_checkpoint",
            self.backend.update_checkpoint(checkpoint),
        )
        .await
    }

    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(partition_id = %checkpoint.partition_id, sequence_number = ?checkpoint.sequence_number),
        err
    )]
    pub(crate) async fn put_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()> {
        self.bounded("put_checkpoint", self.backend.put_checkpoint(checkpoint))
            .await
    }

    #[tracing::instrument(level = "debug", skip(self), err)]
    pub(crate) async fn list_checkpoints(
        &self,
        fully_qualified_namespace: &str,
        eventhub_name: &str,
        consumer_group: &str,
    ) -> Result<Vec<Checkpoint>> {
        let scope = Scope {
            namespace: fully_qualified_namespace,
            eventhub: eventhub_name,
            consumer_group,
        };
        self.bounded("list_checkpoints", async move {
            let mut checkpoints = Vec::new();
            self.backend
                .list(scope, Record::Checkpoint, &mut |listed| {
                    checkpoints.push(listed.into_checkpoint(scope))
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

/// Accepts `YYYY-MM-DD` service versions from `oldest` on; dates compare as strings.
pub(crate) fn check_api_version(version: &str, oldest: &str) -> Result<()> {
    let shape_ok = version.len() == 10
        && version.char_indices().all(|(i, c)| match i {
            4 | 7 => c == '-',
            _ => c.is_ascii_digit(),
        });
    if !shape_ok {
        return Err(Error::invalid_input(format!(
            "api_version '{version}' is not a service version of the form YYYY-MM-DD"
        )));
    }
    if version < oldest {
        return Err(Error::invalid_input(format!(
            "api_version '{version}' is older than the oldest supported, {oldest}"
        )));
    }
    Ok(())
}

/// Implements [`CheckpointStore`](crate::CheckpointStore) and `Debug` for a public store type
/// whose `inner` field is an `Arc<Shell<_>>`, by delegating to the shell; with feature
/// `eventhubs`, also the official processor's trait.
macro_rules! checkpoint_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::CheckpointStore for $store {
            async fn list_ownership(
                &self,
                fully_qualified_namespace: &str,
                eventhub_name: &str,
                consumer_group: &str,
            ) -> $crate::Result<Vec<$crate::Ownership>> {
                self.inner
                    .list_ownership(fully_qualified_namespace, eventhub_name, consumer_group)
                    .await
                    .map(|(ownership, _)| ownership)
            }

            async fn list_ownership_with_service_time(
                &self,
                fully_qualified_namespace: &str,
                eventhub_name: &str,
                consumer_group: &str,
            ) -> $crate::Result<(Vec<$crate::Ownership>, Option<$crate::ServiceTime>)> {
                self.inner
                    .list_ownership(fully_qualified_namespace, eventhub_name, consumer_group)
                    .await
            }

            async fn claim_ownership(
                &self,
                ownership: &[$crate::Ownership],
            ) -> $crate::Result<Vec<$crate::Ownership>> {
                self.inner.claim_ownership(ownership).await
            }

            async fn update_checkpoint(
                &self,
                checkpoint: &$crate::Checkpoint,
            ) -> $crate::Result<()> {
                self.inner.update_checkpoint(checkpoint).await
            }

            async fn put_checkpoint(&self, checkpoint: &$crate::Checkpoint) -> $crate::Result<()> {
                self.inner.put_checkpoint(checkpoint).await
            }

            async fn list_checkpoints(
                &self,
                fully_qualified_namespace: &str,
                eventhub_name: &str,
                consumer_group: &str,
            ) -> $crate::Result<Vec<$crate::Checkpoint>> {
                self.inner
                    .list_checkpoints(fully_qualified_namespace, eventhub_name, consumer_group)
                    .await
            }
        }

        impl std::fmt::Debug for $store {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.inner.debug(stringify!($store), f)
            }
        }

        #[cfg(feature = "eventhubs")]
        processor_store!($store);
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions() {
        let oldest = "2015-02-21";
        for ok in ["2019-07-07", "2017-11-09", "2015-02-21", "2026-06-06"] {
            assert!(check_api_version(ok, oldest).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "2019-7-7",
            "2019/07/07",
            "latest",
            "2014-02-14",
            "２０１９-07-07",
        ] {
            assert!(check_api_version(bad, oldest).is_err(), "{bad}");
        }
    }
}
