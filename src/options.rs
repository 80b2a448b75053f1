//! The options every service-backed store takes, declared once: how many claims go out at once,
//! how long an operation may take, and the `azure_core` pipeline.
//!
//! Options in this crate are plain structs: public fields, [`Default`], and struct update syntax
//! for the fields you set (`..Default::default()`), as the Azure SDK's own options are.

use azure_core::http::ClientOptions;
use std::{num::NonZeroUsize, time::Duration};

/// The default bound on concurrent claim requests of one `claim_ownership` call.
pub const DEFAULT_CLAIM_CONCURRENCY: NonZeroUsize = match NonZeroUsize::new(32) {
    Some(n) => n,
    None => unreachable!(),
};

/// The default bound on one store operation, retries included.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(60);

/// How a store talks to its storage service: the part of
/// [`BlobCheckpointStoreOptions`](crate::BlobCheckpointStoreOptions) and
/// `TableCheckpointStoreOptions` that is the same for both.
///
/// ```
/// use eventhub_checkpointstore::{BlobCheckpointStoreOptions, ServiceOptions};
/// use std::{num::NonZeroUsize, time::Duration};
///
/// let options = BlobCheckpointStoreOptions {
///     service: ServiceOptions {
///         api_version: Some("2017-11-09".into()), // e.g. Azure Stack Hub
///         claim_concurrency: NonZeroUsize::new(8).unwrap(),
///         operation_timeout: Some(Duration::from_secs(10)),
///         ..Default::default()
///     },
///     ..Default::default()
/// };
/// ```
#[derive(Clone, Debug)]
pub struct ServiceOptions {
    /// The `x-ms-version` sent with every request: any `YYYY-MM-DD` from the store's oldest
    /// supported version on. `None` (the default) sends the store's default version
    /// ([`blob::DEFAULT_API_VERSION`](crate::blob::DEFAULT_API_VERSION), or the table store's).
    pub api_version: Option<String>,
    /// How many claim requests of one `claim_ownership` call may be in flight at once. Default
    /// [`DEFAULT_CLAIM_CONCURRENCY`] (32: every claim of a Standard hub in one round trip).
    pub claim_concurrency: NonZeroUsize,
    /// The longest one operation may take, the pipeline's retries included; past it the
    /// operation fails with [`Error::Timeout`](crate::Error::Timeout), naming the last failure
    /// its requests met. Default [`DEFAULT_OPERATION_TIMEOUT`]; `None` for no bound. Zero is
    /// rejected.
    pub operation_timeout: Option<Duration>,
    /// The `azure_core` pipeline options: retries, transport, extra policies, logging. Extra
    /// per-try policies run before the store's authorization policy.
    pub client_options: ClientOptions,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        Self {
            api_version: None,
            claim_concurrency: DEFAULT_CLAIM_CONCURRENCY,
            operation_timeout: Some(DEFAULT_OPERATION_TIMEOUT),
            client_options: ClientOptions::default(),
        }
    }
}
