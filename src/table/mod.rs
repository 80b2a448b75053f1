//! The checkpoint store over Azure Table storage (feature `table`): the table backend behind the
//! store shell (`crate::shell`), and the public `TableCheckpointStore` around it.

mod client;
mod entity;
mod keys;

use crate::account::{Account, Service};
use crate::connection_string::ConnectionString;
use crate::credential::StorageCredential;
use crate::error::{Error, Result};
use crate::model::{Checkpoint, Ownership};
use crate::record::{Listed, Record, Scope};
use crate::shell::{Backend, OnRecord, Shell, Version};
use crate::store::ServiceTime;
use async_trait::async_trait;
use azure_core::http::{ClientOptions, Etag, Url};
use client::Table;
use serde_json::Value;
use std::{fmt, num::NonZeroUsize, sync::Arc, time::Duration};

/// The Table service version sent by default: the newest one, which Azurite and Cosmos DB's Table
/// API accept too.
pub const DEFAULT_TABLE_API_VERSION: &str = "2019-02-02";

/// How a [`TableCheckpointStore`] talks to the service.
///
/// ```
/// use eventhub_checkpointstore::TableCheckpointStoreOptions;
/// use std::num::NonZeroUsize;
///
/// let options = TableCheckpointStoreOptions {
///     claim_concurrency: NonZeroUsize::new(8).unwrap(),
///     ..Default::default()
/// };
/// ```
#[derive(Clone, Debug)]
pub struct TableCheckpointStoreOptions {
    /// The `x-ms-version` sent with every request. Default [`DEFAULT_TABLE_API_VERSION`].
    pub api_version: String,
    /// How many claim requests of one `claim_ownership` call may be in flight at once.
    pub claim_concurrency: NonZeroUsize,
    /// The longest one operation may take, the pipeline's retries included; past it the
    /// operation fails with [`Error::Timeout`]. Default
    /// [`DEFAULT_OPERATION_TIMEOUT`](crate::DEFAULT_OPERATION_TIMEOUT); `None` for no bound.
    pub operation_timeout: Option<Duration>,
    /// The `azure_core` pipeline options: retries, transport, extra policies, logging.
    pub client_options: ClientOptions,
}

impl Default for TableCheckpointStoreOptions {
    fn default() -> Self {
        Self {
            api_version: DEFAULT_TABLE_API_VERSION.to_owned(),
            claim_concurrency: crate::DEFAULT_CLAIM_CONCURRENCY,
            operation_timeout: Some(crate::DEFAULT_OPERATION_TIMEOUT),
            client_options: ClientOptions::default(),
        }
    }
}

/// A [`CheckpointStore`](crate::CheckpointStore) that keeps ownership and checkpoints as entities
/// of one table, laid out as Python's `azure-eventhub-checkpointstoretable` lays them out:
///
/// | record | PartitionKey | RowKey | properties |
/// |---|---|---|---|
/// | ownership | `"{namespace} {eventhub} {consumer_group} Ownership"` | partition id | `ownerid` |
/// | checkpoint | `"{namespace} {eventhub} {consumer_group} Checkpoint"` | partition id | `offset`, `sequencenumber` |
///
/// Property values are strings. A record's `etag` is the entity's ETag and its `last_modified`
/// the entity's `Timestamp`. Keys are case-sensitive and may not contain `/`, `\`, `#`, `?`,
/// control characters or (in the scope, which is joined with spaces) a space: such input fails
/// with [`Error::InvalidInput`] before any request.
///
/// Requests: a listing is one query per 1,000 records; a claim is one request (Insert Entity for
/// a new partition, Update Entity with `If-Match` otherwise); a checkpoint update is always one
/// (Insert Or Replace Entity). Cloning is cheap: clones share one connection pool.
///
/// ```no_run
/// use eventhub_checkpointstore::{Checkpoint, CheckpointStore, TableCheckpointStore};
///
/// # async fn demo() -> eventhub_checkpointstore::Result<()> {
/// let store = TableCheckpointStore::from_connection_string("UseDevelopmentStorage=true", "checkpoints", None)?;
/// store.create_table_if_missing().await?;
/// let ns = "myns.servicebus.windows.net";
/// store
///     .update_checkpoint(&Checkpoint::new(ns, "telemetry", "$Default", "0", Some("1024".into()), Some(17)))
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TableCheckpointStore {
    inner: Arc<Shell<TableBackend>>,
}

checkpoint_store!(TableCheckpointStore);

/// Entities of one table.
struct TableBackend {
    table: Table,
    credential: StorageCredential,
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
        let account = Account::new(
            account_url,
            credential.into(),
            Service::Table,
            (&options.api_version, crate::MIN_API_VERSION),
            options.client_options,
        )?;
        check_table_name(table)?;
        let backend = TableBackend {
            table: Table::new(
                account.url,
                table.to_owned(),
                account.client_options,
                options.api_version,
            ),
            credential: account.credential,
        };
        let inner = Shell::new(
            backend,
            options.claim_concurrency,
            options.operation_timeout,
        )?;
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

/// One claim, checked and ready to send.
struct Claim {
    partition_key: String,
    row_key: String,
    body: Value,
    etag: Option<Etag>,
}

#[async_trait]
impl Backend for TableBackend {
    type Claim = Claim;

