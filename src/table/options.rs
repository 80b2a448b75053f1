//! Options of [`TableCheckpointStore`](super::TableCheckpointStore).

use crate::options::ServiceOptions;

/// The Table service version sent by default: the newest one, which Azurite and Cosmos DB's Table
/// API accept too.
pub const DEFAULT_API_VERSION: &str = "2019-02-02";

/// The oldest Table service version accepted. Versions before it are retired on Azure; it is well
/// above `2013-08-15`, the first that speaks the JSON this store sends.
pub const MIN_API_VERSION: &str = "2015-02-21";

/// How a [`TableCheckpointStore`](super::TableCheckpointStore) talks to the service.
///
/// ```
/// use eventhub_checkpointstore::{ServiceOptions, TableCheckpointStoreOptions};
/// use std::num::NonZeroUsize;
///
/// let options = TableCheckpointStoreOptions {
///     service: ServiceOptions {
///         claim_concurrency: NonZeroUsize::new(8).unwrap(),
///         ..Default::default()
///     },
/// };
/// ```
#[derive(Clone, Debug, Default)]
pub struct TableCheckpointStoreOptions {
    /// The service version (default [`DEFAULT_API_VERSION`], any from [`MIN_API_VERSION`] on),
    /// claim concurrency, operation timeout and pipeline.
    pub service: ServiceOptions,
}
