//! The checkpoint store over Azure Blob Storage.

mod container;
mod etag;
mod listing;
mod metadata;
mod naming;
mod options;

pub use naming::BlobNaming;
#[cfg(feature = "table")]
pub(crate) use options::check_api_version;
pub use options::{
    BlobCheckpointStoreOptions, DEFAULT_API_VERSION, DEFAULT_CLAIM_CONCURRENCY, MIN_API_VERSION,
};

use crate::claim::{claim_all, ClaimOutcome};
use crate::connection_string::{ConnectionString, Service};
use crate::credential::StorageCredential;
use crate::error::{Error, Result};
use crate::model::{Checkpoint, Ownership};
use crate::store::CheckpointStore;
use crate::timeout::{bounded, OperationTimeout};
use async_trait::async_trait;
use azure_core::http::Url;
use azure_storage_blob::{BlobClient, BlobContainerClient};
use container::Container;
use listing::ListedBlob;
use naming::Record;
use std::{
    collections::HashSet,
    fmt,
    sync::{Arc, Mutex},
};

/// A [`CheckpointStore`] that keeps ownership and checkpoints as empty block blobs with metadata in
/// one container, readable and writable by the Python, .NET, Java and JS Event Hubs stores.
///
/// Cloning is cheap: clones share one connection pool.
///
/// ```no_run
/// use eventhub_checkpointstore::{BlobCheckpointStore, Checkpoint, CheckpointStore};
///
/// # async fn demo() -> eventhub_checkpointstore::Result<()> {
/// let store = BlobCheckpointStore::from_connection_string(
///     &std::env::var("AZURE_STORAGE_CONNECTION_STRING").unwrap(),
///     "checkpoints",
///     None,
/// )?;
/// store.create_container_if_missing().await?;
/// let ns = "myns.servicebus.windows.net";
/// store
///     .update_checkpoint(&Checkpoint::new(ns, "telemetry", "$Default", "0", Some("1024".into()), Some(17)))
///     .await?;
/// for checkpoint in store.list_checkpoints(ns, "telemetry", "$Default").await? {
///     println!("{}: {:?}", checkpoint.partition_id, checkpoint.sequence_number);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct BlobCheckpointStore {
    inner: Arc<Inner>,
}

struct Inner {
    container: Container,
    claim_concurrency: usize,
    timeout: OperationTimeout,
    api_version: String,
    credential: StorageCredential,
    naming: BlobNaming,
    checkpoint_fallback: bool,
    /// Listing prefixes of the other layout whose checkpoints were all superseded by checkpoints
    /// of the store's own layout when last read: the fallback listing is not repeated for them.
    superseded: Mutex<HashSet<String>>,
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
        let (mut url, credential) = crate::account::parse_url(account_url, credential.into())?;
        check_container_name(container)?;
        url.path_segments_mut()
            .map_err(|()| Error::invalid_input("account_url cannot have a path"))?
            .pop_if_empty()
            .push(container);