    fn describe(&self, f: &mut fmt::DebugStruct<'_, '_>) {
        f.field("table_url", &self.table.url().as_str())
            .field("credential", &self.credential);
    }

    fn prepare_claim(&self, requested: &Ownership) -> Result<Claim> {
        let partition_key = keys::partition_key(
            &requested.fully_qualified_namespace,
            &requested.eventhub_name,
            &requested.consumer_group,
            Record::Ownership,
        )?;
        let row_key = keys::row_key(&requested.partition_id)?.to_owned();
        let etag = requested
            .etag
            .as_ref()
            .map(entity::for_condition)
            .transpose()?;
        Ok(Claim {
            body: entity::ownership_body(&partition_key, &row_key, requested.owner_id.as_deref()),
            partition_key,
            row_key,
            etag,
        })
    }

    async fn claim(&self, claim: Claim) -> Result<Version> {
        match &claim.etag {
            Some(etag) => {
                self.table
                    .replace(
                        &claim.partition_key,
                        &claim.row_key,
                        &claim.body,
                        Some(etag),
                    )
                    .await
            }
            None => self.table.insert(&claim.body).await,
        }
    }

    fn lost_race(&self, err: &Error, conditional: bool) -> bool {
        lost_race(err, conditional)
    }

    async fn update_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()> {
        let partition_key = keys::partition_key(
            &checkpoint.fully_qualified_namespace,
            &checkpoint.eventhub_name,
            &checkpoint.consumer_group,
            Record::Checkpoint,
        )?;
        let row_key = keys::row_key(&checkpoint.partition_id)?;
        let body = entity::checkpoint_body(&partition_key, row_key, checkpoint)?;
        // Insert Or Replace: one request whether or not the partition has a checkpoint yet;
        // checkpoints are last-writer-wins.
        self.table
            .replace(&partition_key, row_key, &body, None)
            .await
            .map(drop)
    }

    async fn list(
        &self,
        scope: Scope<'_>,
        record: Record,
        on_record: &mut OnRecord<'_>,
    ) -> Result<Option<ServiceTime>> {
        let partition_key = keys::partition_key(
            scope.namespace,
            scope.eventhub,
            scope.consumer_group,
            record,
        )?;
        self.table
            .query(&partition_key, |entity| {
                on_record(Listed {
                    partition_id: entity.row_key.clone(),
                    etag: entity.etag(),
                    last_modified: entity.timestamp(),
                    fields: &entity,
                    source: &entity.row_key,
                })
            })
            .await
    }
}

/// Whether a failed claim lost a race rather than failed: only the answers that mean "someone
/// else wrote the entity first". With an etag: 412 `UpdateConditionNotSatisfied` (the entity
/// changed) or 404 `ResourceNotFound` (it was deleted; a missing table is `TableNotFound`, a real
/// failure). Without one: 409 `EntityAlreadyExists`. Any other 412 or 409 is a failure.
fn lost_race(err: &Error, had_etag: bool) -> bool {
    matches!(
        (err.status(), err.error_code(), had_etag),
        (Some(412), Some("UpdateConditionNotSatisfied"), true)
            | (Some(404), Some("ResourceNotFound"), true)
            | (Some(409), Some("EntityAlreadyExists"), false)
    )
}

/// Azure's table naming rules: 3-63 letters and digits, starting with a letter, not `tables`.
fn check_table_name(name: &str) -> Result<()> {
    let valid = (3..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.bytes().all(|b| b.is_ascii_alphanumeric())
        && !name.eq_ignore_ascii_case("tables");
    if valid {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "table name '{name}' is invalid: 3-63 letters and digits, starting with a letter (and not \"tables\")"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_lost_races() {
        let service = |status, code: &str| Error::Service {
            status,
            error_code: Some(code.to_owned()),
            message: String::new(),
        };
        assert!(lost_race(
            &service(412, "UpdateConditionNotSatisfied"),
            true
        ));
        assert!(lost_race(&service(404, "ResourceNotFound"), true));
        assert!(lost_race(&service(409, "EntityAlreadyExists"), false));
        assert!(!lost_race(&service(404, "TableNotFound"), true));
        assert!(!lost_race(
            &service(412, "UpdateConditionNotSatisfied"),
            false
        ));
        assert!(!lost_race(&service(409, "EntityAlreadyExists"), true));
        assert!(!lost_race(&service(412, "ConditionNotMet"), true));
        assert!(!lost_race(&service(400, "InvalidInput"), true));
        assert!(!lost_race(&service(403, "AuthorizationFailure"), true));
    }

    #[test]
    fn table_names() {
        for ok in ["abc", "Checkpoints", "a1b2c3", &"a".repeat(63)] {
            assert!(check_table_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "1abc",
            "a-b",
            "tables",
            "TABLES",
            "ab c",
            &"a".repeat(64),
        ] {
            assert!(check_table_name(bad).is_err(), "{bad}");
        }
    }
}
