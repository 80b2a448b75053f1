//! The blob backend behind the store shell: records as empty block blobs named in one layout,
//! their fields as metadata. Each method is one Blob REST call in the common case.

use super::client::{self, Container};
use super::{etag, metadata, naming, BlobNaming};
use crate::client::credential::StorageCredential;
use crate::error::{Error, Result};
use crate::model::{Checkpoint, Ownership};
use crate::scope::Scope;
use crate::shell::record::{Fields, Known, Listed, Record};
use crate::shell::{Backend, OnRecord, Version, Written};
use crate::store::ServiceTime;
use async_trait::async_trait;
use azure_core::http::Etag;
use std::{collections::HashSet, fmt, sync::Mutex};

/// Blobs in one container, named in one layout.
pub(crate) struct BlobBackend {
    pub(crate) container: Container,
    api_version: String,
    credential: StorageCredential,
    pub(crate) naming: BlobNaming,
    checkpoint_fallback: bool,
    /// Listing prefixes of the other layout whose checkpoints were all superseded by checkpoints
    /// of the store's own layout when last read: the fallback listing is not repeated for them.
    superseded: Mutex<HashSet<String>>,
}

impl BlobBackend {
    pub(crate) fn new(
        container: Container,
        api_version: String,
        credential: StorageCredential,
        naming: BlobNaming,
        checkpoint_fallback: bool,
    ) -> Self {
        Self {
            container,
            api_version,
            credential,
            naming,
            checkpoint_fallback,
            superseded: Mutex::new(HashSet::new()),
        }
    }
}

/// One claim, checked and ready to send.
pub(crate) struct Claim {
    name: String,
    metadata: Fields,
    etag: Option<Etag>,
}

#[async_trait]
impl Backend for BlobBackend {
    type Claim = Claim;
    const KIND: &'static str = "blob";

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
                &requested.scope,
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

    async fn claim(&self, claim: Claim) -> Result<Written> {
        let written = match &claim.etag {
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
        };
        Written::of(written, |err| lost_race(err, claim.etag.is_some()))
    }

    async fn update_checkpoint(&self, checkpoint: &Checkpoint) -> Result<Version> {
        let (name, metadata) = self.checkpoint_blob(checkpoint)?;
        match self.container.set_metadata(&name, &metadata, None).await {
            Err(err) if err.error_code() == Some("BlobNotFound") => {
                // First checkpoint of this partition: create the blob. Overwriting is right if a
                // concurrent writer created it meanwhile: checkpoints are last-writer-wins.
                self.container.put_empty(&name, &metadata, false).await
            }
            written => written,
        }
    }

    async fn put_checkpoint(&self, checkpoint: &Checkpoint) -> Result<Version> {
        let (name, metadata) = self.checkpoint_blob(checkpoint)?;
        // Put Blob replaces the blob whole, metadata included: last writer wins, as for updates.
        self.container.put_empty(&name, &metadata, false).await
    }

    async fn read_checkpoint(
        &self,
        scope: &Scope,
        partition_id: &str,
    ) -> Result<Option<(Checkpoint, Etag)>> {
        let name = naming::blob_name(self.naming, scope, Record::Checkpoint, partition_id)?;
        let Some(headers) = self.container.properties(&name).await? else {
            return Ok(None);
        };
        let version = client::version_of(&headers);
        let Some(etag) = version.etag else {
            return Err(Error::UnexpectedResponse {
                message: format!("Get Blob Properties of {name} returned no ETag"),
            });
        };
        let listed = Listed {
            partition_id: partition_id.to_owned(),
            version: &Known {
                etag: None,
                last_modified: version.last_modified,
            },
            fields: &metadata::MetadataHeaders(&headers),
            source: &name,
        };
        Ok(Some((listed.into_checkpoint(scope), etag)))
    }

    async fn write_checkpoint_if(
        &self,
        checkpoint: &Checkpoint,
        version: Option<&Etag>,
    ) -> Result<Written> {
        let (name, metadata) = self.checkpoint_blob(checkpoint)?;
        let written = match version {
            Some(etag) => {
                self.container
                    .set_metadata(&name, &metadata, Some(etag))
                    .await
            }
            None => self.container.put_empty(&name, &metadata, true).await,
        };
        Written::of(written, |err| lost_race(err, version.is_some()))
    }

    async fn list(
        &self,
        scope: &Scope,
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
            &checkpoint.scope,
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
        scope: &Scope,
        record: Record,
        on_record: &mut OnRecord<'_>,
    ) -> Result<Option<ServiceTime>> {
        let prefix = naming::prefix(naming, scope, record)?;
        self.container
            .list(&prefix, |blob| {
                let Some(partition) = naming::partition_of(&prefix, blob.name) else {
                    return;
                };
                if blob.is_directory() {
                    return;
                }
                on_record(Listed {
                    partition_id: partition.to_owned(),
                    version: blob,
                    fields: &blob.metadata,
                    source: blob.name,
                })
            })
            .await
    }

    /// `checkpoint_fallback`: the own layout's checkpoints, then, for each partition without one,
    /// the one the other layout holds. One listing more at most; none once every partition the
    /// other layout holds has a checkpoint of its own (remembered per consumer group).
    async fn list_checkpoints_with_fallback(
        &self,
        scope: &Scope,
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
        let other_prefix = naming::prefix(other, scope, Record::Checkpoint)?;
        // Names that are lower-case already are the same blobs in both layouts.
        if other_prefix == naming::prefix(naming, scope, Record::Checkpoint)?
            || self.superseded().contains(&other_prefix)
        {
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

/// Whether a failed conditional write lost a race rather than failed: only the answers that mean
/// "someone else wrote the record first". With an etag: 412 `ConditionNotMet` (the blob changed)
/// or 404 `BlobNotFound` (it was deleted; a missing container is a real failure). Without one:
/// 409 `BlobAlreadyExists` or 412 `ConditionNotMet`. Any other 412 or 409 (`LeaseIdMissing` when
/// a lease is held on the blob, `LeaseIdMismatchWithBlobOperation`, …) is a failure: nobody won
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
pub(crate) fn check_container_name(name: &str) -> Result<()> {
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
