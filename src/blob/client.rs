//! The thin layer between the store and the Blob service: each function is one Blob REST
//! operation on one container, in the store's terms, sent through one shared `azure_core`
//! pipeline (retries, transport, authorization), with errors mapped to ours.
//!
//! The store's three requests (List Blobs, Put Blob of an empty blob, Set Blob Metadata) are built
//! here rather than through the official blob crate's clients: those are built per blob, each
//! with a pipeline of its own, and their request and response handling cost about as much client
//! CPU as the request itself (measured in `benches/README.md`). The official container client is
//! still built once, for [`client`](Container::client) and [`blob`](Container::blob).

use super::listing::{self, ListedBlob};
use crate::client::{headers, Rest};
use crate::error::{Error, Result};
use crate::shell::record::Fields;
use crate::shell::Version;
use crate::store::ServiceTime;
use azure_core::http::{
    headers::{HeaderName, Headers},
    ClientOptions, Etag, Method, Request, Url,
};
use azure_storage_blob::{
    BlobClient, BlobClientOptions, BlobContainerClient, BlobContainerClientOptions,
};

/// One container, reached through one shared pipeline configuration.
pub(crate) struct Container {
    client: BlobContainerClient,
    rest: Rest,
    url: Url,
    /// Also carries the service version, for the blob clients handed out.
    blob_options: BlobClientOptions,
}

