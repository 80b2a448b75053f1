//! What the tests, examples and benches of `eventhub-checkpointstore` share (a dev-only crate,
//! never published): the Azurite under test and isolated containers on it, a pipeline policy
//! that records what was sent, a recorder of won claims with the "never two winners" checks,
//! Entra ID against Azurite, and a fault-injecting HTTP proxy.

pub mod clock;
pub mod cpu;
pub mod entra;
pub mod eventhubs;
pub mod hooked;
pub mod proxy;
pub mod wins;

use async_trait::async_trait;
use eventhub_checkpointstore::azure_core::http::RequestContent;
use eventhub_checkpointstore::azure_core::http::{
    headers::HeaderName,
    policies::{Policy, PolicyResult},
    ClientOptions, Context, Request, Url,
};
use eventhub_checkpointstore::azure_storage_blob::models::BlockBlobClientUploadOptions;
use eventhub_checkpointstore::{
    BlobCheckpointStore, BlobCheckpointStoreOptions, CheckpointStore, ConnectionString, Scope,
    StorageCredential, TableCheckpointStore, TableCheckpointStoreOptions, DEVELOPMENT_ACCOUNT_KEY,
};
use futures::StreamExt;
use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc, Mutex,
};

/// The Azurite that `scripts/test.sh` started. Integration tests never skip: without it they fail.
pub fn connection_string() -> String {
    std::env::var("AZURITE_CONNECTION_STRING").unwrap_or_else(|_| {
        panic!(
            "AZURITE_CONNECTION_STRING is not set. Run the tests with scripts/test.sh, which installs \
             and starts Azurite, or set it to an Azurite connection string yourself."
        )
    })
}

/// Each partition's stored (offset, sequence number) in `scope`, by partition id.
pub async fn positions(
    store: &dyn CheckpointStore,
    scope: &Scope,
) -> std::collections::BTreeMap<String, (Option<String>, Option<i64>)> {
    store
        .list_checkpoints(scope)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.partition_id, (c.offset, c.sequence_number)))
        .collect()
}

/// A loopback port nothing listens on (bound, then freed): a refused connection, or a port for
/// an emulator of a test's own.
pub fn unused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A name no other test (or concurrently running test binary) uses; lower-case letters and
/// digits only, so it is valid as a container name and as a table name.
pub fn unique_container() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "t{}x{}x{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A client on `container` (which may not exist).
pub fn store_on(
    container: &str,
    options: Option<BlobCheckpointStoreOptions>,
) -> BlobCheckpointStore {
    BlobCheckpointStore::from_connection_string(&connection_string(), container, options)
        .expect("the Azurite connection string is valid")
}

/// A new, empty container; returns its name.
pub async fn fresh_container() -> String {
    let name = unique_container();
    let created = store_on(&name, None).create_container_if_missing().await;
    assert!(created.expect("create container"), "{name} is new");
    name
}

/// A client on a new, empty container of its own.
pub async fn fresh_store(options: Option<BlobCheckpointStoreOptions>) -> BlobCheckpointStore {
    store_on(&fresh_container().await, options)
}

/// Writes a record blob directly, as another SDK (or a damaged one) might have.
pub async fn put_raw(store: &BlobCheckpointStore, name: &str, metadata: &[(&str, &str)]) {
    let options = BlockBlobClientUploadOptions {
        metadata: Some(
            metadata
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    };
    store
        .blob_client(name)
        .unwrap()
        .upload(RequestContent::from(Vec::new()), Some(options))
        .await
        .unwrap();
}

/// Writes the blobs `{prefix}0` … `{prefix}{count - 1}` directly, 64 at a time, each with
/// `offset` and `sequencenumber` `i` (and `ownerid`, so it reads as either record): setup for
/// listing tests, cheaper than the store's own create path.
pub async fn put_many(store: &BlobCheckpointStore, prefix: &str, count: usize) {
    futures::stream::iter(0..count)
        .map(|i| async move {
            let value = i.to_string();
            let metadata = [
                ("ownerid", "owner"),
                ("offset", &value),
                ("sequencenumber", &value),
            ];
            put_raw(store, &format!("{prefix}{i}"), &metadata).await;
        })
        .buffer_unordered(64)
        .collect::<()>()
        .await;
}

/// An account SAS for the blob service of Azurite's development account, made the way the
/// service defines it.
pub fn account_sas(connection: &ConnectionString) -> String {
    account_sas_for(connection, "b")
}

/// An account SAS for the services `ss` (`b` blob, `t` table) of Azurite's development account.
pub fn account_sas_for(connection: &ConnectionString, ss: &str) -> String {
    let StorageCredential::SharedKey(key) = connection.credential() else {
        panic!("the Azurite connection string carries the account key")
    };
    let expiry = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (sp, srt, spr, sv) = ("rwdlacu", "sco", "https,http", "2019-07-07");
    let to_sign = format!(
        "{}\n{sp}\n{ss}\n{srt}\n\n{expiry}\n\n{spr}\n{sv}\n",
        key.account()
    );
    let secret =
        eventhub_checkpointstore::azure_core::credentials::Secret::new(DEVELOPMENT_ACCOUNT_KEY);
    let sig = eventhub_checkpointstore::azure_core::hmac::hmac_sha256(&to_sign, &secret).unwrap();
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("sv", sv)
        .append_pair("ss", ss)
        .append_pair("srt", srt)
        .append_pair("sp", sp)
        .append_pair("se", &expiry)
        .append_pair("spr", spr)
        .append_pair("sig", &sig)
        .finish()
}

/// One request as it left the pipeline.
#[derive(Clone, Debug)]
pub struct Sent {
    pub method: String,
    pub url: Url,
    pub version: Option<String>,
    pub status: Option<u16>,
}

impl Sent {
    /// `comp=list`, `comp=metadata`, … or `put-blob` / `other`.
    pub fn operation(&self) -> String {
        let comp = self
            .url
            .query_pairs()
            .find(|(k, _)| k == "comp")
            .map(|(_, v)| v.into_owned());
        match (self.method.as_str(), comp) {
            (_, Some(comp)) => comp,
            ("PUT", None) => "put-blob".to_owned(),
            _ => "other".to_owned(),
        }
    }
}

/// Records every try of every request (retries count), with the response status.
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    sent: Arc<Mutex<Vec<Sent>>>,
}