        let options = options.unwrap_or_default();
        options::check_api_version(&options.api_version)?;
        let timeout = OperationTimeout::new(options.operation_timeout)?;
        let client_options = crate::account::client_options(
            options.client_options,
            &credential,
            &url,
            Service::Blob,
        )?;
        let container = Container::new(url, client_options, options.api_version.clone())?;
        Ok(Self {
            inner: Arc::new(Inner {
                container,
                claim_concurrency: options.claim_concurrency.get(),
                timeout,
                api_version: options.api_version,
                credential,
                naming: options.naming,
                checkpoint_fallback: options.checkpoint_fallback,
                superseded: Mutex::new(HashSet::new()),
            }),
        })
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
        self.inner.naming
    }

    /// The URL of the store's container.
    pub fn container_url(&self) -> &Url {
        self.inner.container.url()
    }

    /// The official container client, configured with this store's credential, transport, retry
    /// policy and service version: for what the store does not do (deleting the container,
    /// inspecting blobs).
    pub fn container_client(&self) -> &BlobContainerClient {
        self.inner.container.client()
    }

    /// A client for one blob of the container, configured like
    /// [`container_client`](Self::container_client). Unlike
    /// [`BlobContainerClient::blob_client`], `/` in `blob_name` stays a literal path separator,
    /// as the other Event Hubs stores send it.
    pub fn blob_client(&self, blob_name: &str) -> Result<BlobClient> {
        self.inner.container.blob(blob_name)
    }

    /// Creates the container if it does not exist yet; `true` when it was created.
    pub async fn create_container_if_missing(&self) -> Result<bool> {
        bounded(
            self.inner.timeout,
            "create_container_if_missing",
            self.inner.container.create_if_missing(),
        )
        .await
    }

    async fn claim_one(&self, requested: &Ownership, claim: Claim) -> ClaimOutcome {
        let container = &self.inner.container;
        let result = match claim.etag {
            Some(etag) => {
                container
                    .set_metadata(&claim.name, &claim.metadata, Some(etag))
                    .await
            }
            None => container.put_empty(&claim.name, claim.metadata, true).await,
        };
        ClaimOutcome::of_write(
            requested,
            result.map(|w| (w.etag, w.last_modified)),
            |err| lost_race(err, requested.etag.is_some()),
        )
    }

    /// The records under `prefix`: blobs named `{prefix}{partition}`, directory markers and
    /// nested names left out, each made into a `T` by `make` as its page arrives.
    async fn records<T>(
        &self,
        prefix: &str,
        mut make: impl FnMut(String, ListedBlob) -> T,
    ) -> Result<Vec<T>> {
        self.inner
            .container
            .list(prefix, |blob| {
                let partition = naming::partition_of(prefix, &blob.name)?.to_owned();
                (!blob.is_directory()).then(|| make(partition, blob))
            })
            .await
    }
}

/// One claim, checked and ready to send.
struct Claim {
    name: String,
    metadata: std::collections::HashMap<String, String>,
    etag: Option<azure_core::http::Etag>,
}

impl Claim {
    fn prepare(requested: &Ownership, naming: BlobNaming) -> Result<Self> {
        Ok(Self {
            name: naming::blob_name(
                naming,
                &requested.fully_qualified_namespace,
                &requested.eventhub_name,
                &requested.consumer_group,
                Record::Ownership,
                &requested.partition_id,
            )?,
            metadata: metadata::for_ownership(requested.owner_id.as_deref())?,
            etag: requested
                .etag
                .as_ref()
                .map(etag::for_condition)
                .transpose()?,
        })
    }
}

/// Whether a failed claim lost a race rather than failed: only the answers that mean "someone
/// else wrote the record first". With an etag: 412 `ConditionNotMet` (the blob changed) or 404
/// `BlobNotFound` (it was deleted; a missing container is a real failure). Without one: 409
/// `BlobAlreadyExists` or 412 `ConditionNotMet`. Any other 412 or 409 (`LeaseIdMissing` when a
/// lease is held on the blob, `LeaseIdMismatchWithBlobOperation`, …) is a failure: nobody won
/// that record, and retrying will not help until whoever holds the lease lets go.
fn lost_race(err: &Error, had_etag: bool) -> bool {
    matches!(
        (err.status(), err.error_code(), had_etag),
        (Some(412), Some("ConditionNotMet"), _)
            | (Some(404), Some("BlobNotFound"), true)
            | (Some(409), Some("BlobAlreadyExists"), false)
    )
}

/// Azure's container naming rules, checked here so a typo fails before any request.
fn check_container_name(name: &str) -> Result<()> {
    let valid = (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    if valid {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "container name '{name}' is invalid: 3-63 lower-case letters, digits and single hyphens, starting and ending with a letter or digit"
        )))
    }
}

