//! Options of [`BlobCheckpointStore`](super::BlobCheckpointStore).

use super::BlobNaming;
use crate::options::ServiceOptions;

/// The service version sent by default: the one Python's store sends, so a mixed fleet behaves
/// the same.
pub const DEFAULT_API_VERSION: &str = "2019-07-07";

/// The oldest service version accepted. Older versions sign Shared Key requests differently and
/// are retired on Azure; Azure Stack Hub's `2017-11-09` is well above it.
pub const MIN_API_VERSION: &str = "2015-02-21";

/// How a [`BlobCheckpointStore`](super::BlobCheckpointStore) talks to the service and names its
/// blobs.
///
/// ```
/// use eventhub_checkpointstore::{BlobCheckpointStoreOptions, BlobNaming, ServiceOptions};
/// use std::time::Duration;
///
/// let options = BlobCheckpointStoreOptions {
///     naming: BlobNaming::Verbatim, // share a container with Go or the official Rust store
///     service: ServiceOptions {
///         operation_timeout: Some(Duration::from_secs(10)),
///         ..Default::default()
///     },
///     ..Default::default()
/// };
/// ```
#[derive(Clone, Debug, Default)]
pub struct BlobCheckpointStoreOptions {
    /// The service version (default [`DEFAULT_API_VERSION`], any from [`MIN_API_VERSION`] on),
    /// claim concurrency, operation timeout and pipeline.
    pub service: ServiceOptions,
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
