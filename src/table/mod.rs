//! The checkpoint store over Azure Table storage (feature `table`), [`TableCheckpointStore`]:
//! the same records as the blob store, one entity each, laid out as Python's
//! `azure-eventhub-checkpointstoretable` lays them out, so the two share a table. Build it from a
//! connection string or the account URL and a credential; [`TableCheckpointStoreOptions`] sets
//! the API version, timeouts and retries.
//!
//! ```
//! use eventhub_checkpointstore::{CheckpointStore, Scope, TableCheckpointStore};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // `scripts/azurite.sh run` sets this to a fresh Azurite's connection string (table too).
//! let connection = std::env::var("AZURE_STORAGE_CONNECTION_STRING")?;
//! let store = TableCheckpointStore::from_connection_string(&connection, "checkpoints", None)?;
//! store.create_table_if_missing().await?;
//! let scope = Scope::new("myns.servicebus.windows.net", "telemetry", "$Default");
//! let won = store.claim_ownership(&[scope.ownership("0", "consumer-1")]).await?;
//! println!("claimed {} partition(s)", won.len());
//! # Ok(()) }
//! ```
//!
//! How the code is laid out is in `docs/architecture.md`.

mod backend;
mod client;
mod entity;
mod keys;
mod options;

pub use options::{TableCheckpointStoreOptions, DEFAULT_API_VERSION, MIN_API_VERSION};

use crate::client::account::Open;
use crate::client::connection_string::ConnectionString;
use crate::client::credential::StorageCredential;
use crate::client::Service;
use crate::error::Result;
use crate::model::{Advance, Checkpoint, Ownership};
use crate::scope::Scope;
use crate::shell::Shell;
use crate::store::{CheckpointStore, ServiceTime};
use async_trait::async_trait;
use azure_core::{http::Url, time::OffsetDateTime};
use backend::TableBackend;
use client::Table;
use std::{fmt, sync::Arc};

/// A [`CheckpointStore`] that keeps ownership and checkpoints as entities of one table, laid out
/// as Python's `azure-eventhub-checkpointstoretable` lays them out:
///
/// | record | PartitionKey | RowKey | properties |
/// |---|---|---|---|
/// | ownership | `"{namespace} {eventhub} {consumer_group} Ownership"` | partition id | `ownerid` |
/// | checkpoint | `"{namespace} {eventhub} {consumer_group} Checkpoint"` | partition id | `offset`, `sequencenumber` |
///
/// Property values are strings. A record's `etag` is the entity's ETag and its `last_modified`
/// the entity's `Timestamp`. Keys are case-sensitive and may not contain `/`, `\`, `#`, `?`,
/// control characters or (in the scope, which is joined with spaces) a space: such input fails
/// with [`Error::InvalidInput`](crate::Error::InvalidInput) before any request.
///
/// Requests: a listing is one query per 1,000 records; a claim is one request (Insert Entity for
/// a new partition, Update Entity with `If-Match` otherwise); a checkpoint update is always one
/// (Insert Or Replace Entity). Cloning is cheap: clones share one connection pool.
///
/// ```
/// use eventhub_checkpointstore::{CheckpointStore, Scope, TableCheckpointStore};
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = TableCheckpointStore::from_connection_string(&std::env::var("AZURE_STORAGE_CONNECTION_STRING")?, "checkpoints", None)?;
/// store.create_table_if_missing().await?;
/// let scope = Scope::new("myns.servicebus.windows.net", "telemetry", "$Default");
/// store.update_checkpoint(&scope.checkpoint("0", Some("1024".into()), Some(17))).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TableCheckpointStore {
    inner: Arc<Shell<TableBackend>>,
}

impl TableCheckpointStore {
    /// A store over `table` of the account at `account_url` (e.g.
    /// `https://myaccount.table.core.windows.net`, or Azurite's
    /// `http://127.0.0.1:10002/devstoreaccount1`).
    ///
    /// A SAS may be given as the credential or as the URL's query string. Nothing is sent until
    /// the first operation; invalid arguments fail here.
    ///
    /// ```
    /// use eventhub_checkpointstore::{SharedKeyCredential, TableCheckpointStore};
    ///
    /// let key = SharedKeyCredential::new("myaccount", "a2V5")?;
    /// let store = TableCheckpointStore::new("https://myaccount.table.core.windows.net", "checkpoints", key, None)?;
    /// assert_eq!(store.table_url().as_str(), "https://myaccount.table.core.windows.net/checkpoints");
    /// # Ok::<(), eventhub_checkpointstore::Error>(())
    /// ```
    pub fn new(
        account_url: &str,
        table: &str,
        credential: impl Into<StorageCredential>,
        options: Option<TableCheckpointStoreOptions>,
    ) -> Result<Self> {
        let options = options.unwrap_or_default();
        let open = Open {
            service: Service::Table,
            account_url,
            credential: credential.into(),
            api_version: options.service.api_version.clone(),
            default_version: DEFAULT_API_VERSION,
            oldest_version: MIN_API_VERSION,
            client_options: options.service.client_options.clone(),
        };
        let inner = Shell::over_account(open, &options.service, |account| {
            backend::check_table_name(table)?;
            Ok(TableBackend::new(
                Table::new(
                    account.url,
                    table.to_owned(),
                    account.client_options,
                    &account.api_version,
                ),
                account.credential,
            ))
        })?;
        Ok(Self { inner })
    }

    /// A store over `table` of the account a connection string names (its `TableEndpoint`, the
    /// endpoint derived from `AccountName`, or Azurite's port 10002 for
    /// `UseDevelopmentStorage=true`).
    ///
    /// ```
    /// use eventhub_checkpointstore::TableCheckpointStore;
    ///
    /// let store = TableCheckpointStore::from_connection_string("UseDevelopmentStorage=true", "checkpoints", None)?;
    /// assert_eq!(store.table_url().as_str(), "http://127.0.0.1:10002/devstoreaccount1/checkpoints");
    /// # Ok::<(), eventhub_checkpointstore::Error>(())
    /// ```
    pub fn from_connection_string(
        connection_string: &str,
        table: &str,
        options: Option<TableCheckpointStoreOptions>,
    ) -> Result<Self> {
        let (endpoint, credential) =
            ConnectionString::parse(connection_string)?.for_service(Service::Table)?;
        Self::new(endpoint.as_str(), table, credential, options)
    }

    /// The URL of the store's table.
    pub fn table_url(&self) -> &Url {
        self.inner.backend.table.url()
    }

    /// Whether the table exists (one Query Tables request).
    pub async fn table_exists(&self) -> Result<bool> {
        self.inner
            .bounded("table_exists", self.inner.backend.table.exists())
            .await
    }

    /// Creates the table if it does not exist yet; `true` when it was created.
    pub async fn create_table_if_missing(&self) -> Result<bool> {
        self.inner
            .bounded(
                "create_table_if_missing",
                self.inner.backend.table.create_if_missing(),
            )
            .await
    }
}

#[async_trait]
impl CheckpointStore for TableCheckpointStore {
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

impl fmt::Debug for TableCheckpointStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.debug("TableCheckpointStore", f)
    }
}