impl Container {
    /// `client_options` must already carry the transport and the authorization policy: blob clients
    /// handed out must share the connection pool and token cache.
    // The SDK adds fields to its options structs in minor releases (its guidelines: build them
    // with `..Default::default()`), and cargo gives users the newest 1.x: a literal naming every
    // field today would stop this crate building then.
    #[allow(clippy::needless_update)]
    pub(crate) fn new(url: Url, client_options: ClientOptions, version: &str) -> Result<Self> {
        let client = BlobContainerClient::new(
            url.clone(),
            None,
            Some(BlobContainerClientOptions {
                client_options: client_options.clone(),
                version: version.to_owned(),
                ..Default::default()
            }),
        )?;
        Ok(Self {
            client,
            rest: Rest::new(client_options.clone(), version),
            url,
            blob_options: BlobClientOptions {
                client_options,
                version: version.to_owned(),
                ..Default::default()
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
    /// (one request per 5,000 blobs). Each blob goes to `on_blob` as its page is read. Returns the
    /// service's time as the last page's response showed it.
    ///
    /// List Blobs goes through the same pipeline (auth, retries, transport) but not through the
    /// blob crate's pager: that parses each page twice (once for the marker) into models with
    /// dozens of fields, which made a 6,000-blob listing 0.78x as fast as plain HTTP and doubled
    /// its peak memory. One pass with a pull parser over the four fields a record needs is what we
    /// do instead (see [`listing`]).
    pub(crate) async fn list(
        &self,
        prefix: &str,
        mut on_blob: impl FnMut(&ListedBlob<'_>),
    ) -> Result<Option<ServiceTime>> {
        let mut marker: Option<String> = None;
        loop {
            let mut url = self.url.clone();
            {
                let mut query = url.query_pairs_mut();
                query
                    .append_pair("restype", "container")
                    .append_pair("comp", "list")
                    .append_pair("include", "metadata")
                    .append_pair("prefix", prefix);
                if let Some(marker) = &marker {
                    query.append_pair("marker", marker);
                }
            }
            let mut request = self.rest.request(url, Method::Get);
            request.insert_header("accept", "application/xml");
            let response = self.rest.send(&mut request, &[200]).await?;
            match listing::parse_page(response.body(), &mut on_blob)? {
                Some(next) => marker = Some(next),
                None => return Ok(ServiceTime::from_headers(response.headers())),
            }
        }
    }
    /// Get Blob Properties: the blob's response headers (its ETag, Last-Modified and metadata as
    /// `x-ms-meta-*`), or `None` when the blob does not exist.
    pub(crate) async fn properties(&self, name: &str) -> Result<Option<Headers>> {
        let mut request = self.rest.request(self.blob_url(name)?, Method::Head);
        match self.rest.send(&mut request, &[200]).await {
            Ok(response) => Ok(Some(response.headers().clone())),
            Err(err) if err.error_code() == Some("BlobNotFound") => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Whether the container exists (Get Container Properties).
    pub(crate) async fn exists(&self) -> Result<bool> {
        let mut url = self.url.clone();
        url.set_query(Some("restype=container"));
        let mut request = self.rest.request(url, Method::Head);
        match self.rest.send(&mut request, &[200]).await {
            Ok(_) => Ok(true),
            Err(err) if err.error_code() == Some("ContainerNotFound") => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Put Blob: an empty block blob with `metadata`. With `only_if_absent` the service refuses
    /// (409 `BlobAlreadyExists`) when the blob exists; otherwise it overwrites.
    pub(crate) async fn put_empty(
        &self,
        name: &str,
        metadata: &Fields,
        only_if_absent: bool,
    ) -> Result<Version> {
        let mut request = self.rest.request(self.blob_url(name)?, Method::Put);
        request.insert_header("x-ms-blob-type", "BlockBlob");
        request.insert_header("content-length", "0");
        if only_if_absent {
            request.insert_header("if-none-match", "*");
        }
        insert_metadata(&mut request, metadata);
        let response = self.rest.send(&mut request, &[201]).await?;
        Ok(version_of(response.headers()))
    }

    /// Set Blob Metadata, replacing all metadata; with `if_match` only if the blob is still at that
    /// version (412 `ConditionNotMet` otherwise).
    pub(crate) async fn set_metadata(
        &self,
        name: &str,
        metadata: &Fields,
        if_match: Option<&Etag>,
    ) -> Result<Version> {
        let mut url = self.blob_url(name)?;
        url.set_query(Some("comp=metadata"));
        let mut request = self.rest.request(url, Method::Put);
        request.insert_header("content-length", "0");
        if let Some(etag) = if_match {
            request.insert_header("if-match", etag.to_string());
        }
        insert_metadata(&mut request, metadata);
        let response = self.rest.send(&mut request, &[200]).await?;
        Ok(version_of(response.headers()))
    }

    /// The URL of one blob, with `/` kept literal in the path as the other SDKs send it.
    fn blob_url(&self, name: &str) -> Result<Url> {
        let mut url = self.url.clone();
        url.path_segments_mut()
            .map_err(|()| Error::invalid_input("the container URL cannot have a path"))?
            .pop_if_empty()
            .extend(name.split('/'));
        Ok(url)
    }

    /// A client for one blob, with `/` kept literal in the URL path as the other SDKs send it (the
    /// official `blob_client()` encodes it as `%2F`).
    pub(crate) fn blob(&self, name: &str) -> Result<BlobClient> {
        Ok(BlobClient::new(
            self.blob_url(name)?,
            None,
            Some(self.blob_options.clone()),
        )?)
    }
}

/// `x-ms-meta-{key}` for each field. The keys are the record's (`record::OWNER_ID`, …): static
/// header names, no allocation per request.
fn insert_metadata(request: &mut Request, metadata: &Fields) {
    for (key, value) in metadata {
        use crate::shell::record::{OFFSET, OWNER_ID, SEQUENCE_NUMBER};
        let name = match *key {
            OWNER_ID => HeaderName::from_static("x-ms-meta-ownerid"),
            OFFSET => HeaderName::from_static("x-ms-meta-offset"),
            SEQUENCE_NUMBER => HeaderName::from_static("x-ms-meta-sequencenumber"),
            other => HeaderName::from(format!("x-ms-meta-{other}")),
        };
        request.insert_header(name, value.clone());
    }
}

/// The version a response reports (a write's new one, or a read's current one).
pub(crate) fn version_of(headers: &Headers) -> Version {
    const ETAG: HeaderName = HeaderName::from_static("etag");
    const LAST_MODIFIED: HeaderName = HeaderName::from_static("last-modified");
    Version {
        etag: headers::get(headers, &ETAG).and_then(super::etag::from_service),
        last_modified: headers::get(headers, &LAST_MODIFIED).and_then(headers::http_date),
    }
}