#[async_trait]
impl CheckpointStore for BlobCheckpointStore {
    #[tracing::instrument(level = "debug", skip(self), err)]
    async fn list_ownership(
        &self,
        fully_qualified_namespace: &str,
        eventhub_name: &str,
        consumer_group: &str,
    ) -> Result<Vec<Ownership>> {
        bounded(self.inner.timeout, "list_ownership", async move {
            let prefix = naming::prefix(
                self.inner.naming,
                fully_qualified_namespace,
                eventhub_name,
                consumer_group,
                Record::Ownership,
            )?;
            let ownership = self
                .records(&prefix, |partition_id, blob| Ownership {
                    fully_qualified_namespace: fully_qualified_namespace.to_owned(),
                    eventhub_name: eventhub_name.to_owned(),
                    consumer_group: consumer_group.to_owned(),
                    partition_id,
                    owner_id: metadata::owner_id(&blob.metadata),
                    etag: blob.etag,
                    last_modified: blob.last_modified,
                })
                .await?;
            tracing::debug!(count = ownership.len(), "listed ownership");
            Ok(ownership)
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(count = ownership.len()), err)]
    async fn claim_ownership(&self, ownership: &[Ownership]) -> Result<Vec<Ownership>> {
        bounded(self.inner.timeout, "claim_ownership", async move {
            claim_all(
                ownership,
                self.inner.claim_concurrency,
                |requested| Claim::prepare(requested, self.inner.naming),
                |requested, claim| self.claim_one(requested, claim),
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
    async fn update_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()> {
        bounded(self.inner.timeout, "update_checkpoint", async move {
            let name = naming::blob_name(
                self.inner.naming,
                &checkpoint.fully_qualified_namespace,
                &checkpoint.eventhub_name,
                &checkpoint.consumer_group,
                Record::Checkpoint,
                &checkpoint.partition_id,
            )?;
            let metadata = metadata::for_checkpoint(checkpoint)?;
            match self
                .inner
                .container
                .set_metadata(&name, &metadata, None)
                .await
            {
                Ok(_) => Ok(()),
                Err(err) if err.error_code() == Some("BlobNotFound") => {
                    // First checkpoint of this partition: create the blob. Overwriting is right if a
                    // concurrent writer created it meanwhile: checkpoints are last-writer-wins.
                    self.inner
                        .container
                        .put_empty(&name, metadata, false)
                        .await?;
                    Ok(())
                }
                Err(err) => Err(err),
            }
        })
        .await
    }

    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(partition_id = %checkpoint.partition_id, sequence_number = ?checkpoint.sequence_number),
        err
    )]
    async fn put_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()> {
        bounded(self.inner.timeout, "put_checkpoint", async move {
            let name = naming::blob_name(
                self.inner.naming,
                &checkpoint.fully_qualified_namespace,
                &checkpoint.eventhub_name,
                &checkpoint.consumer_group,
                Record::Checkpoint,
                &checkpoint.partition_id,
            )?;
            let metadata = metadata::for_checkpoint(checkpoint)?;
            // Put Blob replaces the blob whole, metadata included: last writer wins, as for updates.
            self.inner
                .container
                .put_empty(&name, metadata, false)
                .await
                .map(drop)
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self), err)]
    async fn list_checkpoints(
        &self,
        fully_qualified_namespace: &str,
        eventhub_name: &str,
        consumer_group: &str,
    ) -> Result<Vec<Checkpoint>> {
        bounded(self.inner.timeout, "list_checkpoints", async move {
            let scope = (fully_qualified_namespace, eventhub_name, consumer_group);
            let naming = self.inner.naming;
            let mut checkpoints = self.checkpoints_in(naming, scope).await?;
            if self.inner.checkpoint_fallback {
                self.add_fallback_checkpoints(scope, &mut checkpoints)
                    .await?;
            }
            tracing::debug!(count = checkpoints.len(), "listed checkpoints");
            Ok(checkpoints)
        })
        .await
    }
}

impl BlobCheckpointStore {
    /// Every checkpoint of a consumer group in one layout.
    async fn checkpoints_in(
        &self,
        naming: BlobNaming,
        (namespace, eventhub, consumer_group): (&str, &str, &str),
    ) -> Result<Vec<Checkpoint>> {
        let prefix = naming::prefix(
            naming,
            namespace,
            eventhub,
            consumer_group,
            Record::Checkpoint,
        )?;
        self.records(&prefix, |partition_id, blob| {
            let sequence_number = metadata::sequence_number(&blob.metadata).unwrap_or_else(|bad| {
                tracing::warn!(
                    blob = %blob.name,
                    value = %bad,
                    "checkpoint has a sequencenumber that is not an i64; reporting none"
                );
                None
            });
            Checkpoint::new(
                namespace,
                eventhub,
                consumer_group,
                partition_id,
                metadata::offset(&blob.metadata),
                sequence_number,
            )
        })
        .await
    }

    /// `checkpoint_fallback`: adds, for each partition without a checkpoint of the store's own
    /// layout, the one the other layout holds. One listing at most; none once every partition
    /// the other layout holds has a checkpoint of its own (remembered per consumer group).
    async fn add_fallback_checkpoints(
        &self,
        scope: (&str, &str, &str),
        checkpoints: &mut Vec<Checkpoint>,
    ) -> Result<()> {
        let (naming, other) = (self.inner.naming, self.inner.naming.other());
        let other_prefix = naming::prefix(other, scope.0, scope.1, scope.2, Record::Checkpoint)?;
        let own_prefix = naming::prefix(naming, scope.0, scope.1, scope.2, Record::Checkpoint)?;
        // Names that are lower-case already are the same blobs in both layouts.
        if other_prefix == own_prefix || self.superseded().contains(&other_prefix) {
            return Ok(());
        }
        let mut have: HashSet<String> =
            checkpoints.iter().map(|c| c.partition_id.clone()).collect();
        let mut fallback = Vec::new();
        for mut checkpoint in self.checkpoints_in(other, scope).await? {
            checkpoint.partition_id = naming.partition_id(&checkpoint.partition_id);
            if have.insert(checkpoint.partition_id.clone()) {
                fallback.push(checkpoint);
            }
        }
        if fallback.is_empty() {
            self.superseded().insert(other_prefix);
            return Ok(());
        }
        tracing::info!(
            own_layout = ?naming,
            own = ?checkpoints.iter().map(|c| c.partition_id.as_str()).collect::<Vec<_>>(),
            fallback_layout = ?other,
            fallback = ?fallback.iter().map(|c| c.partition_id.as_str()).collect::<Vec<_>>(),
            "partitions without a checkpoint of their own use the other layout's"
        );
        checkpoints.append(&mut fallback);
        Ok(())
    }

    fn superseded(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // A panic elsewhere while holding it leaves a set of strings, still usable.
        self.inner
            .superseded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl fmt::Debug for BlobCheckpointStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobCheckpointStore")
            .field("container_url", &self.inner.container.url().as_str())
            .field("credential", &self.inner.credential)
            .field("api_version", &self.inner.api_version)
            .field("claim_concurrency", &self.inner.claim_concurrency)
            .field("operation_timeout", &self.inner.timeout)
            .field("naming", &self.inner.naming)
            .field("checkpoint_fallback", &self.inner.checkpoint_fallback)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::SasToken;
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
        let err = BlobCheckpointStore::new(
            "https://a.blob.core.windows.net",
            "checkpoints",
            StorageCredential::Anonymous,
            Some(BlobCheckpointStoreOptions {
                api_version: "2009-09-19".into(),
                ..Default::default()
            }),
        )
        .unwrap_err();
        assert!(err.to_string().contains("older than"), "{err}");
        let err = BlobCheckpointStore::new(
            "https://a.blob.core.windows.net",
            "checkpoints",
            StorageCredential::Anonymous,
            Some(BlobCheckpointStoreOptions {
                operation_timeout: Some(Duration::ZERO),
                ..Default::default()
            }),
        )
        .unwrap_err();
        assert!(err.to_string().contains("operation_timeout"), "{err}");
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

    #[test]
    fn classifies_lost_races() {
        let service = |status, code: &str| Error::Service {
            status,
            error_code: Some(code.to_owned()),
            message: String::new(),
        };
        assert!(lost_race(&service(412, "ConditionNotMet"), true));
        assert!(lost_race(&service(404, "BlobNotFound"), true));
        assert!(!lost_race(&service(404, "ContainerNotFound"), true));
        assert!(lost_race(&service(409, "BlobAlreadyExists"), false));
        assert!(lost_race(&service(412, "ConditionNotMet"), false));
        assert!(!lost_race(&service(403, "AuthorizationFailure"), true));
        assert!(!lost_race(&service(500, "InternalError"), false));
        assert!(!lost_race(&service(412, "LeaseIdMissing"), true));
        assert!(!lost_race(&service(412, "LeaseIdMissing"), false));
        assert!(!lost_race(
            &service(409, "LeaseIdMismatchWithBlobOperation"),
            true
        ));
        assert!(!lost_race(&service(409, "BlobAlreadyExists"), true));
        assert!(!lost_race(
            &Error::Service {
                status: 412,
                error_code: None,
                message: String::new()
            },
            true
        ));
        assert!(!lost_race(
            &Error::Transport {
                message: "refused".into()
            },
            false
        ));
    }
}
