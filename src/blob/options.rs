//! Options of [`BlobCheckpointStore`](super::BlobCheckpointStore).

use super::BlobNaming;
use azure_core::http::ClientOptions;
use std::{num::NonZeroUsize, time::Duration};

/// The service version sent by default: the one Python's store sends, so a mixed fleet behaves
/// the same.
pub const DEFAULT_API_VERSION: &str = "2019-07-07";

/// The oldest service version accepted. Older versions sign Shared Key requests differently and
/// are retired on Azure; Azure Stack Hub's `2017-11-09` is well above it.
pub const MIN_API_VERSION: &str = "2015-02-21";

/// How a [`BlobCheckpointStore`](super::BlobCheckpointStore) talks to the service.
///
/// ```
/// use eventhub_checkpointstore::BlobCheckpointStoreOptions;
/// use std::{num::NonZeroUsize, time::Duration};
///
/// let options = BlobCheckpointStoreOptions {
///     api_version: "2017-11-09".into(), // e.g. Azure Stack Hub
///     claim_concurrency: NonZeroUsize::new(8).unwrap(),
///     operation_timeout: Some(Duration::from_secs(10)),
///     ..Default::default()
/// };
/// ```
#[derive(Clone, Debug)]
pub struct BlobCheckpointStoreOptions {
    /// The `x-ms-version` sent with every request. Default [`DEFAULT_API_VERSION`]; any
    /// `YYYY-MM-DD` from [`MIN_API_VERSION`] on.
    pub api_version: String,
    /// How many claim requests of one `claim_ownership` call may be in flight at once.
    pub claim_concurrency: NonZeroUsize,
    /// The longest one operation may take, the pipeline's retries included; past it the
    /// operation fails with [`Error::Timeout`](crate::Error::Timeout), naming the last failure
    /// its requests met. Default [`DEFAULT_OPERATION_TIMEOUT`](crate::DEFAULT_OPERATION_TIMEOUT);
    /// `None` for no bound. Zero is rejected.
    pub operation_timeout: Option<Duration>,
    /// The `azure_core` pipeline options: retries, transport, extra policies, logging. Extra
    /// per-try policies run before the store's authorization policy.
    pub client_options: ClientOptions,
    /// The blob naming layout: [`BlobNaming::Lowercase`] (default; Python, .NET, JS, Java) or
    /// [`BlobNaming::Verbatim`] (Go, the official Rust store, Java's legacy mode). Names, listing
    /// prefixes and ownership follow it; ownership never crosses layouts.
    pub naming: BlobNaming,
    /// When `true`, `list_checkpoints` also returns, for each partition with no checkpoint in the
    /// store's own layout, the checkpoint the other layout holds (logged at `INFO`), so a fleet
    /// that switches layout resumes where it was. Writes always go to the own layout, so the first
    /// checkpoint after the switch supersedes the fallback. Costs one more listing per call until
    /// every partition the other layout holds has a checkpoint of its own, then none. Ownership
    /// never falls back. Default `false`.
    pub checkpoint_fallback: bool,
}

impl Default for BlobCheckpointStoreOptions {
    fn default() -> Self {
        Self {
            api_version: DEFAULT_API_VERSION.to_owned(),
            claim_concurrency: crate::DEFAULT_CLAIM_CONCURRENCY,
            operation_timeout: Some(crate::DEFAULT_OPERATION_TIMEOUT),
            client_options: ClientOptions::default(),
            naming: BlobNaming::default(),
            checkpoint_fallback: false,
        }
    }
}
