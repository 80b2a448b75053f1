//! The thin layer between the store and the official blob crate: each function is one Blob
//! service operation on one container, in the store's terms, with errors mapped to ours.

use crate::error::{Error, Result};
use azure_core::{
    http::{
        headers::{HeaderName, Headers},
        ClientOptions, Etag, RequestContent, Url,
    },
    time::{parse_rfc7231, OffsetDateTime},
};
use azure_storage_blob::{
    models::{
        BlobClientSetMetadataOptions, BlobContainerClientListBlobsOptions,
        BlockBlobClientUploadOptions, ListBlobsIncludeItem,
    },
    BlobClient, BlobClientOptions, BlobContainerClient, BlobContainerClientOptions,
};
use futures::TryStreamExt;
use std::collections::HashMap;

/// Metadata the Data Lake (hierarchical namespace) service sets on directory entries.
const DIRECTORY_MARKER: &str = "hdi_isfolder";

/// A blob as a listing reports it.
#[derive(Debug)]
pub(crate) struct ListedBlob {
    pub(crate) name: String,
    pub(crate) etag: Option<Etag>,
    pub(crate) last_modified: Option<OffsetDateTime>,
    pub(crate) metadata: HashMap<String, String>,
}

impl ListedBlob {
    pub(crate) fn is_directory(&self) -> bool {
        self.metadata.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case(DIRECTORY_MARKER) && v.eq_ignore_ascii_case("true")
        })
    }
}

/// The new version of a blob after a write.
#[derive(Debug)]
pub(crate) struct Written {
    pub(crate) etag: Option<Etag>,
    pub(crate) last_modified: Option<OffsetDateTime>,
}

/// One container, reached through one shared pipeline configuration.
pub(crate) struct Container {
    client: BlobContainerClient,
    url: Url,
    blob_options: BlobClientOptions,
}

impl Container {
    /// `client_options` must already carry the transport and the authorization policy: blob clients
    /// are built per operation and must share the connection pool and token cache.
    pub(crate) fn new(url: Url, client_options: ClientOptions, version: String) -> Result<Self> {
        let client = BlobContainerClient::new(
            url.clone(),
            None,
            Some(BlobContainerClientOptions {
                client_options: client_options.clone(),
                version: version.clone(),
            }),
        )?;
        Ok(Self {
            client,
            url,
            blob_options: BlobClientOptions {
                client_options,
                version,
            },
        })
    }

    pub(crate) fn url(&self) -> &Url {
        &self.url
    }

    pub(crate) fn client(&self) -> &BlobContainerClient {
        &self.client
    }

    /// Creates the container; `false` when it already existed.
    pub(crate) async fn create_if_missing(&self) -> Result<bool> {
        match self.client.create(None).await {
            Ok(_) => Ok(true),
            Err(err) => match Error::from(err) {
                e if e.error_code() == Some("ContainerAlreadyExists") => Ok(false),
                e => Err(e),
            },
        }
    }

    /// Every blob whose name starts with `prefix`, with metadata, following continuation markers
    /// (one request per 5,000 blobs). Each blob goes through `convert` as its page arrives, so a
    /// page's parsed models are dropped before the next page is fetched.
    pub(crate) async fn list<T>(
        &self,
        prefix: &str,
        mut convert: impl FnMut(ListedBlob) -> Option<T>,
    ) -> Result<Vec<T>> {
        let options = BlobContainerClientListBlobsOptions {
            prefix: Some(prefix.to_owned()),
            include: Some(vec![ListBlobsIncludeItem::Metadata]),
            ..Default::default()
        };
        let mut pages = self.client.list_blobs(Some(options))?.into_pages();
        let mut records = Vec::new();
        while let Some(page) = pages.try_next().await? {
            let page = page.into_model()?;
            records.reserve(page.blob_items.len());
            for item in page.blob_items {
                let Some(name) = item.name else { continue };
                let properties = item.properties.unwrap_or_default();
                let blob = ListedBlob {
                    name,
                    etag: properties
                        .etag
                        .and_then(|e| super::etag::from_service(e.as_ref())),
                    last_modified: properties.last_modified,
                    metadata: item.metadata.and_then(|m| m.values).unwrap_or_default(),
                };
                records.extend(convert(blob));
            }
        }
        Ok(records)
    }

    /// Put Blob: an empty block blob with `metadata`. With `only_if_absent` the service refuses
    /// (409 `BlobAlreadyExists`) when the blob exists; otherwise it overwrites.
    pub(crate) async fn put_empty(
        &self,
        name: &str,
        metadata: HashMap<String, String>,
        only_if_absent: bool,
    ) -> Result<Written> {
        let options = BlockBlobClientUploadOptions {
            metadata: Some(metadata),
            if_none_match: only_if_absent.then(|| Etag::from("*")),
            ..Default::default()
        };
        let result = self
            .blob(name)?
            .upload(RequestContent::from(Vec::new()), Some(options))
            .await?;
        Ok(Written {
            etag: result
                .etag
                .and_then(|e| super::etag::from_service(e.as_ref())),
            last_modified: result.last_modified,
        })
    }

    /// Set Blob Metadata, replacing all metadata; with `if_match` only if the blob is still at that
    /// version (412 `ConditionNotMet` otherwise).
    pub(crate) async fn set_metadata(
        &self,
        name: &str,
        metadata: &HashMap<String, String>,
        if_match: Option<Etag>,
    ) -> Result<Written> {
        let options = BlobClientSetMetadataOptions {
            if_match,
            ..Default::default()
        };
        let response = self
            .blob(name)?
            .set_metadata(metadata, Some(options))
            .await?;
        Ok(written_from_headers(response.headers()))
    }

    /// A client for one blob, with `/` kept literal in the URL path as the other SDKs send it (the
    /// official `blob_client()` encodes it as `%2F`, which Azurite does not decode).
    pub(crate) fn blob(&self, name: &str) -> Result<BlobClient> {
        let mut url = self.url.clone();
        url.path_segments_mut()
            .map_err(|()| Error::invalid_input("the container URL cannot have a path"))?
            .pop_if_empty()
            .extend(name.split('/'));
        Ok(BlobClient::new(url, None, Some(self.blob_options.clone()))?)
    }
}

fn written_from_headers(headers: &Headers) -> Written {
    const ETAG: HeaderName = HeaderName::from_static("etag");
    const LAST_MODIFIED: HeaderName = HeaderName::from_static("last-modified");
    Written {
        etag: headers
            .get_optional_str(&ETAG)
            .and_then(super::etag::from_service),
        last_modified: headers
            .get_optional_str(&LAST_MODIFIED)
            .and_then(|v| parse_rfc7231(v).ok()),
    }
}
