//! The checkpoint store over Azure Blob Storage: the blob backend behind the store shell
//! (`crate::shell`), and the public `BlobCheckpointStore` around it.

mod container;
mod etag;
mod listing;
mod metadata;
mod naming;
mod options;

pub use naming::BlobNaming;
pub use options::{BlobCheckpointStoreOptions, DEFAULT_API_VERSION, MIN_API_VERSION};

use crate::account::{Account, Service};
use crate::connection_string::ConnectionString;
use crate::credential::StorageCredential;
use crate::error::{Error, Result};
use crate::model::{Checkpoint, Ownership};
use crate::record::{Fields, Listed, Record, Scope};
use crate::shell::{Backend, OnRecord, Shell, Version};
use crate::store::ServiceTime;
use async_trait::async_trait;
use azure_core::http::{Etag, Url};
use azure_storage_blob::{BlobClient, BlobContainerClient};
use container::Container;
use std::{
    collections::HashSet,
    fmt,
    sync::{Arc, Mutex},
};

/// A [`CheckpointStore`](crate::CheckpointStore) that keeps ownership and checkpoints as empty
/// block blobs with metadata in one container, readable and writable by the Python, .NET, Java
/// and JS Event Hubs stores (or, with [`BlobNaming::Verbatim`], by Go's and the official Rust
/// store).
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
    inner: Arc<Shell<BlobBackend>>,
}

checkpoint_store!(BlobCheckpointStore);

