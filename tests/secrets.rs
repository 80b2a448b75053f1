//! Secrets: an account key or a SAS signature never appears in an error's `Display` or `Debug`, a
//! store's `Debug`, or the `tracing` output of a run at TRACE level (every crate's events: this
//! store's, azure_core's pipeline logging, hyper's connection handling).
//!
//! A test binary of its own: the capture is the process's global subscriber, which a scoped one
//! on a test thread cannot reliably be while other tests run.

use eventhub_checkpointstore::Scope;
use eventhub_checkpointstore::ServiceOptions;
use eventhub_checkpointstore_testkit as common;

use common::{connection_string, fresh_store, store_on, unique_container};
use eventhub_checkpointstore::{
    BlobCheckpointStore, BlobCheckpointStoreOptions, Checkpoint, CheckpointStore, ConnectionString,
    Ownership, DEVELOPMENT_ACCOUNT_KEY,
};
use std::sync::{Arc, Mutex};

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secrets_never_reach_errors_debug_output_or_trace_logs() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer({
            let captured = captured.clone();
            move || captured.clone()
        })
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let connection = ConnectionString::parse(&connection_string()).unwrap();
    let endpoint = connection.blob_endpoint().unwrap().clone();
    let sas = common::account_sas(&connection);
    let signature = sas
        .split('&')
        .find_map(|pair| pair.strip_prefix("sig="))
        .unwrap()
        .to_owned();
    let wrong_key = "c2VjcmV0LXdyb25nLWtleS1zZWNyZXQtd3Jvbmcta2V5LXNlY3JldA==";
    let mut shown = Vec::new();

    // A real key: a whole run, including a lost race and a failure.
    let store = fresh_store(None).await;
    shown.push(format!("{store:?}"));
    let (ns, hub, group) = ("secrets.servicebus.windows.net", "hub", "$Default");
    let won = store
        .claim_ownership(&[Ownership::new((ns, hub, group), "0", "me")])
        .await
        .unwrap();
    assert_eq!(won.len(), 1);
    let lost = store
        .claim_ownership(&[Ownership::new((ns, hub, group), "0", "me")])
        .await
        .unwrap();
    assert!(lost.is_empty());
    store
        .update_checkpoint(&Checkpoint::new(
            (ns, hub, group),
            "0",
            Some("1".into()),
            Some(1),
        ))
        .await
        .unwrap();
    store
        .list_ownership(&Scope::new(ns, hub, group))
        .await
        .unwrap();
    store
        .list_checkpoints(&Scope::new(ns, hub, group))
        .await
        .unwrap();
    let missing = store_on(&unique_container(), None);
    let err = missing
        .list_ownership(&Scope::new(ns, hub, group))
        .await
        .unwrap_err();
    shown.push(format!("{err} {err:?}"));

    // A SAS in the URL, working and against a closed port.
    let sas_store = BlobCheckpointStore::new(
        &format!("{endpoint}?{sas}"),
        store
            .container_url()
            .path_segments()
            .unwrap()
            .next_back()
            .unwrap(),
        eventhub_checkpointstore::StorageCredential::Anonymous,
        None,
    )
    .unwrap();
    shown.push(format!("{sas_store:?}"));
    sas_store
        .list_checkpoints(&Scope::new(ns, hub, group))
        .await
        .unwrap();
    let port = common::unused_port();
    let refused = BlobCheckpointStore::new(
        &format!("http://127.0.0.1:{port}/devstoreaccount1?{sas}"),
        "checkpoints",
        eventhub_checkpointstore::StorageCredential::Anonymous,
        Some(BlobCheckpointStoreOptions {
            service: ServiceOptions {
                operation_timeout: Some(std::time::Duration::from_secs(1)),
                ..Default::default()
            },
            ..Default::default()
        }),
    )
    .unwrap();
    let err = refused
        .list_ownership(&Scope::new(ns, hub, group))
        .await
        .unwrap_err();
    shown.push(format!("{err} {err:?}"));

    // A wrong key: a 403.
    let wrong = BlobCheckpointStore::from_connection_string(
        &format!("AccountName=devstoreaccount1;AccountKey={wrong_key};BlobEndpoint={endpoint}"),
        "checkpoints",
        None,
    )
    .unwrap();
    shown.push(format!("{wrong:?}"));
    let err = wrong
        .list_ownership(&Scope::new(ns, hub, group))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403), "{err:?}");
    shown.push(format!("{err} {err:?}"));
    // A malformed connection string carrying a key.
    let err = ConnectionString::parse(&format!("AccountKey={wrong_key};Bogus")).unwrap_err();
    shown.push(format!("{err} {err:?}"));

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // The capture really saw the run: spans of the store and requests of the pipeline.
    assert!(
        log.contains("claim_ownership") && log.contains("list_checkpoints"),
        "{log}"
    );
    assert!(log.contains("TRACE") && log.contains("403"), "{log}");

    let encoded = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let secrets = [
        DEVELOPMENT_ACCOUNT_KEY.to_owned(),
        encoded(DEVELOPMENT_ACCOUNT_KEY),
        wrong_key.to_owned(),
        encoded(wrong_key),
        signature.clone(),
        percent_decoded(&signature),
    ];
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "the trace log shows {secret}"
        );
        for text in &shown {
            assert!(!text.contains(secret.as_str()), "{text} shows {secret}");
        }
    }
}

fn percent_decoded(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .unwrap()
        .1
        .into_owned()
}