impl Recorder {
    /// `options` with this recorder in the pipeline.
    pub fn install(&self, mut options: BlobCheckpointStoreOptions) -> BlobCheckpointStoreOptions {
        options
            .service
            .client_options
            .per_try_policies
            .push(Arc::new(self.clone()));
        options
    }

    /// `client_options` (of any store) with this recorder in the pipeline.
    pub fn install_in(&self, client_options: &mut ClientOptions) {
        client_options.per_try_policies.push(Arc::new(self.clone()));
    }

    /// What was sent since the last `take`.
    pub fn take(&self) -> Vec<Sent> {
        std::mem::take(&mut *self.sent.lock().unwrap())
    }
}

#[async_trait]
impl Policy for Recorder {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let index = {
            let mut sent = self.sent.lock().unwrap();
            sent.push(Sent {
                method: request.method().to_string(),
                url: request.url().clone(),
                version: request
                    .headers()
                    .get_optional_str(&HeaderName::from_static("x-ms-version"))
                    .map(str::to_owned),
                status: None,
            });
            sent.len() - 1
        };
        let result = next[0].send(ctx, request, &next[1..]).await;
        let status = match &result {
            Ok(response) => Some(u16::from(response.status())),
            Err(err) => err.http_status().map(u16::from),
        };
        if let Some(entry) = self.sent.lock().unwrap().get_mut(index) {
            entry.status = status;
        }
        result
    }
}

/// Runs `future` with a subscriber of its own that records `WARN` and above (as text without
/// colours); returns its output and the log.
pub async fn with_warnings<F: std::future::Future>(future: F) -> (F::Output, String) {
    with_log(tracing::Level::WARN, future).await
}

/// [`with_warnings`] at `INFO`.
pub async fn with_info<F: std::future::Future>(future: F) -> (F::Output, String) {
    with_log(tracing::Level::INFO, future).await
}

async fn with_log<F: std::future::Future>(level: tracing::Level, future: F) -> (F::Output, String) {
    use tracing::instrument::WithSubscriber;
    let log = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(log.clone())
        .finish();
    let output = future.with_subscriber(subscriber).await;
    let text = String::from_utf8_lossy(&log.0.lock().unwrap()).into_owned();
    (output, text)
}

/// A log written into memory.
#[derive(Clone, Default)]
pub struct LogBuffer(pub Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = Self;
    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}

/// The address of the Azurite service `endpoint` points at.
fn upstream(endpoint: &Url) -> std::net::SocketAddr {
    format!(
        "{}:{}",
        endpoint.host_str().expect("Azurite's endpoint has a host"),
        endpoint.port().expect("Azurite's endpoint has a port")
    )
    .parse()
    .expect("Azurite listens on an IP address")
}

/// A fault proxy in front of the Azurite blob service under test, and a store on a new container
/// behind it.
pub async fn proxied_blob_store(
    options: Option<BlobCheckpointStoreOptions>,
) -> (proxy::FaultProxy, BlobCheckpointStore) {
    let connection = ConnectionString::parse(&connection_string()).unwrap();
    let endpoint = connection
        .blob_endpoint()
        .expect("Azurite has a blob endpoint");
    let proxy = proxy::FaultProxy::start(upstream(endpoint)).await;
    let store = BlobCheckpointStore::new(
        &format!("http://{}/devstoreaccount1", proxy.addr()),
        &unique_container(),
        connection.credential().clone(),
        options,
    )
    .unwrap();
    assert!(store.create_container_if_missing().await.unwrap());
    (proxy, store)
}

/// A fault proxy in front of the Azurite table service under test, and a table store on a new
/// table behind it.
pub async fn proxied_table_store(
    options: Option<TableCheckpointStoreOptions>,
) -> (proxy::FaultProxy, TableCheckpointStore) {
    let connection = ConnectionString::parse(&connection_string()).unwrap();
    let endpoint = connection
        .table_endpoint()
        .expect("Azurite has a table endpoint");
    let proxy = proxy::FaultProxy::start(upstream(endpoint)).await;
    let store = TableCheckpointStore::new(
        &format!("http://{}/devstoreaccount1", proxy.addr()),
        &unique_container(),
        connection.credential().clone(),
        options,
    )
    .unwrap();
    assert!(store.create_table_if_missing().await.unwrap());
    (proxy, store)
}