/// Blobs in one container, named in one layout.
struct BlobBackend {
    container: Container,
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
        let options = options.unwrap_or_default();
        let Account {
            mut url,
            credential,
            client_options,
        } = Account::new(
            account_url,
            credential.into(),
            Service::Blob,
            (&options.api_version, MIN_API_VERSION),
            options.client_options,
        )?;
        check_container_name(container)?;
        url.path_segments_mut()
            .map_err(|()| Error::invalid_input("account_url cannot have a path"))?
            .pop_if_empty()
            .push(container);
        let backend = BlobBackend {
            container: Container::new(url, client_options, options.api_version.clone())?,
            api_version: options.api_version,
            credential,
            naming: options.naming,
            checkpoint_fallback: options.checkpoint_fallback,
            superseded: Mutex::new(HashSet::new()),
        };
        let inner = Shell::new(
            backend,
            options.claim_concurrency,
            options.operation_timeout,
        )?;
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
    /// [`BlobContainerClient::blob_client`], `/` in `blob_name` stays a literal path separator,
    /// as the other Event Hubs stores send it.
    pub fn blob_client(&self, blob_name: &str) -> Result<BlobClient> {
        self.inner.backend.container.blob(blob_name)
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

/// One claim, checked and ready to send.
struct Claim {
    name: String,
    metadata: Fields,
    etag: Option<Etag>,
}

#[async_trait]
impl Backend for BlobBackend {
    type Claim = Claim;

    fn describe(&self, f: &mut fmt::DebugStruct<'_, '_>) {
        f.field("container_url", &self.container.url().as_str())
            .field("credential", &self.credential)
            .field("api_version", &self.api_version)
            .field("naming", &self.naming)
            .field("checkpoint_fallback", &self.checkpoint_fallback);
    }

    fn prepare_claim(&self, requested: &Ownership) -> Result<Claim> {
        Ok(Claim {
            name: naming::blob_name(
                self.naming,
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

    async fn claim(&self, claim: Claim) -> Result<Version> {
        match &claim.etag {
            Some(etag) => {
                self.container
                    .set_metadata(&claim.name, &claim.metadata, Some(etag))
                    .await
            }
            None => {
                self.container
                    .put_empty(&claim.name, &claim.metadata, true)
                    .await
            }
        }
    }

    fn lost_race(&self, err: &Error, conditional: bool) -> bool {
        lost_race(err, conditional)
    }

    async fn update_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()> {
        let (name, metadata) = self.checkpoint_blob(checkpoint)?;
        match self.container.set_metadata(&name, &metadata, None).await {
            Ok(_) => Ok(()),
            Err(err) if err.error_code() == Some("BlobNotFound") => {
                // First checkpoint of this partition: create the blob. Overwriting is right if a
                // concurrent writer created it meanwhile: checkpoints are last-writer-wins.
                self.container.put_empty(&name, &metadata, false).await?;
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    async fn put_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()> {
        let (name, metadata) = self.checkpoint_blob(checkpoint)?;
        // Put Blob replaces the blob whole, metadata included: last writer wins, as for updates.
        self.container.put_empty(&name, &metadata, false).await?;
        Ok(())
    }

    async fn list(
        &self,
        scope: Scope<'_>,
        record: Record,
        on_record: &mut OnRecord<'_>,
    ) -> Result<Option<ServiceTime>> {
        if record == Record::Checkpoint && self.checkpoint_fallback {
            return self.list_checkpoints_with_fallback(scope, on_record).await;
        }
        self.list_in(self.naming, scope, record, on_record).await
    }
}

impl BlobBackend {
    /// The name and metadata of a checkpoint's blob.
    fn checkpoint_blob(&self, checkpoint: &Checkpoint) -> Result<(String, Fields)> {
        let name = naming::blob_name(
            self.naming,
            &checkpoint.fully_qualified_namespace,
            &checkpoint.eventhub_name,
            &checkpoint.consumer_group,
            Record::Checkpoint,
            &checkpoint.partition_id,
        )?;
        Ok((name, metadata::for_checkpoint(checkpoint)?))
    }

    /// The records of one kind under a layout's prefix: blobs named `{prefix}{partition}`,
    /// directory markers and nested names left out.
    async fn list_in(
        &self,
        naming: BlobNaming,
        scope: Scope<'_>,
        record: Record,
        on_record: &mut OnRecord<'_>,
    ) -> Result<Option<ServiceTime>> {
        let prefix = naming::prefix(
            naming,
            scope.namespace,
            scope.eventhub,
            scope.consumer_group,
            record,
        )?;
        self.container
            .list(&prefix, |blob| {
                let Some(partition) = naming::partition_of(&prefix, &blob.name) else {
                    return;
                };
                if blob.is_directory() {
                    return;
                }
                on_record(Listed {
                    partition_id: partition.to_owned(),
                    etag: blob.etag.clone(),
                    last_modified: blob.last_modified,
                    fields: &blob.metadata,
                    source: &blob.name,
                })
            })
            .await
    }

    /// `checkpoint_fallback`: the own layout's checkpoints, then, for each partition without one,
    /// the one the other layout holds. One listing more at most; none once every partition the
    /// other layout holds has a checkpoint of its own (remembered per consumer group).
    async fn list_checkpoints_with_fallback(
        &self,
        scope: Scope<'_>,
        on_record: &mut OnRecord<'_>,
    ) -> Result<Option<ServiceTime>> {
        let (naming, other) = (self.naming, self.naming.other());
        let mut own = HashSet::new();
        let time = self
            .list_in(naming, scope, Record::Checkpoint, &mut |listed| {
                own.insert(listed.partition_id.clone());
                on_record(listed)
            })
            .await?;
        let prefix = |layout| {
            naming::prefix(
                layout,
                scope.namespace,
                scope.eventhub,
                scope.consumer_group,
                Record::Checkpoint,
            )
        };
        let other_prefix = prefix(other)?;
        // Names that are lower-case already are the same blobs in both layouts.
        if other_prefix == prefix(naming)? || self.superseded().contains(&other_prefix) {
            return Ok(time);
        }
        let mut fallback = Vec::new();
        self.list_in(other, scope, Record::Checkpoint, &mut |mut listed| {
            listed.partition_id = naming.partition_id(&listed.partition_id);
            if own.insert(listed.partition_id.clone()) {
                fallback.push(listed.partition_id.clone());
                on_record(listed);
            }
        })
        .await?;
        if fallback.is_empty() {
            self.superseded().insert(other_prefix);
        } else {
            tracing::info!(
                own_layout = ?naming,
                fallback_layout = ?other,
                ?fallback,
                "partitions without a checkpoint of their own use the other layout's"
            );
        }
        Ok(time)
    }

    fn superseded(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        crate::sync::lock(&self.superseded)
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
