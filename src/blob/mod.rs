//! The checkpoint store over Azure Blob Storage, [`BlobCheckpointStore`]: each ownership and
//! checkpoint is an empty block blob with metadata, named as the Python, .NET, Java and JS stores
//! name them (or as Go and the official Rust store do, [`BlobNaming::Verbatim`]), so a fleet in
//! several languages shares one container. Build it from a connection string, or from the
//! account URL and a credential (Entra ID, SAS, shared key: [`crate::StorageCredential`]);
//! [`BlobCheckpointStoreOptions`] sets the naming, the API version, timeouts and retries.
//!
//! ```
//! use eventhub_checkpointstore::{BlobCheckpointStore, CheckpointStore, Scope};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // `scripts/azurite.sh run` sets this to a fresh Azurite's connection string.
//! let connection = std::env::var("AZURE_STORAGE_CONNECTION_STRING")?;
//! let store = BlobCheckpointStore::from_connection_string(&connection, "checkpoints", None)?;
//! store.create_container_if_missing().await?;
//! let scope = Scope::new("myns.servicebus.windows.net", "telemetry", "$Default");
//! store
//!     .advance_checkpoint(&scope.checkpoint("0", Some("4096".into()), Some(42)))
//!     .await?;
//! // Blob "myns.servicebus.windows.net/telemetry/$default/checkpoint/0", metadata
//! // offset=4096 and sequencenumber=42.
//! println!("{:?}", store.list_checkpoints(&scope).await?);
//! # Ok(()) }
//! ```
//!
//! How the code is laid out is in `docs/architecture.md`.

mod backend;
mod client;
mod etag;
mod listing;
mod metadata;
mod naming;
mod options;

pub use naming::BlobNaming;
pub use options::{BlobCheckpointStoreOptions, DEFAULT_API_VERSION, MIN_API_VERSION};

use crate::client::account::Open;
use crate::client::connection_string::ConnectionString;
use crate::client::credential::StorageCredential;
use crate::client::Service;
use crate::error::{Error, Result};
use crate::model::{Advance, Checkpoint, Ownership};
use crate::scope::Scope;
use crate::shell::Shell;
use crate::store::{CheckpointStore, ServiceTime};
use async_trait::async_trait;
use azure_core::{http::Url, time::OffsetDateTime};
use azure_storage_blob::{BlobClient, BlobContainerClient};
use backend::BlobBackend;
use client::Container;
use std::{fmt, sync::Arc};

/// A [`CheckpointStore`] that keeps ownership and checkpoints as empty block blobs with metadata
/// in one container, readable and writable by the Python, .NET, Java and JS Event Hubs stores
/// (or, with [`BlobNaming::Verbatim`], by Go's and the official Rust store).
///
/// Cloning is cheap: clones share one connection pool.
///
/// ```
/// use eventhub_checkpointstore::{BlobCheckpointStore, CheckpointStore, Scope};
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = BlobCheckpointStore::from_connection_string(
///     &std::env::var("AZURE_STORAGE_CONNECTION_STRING")?,
///     "checkpoints",
///     None,
/// )?;
/// store.create_container_if_missing().await?;
/// let scope = Scope::new("myns.servicebus.windows.net", "telemetry", "$Default");
/// store.update_checkpoint(&scope.checkpoint("0", Some("1024".into()), Some(17))).await?;
/// for checkpoint in store.list_checkpoints(&scope).await? {
///     println!("{}: {:?}", checkpoint.partition_id, checkpoint.sequence_number);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct BlobCheckpointStore {
    inner: Arc<Shell<BlobBackend>>,
}

impl BlobCheckpointStore {
    /// A store over `container` of the account at `account_url` (e.g.
    /// `https://myaccount.blob.core.windows.net`, or Azurite's
    /// `http://127.0.0.1:10000/devstoreaccount1`).
    ///
    /// A SAS may be given as the credential or as the URL's query string. Nothing is sent until
    /// the first operation; invalid arguments fail here.
    ///
    /// ```
    /// use eventhub_checkpointstore::{BlobCheckpointStore, SharedKeyCredential};
    ///
    /// let key = SharedKeyCredential::new("myaccount", "a2V5")?;
    /// let store = BlobCheckpointStore::new("https://myaccount.blob.core.windows.net", "checkpoints", key, None)?;
    /// assert_eq!(store.container_url().as_str(), "https://myaccount.blob.core.windows.net/checkpoints");
    /// # Ok::<(), eventhub_checkpointstore::Error>(())
    /// ```
    pub fn new(
        account_url: &str,
        container: &str,
        credential: impl Into<StorageCredential>,
        options: Option<BlobCheckpointStoreOptions>,
    ) -> Result<Self> {
        let options = options.unwrap_or_default();
        let open = Open {
            service: Service::Blob,
            account_url,
            credential: credential.into(),
            api_version: options.service.api_version.clone(),
            default_version: DEFAULT_API_VERSION,
            oldest_version: MIN_API_VERSION,
            client_options: options.service.client_options.clone(),
        };
        let inner = Shell::over_account(open, &options.service, |account| {
            backend::check_container_name(container)?;
            let mut url = account.url;
            url.path_segments_mut()
                .map_err(|()| Error::invalid_input("account_url cannot have a path"))?
                .pop_if_empty()
                .push(container);
            Ok(BlobBackend::new(
                Container::new(url, account.client_options, &account.api_version)?,
                account.api_version,
                account.credential,
                options.naming,
                options.checkpoint_fallback,
            ))
        })?;
        Ok(Self { inner })
    }

    /// A store over `container` of the account a connection string names.
    ///
    /// ```
    /// use eventhub_checkpointstore::BlobCheckpointStore;
    ///
    /// let store = BlobCheckpointStore::from_connection_string("UseDevelopmentStorage=true", "checkpoints", None)?;
    /// assert_eq!(store.container_url().as_str(), "http://127.0.0.1:10000/devstoreaccount1/checkpoints");
    /// # Ok::<(), eventhub_checkpointstore::Error>(())
    /// ```
    pub fn from_connection_string(
        connection_string: &str,
        container: &str,
        options: Option<BlobCheckpointStoreOptions>,
    ) -> Result<Self> {
        let (endpoint, credential) =
            ConnectionString::parse(connection_string)?.for_service(Service::Blob)?;
        Self::new(endpoint.as_str(), container, credential, options)
    }

    /// The blob naming layout the store reads and writes.
    pub fn naming(&self) -> BlobNaming {
        self.inner.backend.naming
    }

    /// The URL of the store's container.
    pub fn container_url(&self) -> &Url {
        self.inner.backend.container.url()
    }

    /// The official container client, configured with this store's credential, transport, retry
    /// policy and service version: for what the store does not do (deleting the container,
    /// inspecting blobs).
    pub fn container_client(&self) -> &BlobContainerClient {
        self.inner.backend.container.client()
    }

    /// A client for one blob of the container, configured like
    /// [`container_client`](Self::container_client). Unlike
    /// [`BlobContainerClient::blob_client`](https://docs.rs/azure_storage_blob/1/azure_storage_blob/struct.BlobContainerClient.html#method.blob_client), `/` in `blob_name` stays a literal path separator,
    /// as the other Event Hubs stores send it.
    pub fn blob_client(&self, blob_name: &str) -> Result<BlobClient> {
        self.inner.backend.container.blob(blob_name)
    }

    /// Whether the container exists (one Get Container Properties request).
    pub async fn container_exists(&self) -> Result<bool> {
        self.inner
            .bounded("container_exists", self.inner.backend.container.exists())
            .await
    }

    /// Creates the container if it does not exist yet; `true` when it was created.
    pub async fn create_container_if_missing(&self) -> Result<bool> {
        self.inner
            .bounded(
                "create_container_if_missing",
                self.inner.backend.container.create_if_missing(),
            )
            .await
    }
}

#[async_trait]
impl CheckpointStore for BlobCheckpointStore {
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

impl fmt::Debug for BlobCheckpointStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.debug("BlobCheckpointStore", f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::credential::SasToken;
    use crate::options::ServiceOptions;
    use std::time::Duration;

    #[test]
    fn construction_validates_before_any_request() {
        let cases = [
            ("not a url", "checkpoints", "account_url is not a valid URL"),
            ("ftp://host", "checkpoints", "http or https"),
            (
                "https://a.blob.core.windows.net",
                "Checkpoints",
                "container name",
            ),
            ("https://a.blob.core.windows.net", "ab", "container name"),
            ("https://a.blob.core.windows.net", "a--b", "container name"),
            (
                "https://a.blob.core.windows.net?x=1",
                "checkpoints",
                "not a SAS",
            ),
        ];
        for (url, container, expected) in cases {
            let err = BlobCheckpointStore::new(url, container, StorageCredential::Anonymous, None)
                .unwrap_err();
            assert!(
                err.to_string().contains(expected),
                "{url} {container}: {err}"
            );
        }
        let with = |service: ServiceOptions| {
            BlobCheckpointStore::new(
                "https://a.blob.core.windows.net",
                "checkpoints",
                StorageCredential::Anonymous,
                Some(BlobCheckpointStoreOptions {
                    service,
                    ..Default::default()
                }),
            )
            .unwrap_err()
            .to_string()
        };
        let err = with(ServiceOptions {
            api_version: Some("2009-09-19".into()),
            ..Default::default()
        });
        assert!(err.contains("older than"), "{err}");
        let err = with(ServiceOptions {
            operation_timeout: Some(Duration::ZERO),
            ..Default::default()
        });
        assert!(err.contains("operation_timeout"), "{err}");
    }

    #[test]
    fn sas_in_url_becomes_the_credential_and_is_never_shown() {
        let store = BlobCheckpointStore::new(
            "https://a.blob.core.windows.net/?sv=2019-07-07&sig=c2VjcmV0",
            "checkpoints",
            StorageCredential::Anonymous,
            None,
        )
        .unwrap();
        assert_eq!(
            store.container_url().as_str(),
            "https://a.blob.core.windows.net/checkpoints"
        );
        let shown = format!("{store:?}");
        assert!(shown.contains("Sas"), "{shown}");
        assert!(!shown.contains("c2VjcmV0"), "{shown}");

        let err = BlobCheckpointStore::new(
            "https://a.blob.core.windows.net/?sv=1&sig=c2VjcmV0",
            "checkpoints",
            SasToken::new("sig=other").unwrap(),
            None,
        )
        .unwrap_err();
        assert!(!err.to_string().contains("c2VjcmV0"));
    }
}
