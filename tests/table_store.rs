//! `TableCheckpointStore` on Azurite's table service: the shared conformance suite, the Python
//! table store's layout and cases, request counts and failure modes.

use eventhub_checkpointstore::Scope;
use eventhub_checkpointstore::ServiceOptions;
use eventhub_checkpointstore_testkit as common;

use async_trait::async_trait;
use common::{connection_string, Recorder, Sent};
use eventhub_checkpointstore::azure_core::{credentials::Secret, hmac::hmac_sha256, http::Etag};
use eventhub_checkpointstore::conformance;
use eventhub_checkpointstore::{
    Checkpoint, CheckpointStore, ConnectionString, Error, Ownership, StorageCredential,
    TableCheckpointStore, TableCheckpointStoreOptions, DEVELOPMENT_ACCOUNT_KEY,
    DEVELOPMENT_ACCOUNT_NAME,
};
use serde_json::{json, Value};
use std::sync::Arc;

const NS: &str = "myns.servicebus.windows.net";
const EH: &str = "telemetry";
const CG: &str = "$Default";

fn store_on(table: &str, options: Option<TableCheckpointStoreOptions>) -> TableCheckpointStore {
    TableCheckpointStore::from_connection_string(&connection_string(), table, options)
        .expect("the Azurite connection string has a TableEndpoint")
}

async fn fresh_table() -> String {
    let table = common::unique_container();
    assert!(store_on(&table, None)
        .create_table_if_missing()
        .await
        .unwrap());
    table
}

/// One fresh table per test; every client is a separate store (its own connection pool).
struct TableBackend {
    table: String,
}

async fn table_backend() -> TableBackend {
    TableBackend {
        table: fresh_table().await,
    }
}

#[async_trait]
impl conformance::Fixture for TableBackend {
    async fn client(&self) -> Arc<dyn CheckpointStore> {
        Arc::new(store_on(&self.table, None))
    }

    fn invented_etag(&self) -> Etag {
        Etag::from("W/\"datetime'2020-01-01T00%3A00%3A00.0000000Z'\"")
    }

    fn invalid_etags(&self) -> Vec<Etag> {
        // Besides `*`: a blob's ETag is no entity version, and matches none.
        vec![
            Etag::from("*"),
            Etag::from("W/\"*\""),
            Etag::from(""),
            Etag::from("\"0x8D000000000BEEF\""),
        ]
    }
}

eventhub_checkpointstore::conformance_suite!(table_backend());

/// Plain HTTP against the table, signed with the development key: what another SDK would send
/// and see, without going through the store.
struct Raw {
    http: reqwest::Client,
    endpoint: String,
    table: String,
}

impl Raw {
    fn new(table: &str) -> Self {
        let connection = ConnectionString::parse(&connection_string()).unwrap();
        Self {
            http: reqwest::Client::new(),
            endpoint: connection
                .table_endpoint()
                .unwrap()
                .as_str()
                .trim_end_matches('/')
                .to_owned(),
            table: table.to_owned(),
        }
    }

    async fn send(&self, method: reqwest::Method, resource: &str, body: Option<Value>) -> Value {
        let url = format!("{}/{resource}", self.endpoint);
        let path = reqwest::Url::parse(&url).unwrap().path().to_owned();
        let date = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc2822)
            .unwrap()
            .replace("+0000", "GMT");
        let content_type = if body.is_some() {
            "application/json"
        } else {
            ""
        };
        let to_sign =
            format!("{method}\n\n{content_type}\n{date}\n/{DEVELOPMENT_ACCOUNT_NAME}{path}");
        let signature = hmac_sha256(&to_sign, &Secret::new(DEVELOPMENT_ACCOUNT_KEY)).unwrap();
        let mut request = self
            .http
            .request(method, &url)
            .header("x-ms-date", date)
            .header("x-ms-version", "2019-02-02")
            .header("accept", "application/json;odata=minimalmetadata")
            .header(
                "authorization",
                format!("SharedKey {DEVELOPMENT_ACCOUNT_NAME}:{signature}"),
            );
        if let Some(body) = body {
            request = request
                .header("content-type", content_type)
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{status}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Every entity of the table, as stored.
    async fn entities(&self) -> Vec<Value> {
        let page = self
            .send(reqwest::Method::GET, &format!("{}()", self.table), None)
            .await;
        page["value"].as_array().unwrap().clone()
    }

    async fn insert(&self, entity: Value) {
        self.send(reqwest::Method::POST, &self.table, Some(entity))
            .await;
    }
}

/// The entities are what Python's `azure-eventhub-checkpointstoretable` writes and reads: keys
/// `"{ns} {eh} {cg} Ownership|Checkpoint"` / partition id, string properties.
#[tokio::test]
async fn entities_have_the_python_table_store_layout() {
    let table = fresh_table().await;
    let store = store_on(&table, None);
    store
        .claim_ownership(&[Ownership::new((NS, EH, CG), "0", "owner-a")])
        .await
        .unwrap();
    store
        .update_checkpoint(&Checkpoint::new(
            (NS, EH, CG),
            "0",
            Some("4096".into()),
            Some(42),
        ))
        .await
        .unwrap();
    let mut entities = Raw::new(&table).entities().await;
    entities.sort_by_key(|e| e["PartitionKey"].as_str().unwrap().to_owned());
    let [checkpoint, ownership] = &entities[..] else {
        panic!("two entities expected: {entities:?}")
    };
    assert_eq!(
        checkpoint["PartitionKey"],
        "myns.servicebus.windows.net telemetry $Default Checkpoint"
    );
    assert_eq!(checkpoint["RowKey"], "0");
    assert_eq!(checkpoint["offset"], "4096");
    assert_eq!(checkpoint["sequencenumber"], "42");
    assert_eq!(
        ownership["PartitionKey"],
        "myns.servicebus.windows.net telemetry $Default Ownership"
    );
    assert_eq!(ownership["RowKey"], "0");
    assert_eq!(ownership["ownerid"], "owner-a");
    assert!(ownership.get("sequencenumber@odata.type").is_none());
}

/// Records a peer wrote (strings as Python does, or typed numbers) are read back, and claimed.
#[tokio::test]
async fn peer_written_entities_are_read_and_claimable() {
    let table = fresh_table().await;
    let raw = Raw::new(&table);
    let scope = format!("{NS} {EH} {CG}");
    raw.insert(
        json!({"PartitionKey": format!("{scope} Ownership"), "RowKey": "3", "ownerid": "python-1"}),
    )
    .await;
    raw.insert(json!({"PartitionKey": format!("{scope} Checkpoint"), "RowKey": "3", "offset": "77", "sequencenumber": "7"}))
        .await;
    raw.insert(
        json!({"PartitionKey": format!("{scope} Checkpoint"), "RowKey": "4",
                      "sequencenumber": "8", "sequencenumber@odata.type": "Edm.Int64"}),
    )
    .await;
    raw.insert(
        json!({"PartitionKey": format!("{scope} Checkpoint"), "RowKey": "5", "sequencenumber": 9}),
    )
    .await;

    let store = store_on(&table, None);
    let owners = store.list_ownership(&Scope::new(NS, EH, CG)).await.unwrap();
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0].owner_id.as_deref(), Some("python-1"));
    assert!(owners[0].etag.is_some() && owners[0].last_modified.is_some());
    let mut checkpoints = store
        .list_checkpoints(&Scope::new(NS, EH, CG))
        .await
        .unwrap();
    checkpoints.sort_by(|a, b| a.partition_id.cmp(&b.partition_id));
    let read: Vec<(&str, Option<&str>, Option<i64>)> = checkpoints
        .iter()
        .map(|c| {
            (
                c.partition_id.as_str(),
                c.offset.as_deref(),
                c.sequence_number,
            )
        })
        .collect();
    assert_eq!(
        read,
        [
            ("3", Some("77"), Some(7)),
            ("4", None, Some(8)),
            ("5", None, Some(9))
        ]
    );

    // Taking over the peer's partition with the etag it listed wins; the old etag then loses.
    let takeover = Ownership {
        owner_id: Some("rust-1".into()),
        ..owners[0].clone()
    };
    let won = store
        .claim_ownership(std::slice::from_ref(&takeover))
        .await
        .unwrap();
    assert_eq!(won.len(), 1);
    assert_ne!(won[0].etag, owners[0].etag);
    assert!(store.claim_ownership(&[takeover]).await.unwrap().is_empty());
}

/// Python's table store cases: claim, list, checkpoint, stale etag, in its order.
#[tokio::test]
async fn python_table_store_cases() {
    let store = store_on(&fresh_table().await, None);
    // test_claim_ownership: 3 new partitions, all won, listed with their new etags.
    let claims: Vec<Ownership> = ["0", "1", "2"]
        .iter()
        .map(|p| Ownership::new((NS, EH, CG), *p, "owner-1"))
        .collect();
    let won = store.claim_ownership(&claims).await.unwrap();
    assert_eq!(won.len(), 3);
    let listed = store.list_ownership(&Scope::new(NS, EH, CG)).await.unwrap();
    assert_eq!(listed.len(), 3);
    for o in &listed {
        let mine = won
            .iter()
            .find(|w| w.partition_id == o.partition_id)
            .unwrap();
        assert_eq!(o.etag, mine.etag, "partition {}", o.partition_id);
        assert_eq!(
            o.last_modified, mine.last_modified,
            "partition {}",
            o.partition_id
        );
    }
    // test_claim_ownership with a stale etag: another owner renews first; the stale claim loses
    // without aborting the rest of the batch (Python's store raised on the first one).
    let renewed = store.claim_ownership(&won[..1]).await.unwrap();
    assert_eq!(renewed.len(), 1);
    // The update response's ETag carries the new Timestamp: what a listing reports, no extra read.
    let listed = store.list_ownership(&Scope::new(NS, EH, CG)).await.unwrap();
    let after = listed.iter().find(|o| o.partition_id == "0").unwrap();
    assert_eq!(
        (&after.etag, after.last_modified),
        (&renewed[0].etag, renewed[0].last_modified)
    );
    assert!(renewed[0].last_modified > won[0].last_modified);
    let stale = Ownership {
        owner_id: Some("owner-2".into()),
        ..won[0].clone()
    };
    let current = Ownership {
        owner_id: Some("owner-2".into()),
        ..won[1].clone()
    };
    let result = store.claim_ownership(&[stale, current]).await.unwrap();
    assert_eq!(
        result
            .iter()
            .map(|o| o.partition_id.as_str())
            .collect::<Vec<_>>(),
        ["1"]
    );
    // test_update_checkpoint, twice, and list.
    for (offset, seq) in [("10", 1), ("20", 2)] {
        store
            .update_checkpoint(&Checkpoint::new(
                (NS, EH, CG),
                "0",
                Some(offset.into()),
                Some(seq),
            ))
            .await
            .unwrap();
    }
    let checkpoints = store
        .list_checkpoints(&Scope::new(NS, EH, CG))
        .await
        .unwrap();
    assert_eq!(checkpoints.len(), 1);
    assert_eq!(
        (
            checkpoints[0].offset.as_deref(),
            checkpoints[0].sequence_number
        ),
        (Some("20"), Some(2))
    );
}

fn methods(sent: &[Sent]) -> Vec<String> {
    sent.iter().map(|s| s.method.clone()).collect()
}

/// Claims cost one request each, a checkpoint update one (new or not), and a listing one query
/// per 1,000 entities (the Table service's page size): 0, 1 and 1,001 records take 1, 1, 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_counts() {
    let table = fresh_table().await;
    let recorder = Recorder::default();
    let mut options = TableCheckpointStoreOptions::default();
    recorder.install_in(&mut options.service.client_options);
    let store = store_on(&table, Some(options));

    assert!(store
        .list_ownership(&Scope::new(NS, EH, CG))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(methods(&recorder.take()), ["GET"]);

    let claims: Vec<Ownership> = (0..1001)
        .map(|p| Ownership::new((NS, EH, CG), p.to_string(), "o"))
        .collect();
    let won = store.claim_ownership(&claims).await.unwrap();
    assert_eq!(won.len(), 1001);
    assert_eq!(methods(&recorder.take()), vec!["POST"; 1001]);
    assert_eq!(store.claim_ownership(&won[..32]).await.unwrap().len(), 32);
    assert_eq!(methods(&recorder.take()), vec!["PUT"; 32]);

    assert_eq!(
        store
            .list_ownership(&Scope::new(NS, EH, CG))
            .await
            .unwrap()
            .len(),
        1001
    );
    assert_eq!(methods(&recorder.take()), ["GET", "GET"]);

    let checkpoint = Checkpoint::new((NS, EH, CG), "0", None, Some(1));
    store.update_checkpoint(&checkpoint).await.unwrap();
    store.update_checkpoint(&checkpoint).await.unwrap();
    assert_eq!(methods(&recorder.take()), ["PUT", "PUT"]);
    assert_eq!(
        store
            .list_checkpoints(&Scope::new(NS, EH, CG))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(methods(&recorder.take()), ["GET"]);
}

/// A missing table, a wrong key and a bad key character each give a clear typed error.
#[tokio::test]
async fn failures_are_typed_errors() {
    let store = store_on(&common::unique_container(), None);
    let err = store
        .claim_ownership(&[Ownership::new((NS, EH, CG), "0", "o")])
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.error_code()),
        (Some(404), Some("TableNotFound")),
        "{err}"
    );
    let err = store.list_checkpoints(&Scope::new(NS, EH, CG)).await;
    // Azurite answers a query on a missing table with 404 TableNotFound too.
    assert_eq!(err.unwrap_err().status(), Some(404));
    assert!(
        store.create_table_if_missing().await.unwrap(),
        "created now"
    );
    assert!(
        !store.create_table_if_missing().await.unwrap(),
        "exists now"
    );

    let endpoint = ConnectionString::parse(&connection_string())
        .unwrap()
        .table_endpoint()
        .unwrap()
        .clone();
    let wrong_key = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ==";
    let wrong = TableCheckpointStore::from_connection_string(
        &format!("AccountName={DEVELOPMENT_ACCOUNT_NAME};AccountKey={wrong_key};TableEndpoint={endpoint}"),
        "whatever",
        None,
    )
    .unwrap();
    let err = wrong
        .list_ownership(&Scope::new(NS, EH, CG))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403), "{err}");
    assert!(!format!("{err} {err:?} {wrong:?}").contains(wrong_key));

    for bad in ["a#b", "a/b", "a?b", "a\\b", "a\u{7}b"] {
        let err = store
            .update_checkpoint(&Checkpoint::new((NS, EH, CG), bad, None, Some(1)))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{bad:?}: {err}");
    }
    assert!(matches!(
        store
            .list_ownership(&Scope::new(NS, "with space", CG))
            .await,
        Err(Error::InvalidInput { .. })
    ));
}

/// Keys are sent percent-encoded: quotes, spaces, `%`, `+` and non-ASCII survive the round trip.
#[tokio::test]
async fn unusual_partition_ids_round_trip() {
    let store = store_on(&fresh_table().await, None);
    let ids = ["it's", "a b", "50%", "a+b", "ü&é", "x=y;z"];
    let claims: Vec<Ownership> = ids
        .iter()
        .map(|p| Ownership::new((NS, EH, CG), *p, "o"))
        .collect();
    let won = store.claim_ownership(&claims).await.unwrap();
    assert_eq!(won.len(), ids.len());
    // Renewing goes through the entity's address (Update Entity), where the keys are in the URL.
    assert_eq!(store.claim_ownership(&won).await.unwrap().len(), ids.len());
    for id in ids {
        store
            .update_checkpoint(&Checkpoint::new((NS, EH, CG), id, None, Some(5)))
            .await
            .unwrap();
    }
    let mut listed: Vec<String> = store
        .list_checkpoints(&Scope::new(NS, EH, CG))
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.partition_id)
        .collect();
    listed.sort();
    let mut expected: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(listed, expected);
}

/// A SAS works as the credential, in the account URL and in a connection string.
#[tokio::test]
async fn shared_access_signatures_work() {
    let table = fresh_table().await;
    let connection = ConnectionString::parse(&connection_string()).unwrap();
    let sas = common::account_sas_for(&connection, "t");
    let endpoint = connection
        .table_endpoint()
        .unwrap()
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    let stores = [
        TableCheckpointStore::new(
            &endpoint,
            &table,
            eventhub_checkpointstore::SasToken::new(&sas).unwrap(),
            None,
        )
        .unwrap(),
        TableCheckpointStore::new(
            &format!("{endpoint}?{sas}"),
            &table,
            StorageCredential::Anonymous,
            None,
        )
        .unwrap(),
        TableCheckpointStore::from_connection_string(
            &format!("TableEndpoint={endpoint};SharedAccessSignature={sas}"),
            &table,
            None,
        )
        .unwrap(),
    ];
    for (i, store) in stores.iter().enumerate() {
        let partition = i.to_string();
        let won = store
            .claim_ownership(&[Ownership::new((NS, EH, CG), &partition, "sas")])
            .await
            .unwrap();
        assert_eq!(won.len(), 1, "store {i}");
        store
            .update_checkpoint(&Checkpoint::new((NS, EH, CG), &partition, None, Some(1)))
            .await
            .unwrap();
        let signature = sas.split("sig=").nth(1).unwrap();
        assert!(
            !format!("{store:?}").contains(signature),
            "store {i} leaks its SAS"
        );
    }
    assert_eq!(
        stores[0]
            .list_ownership(&Scope::new(NS, EH, CG))
            .await
            .unwrap()
            .len(),
        3
    );
}

/// `operation_timeout` bounds the table store's calls too, and names the refused connection.
#[tokio::test]
async fn an_unreachable_endpoint_is_a_timeout_that_names_the_failure() {
    let timeout = std::time::Duration::from_secs(1);
    let port = common::unused_port();
    let store = TableCheckpointStore::new(
        &format!("http://127.0.0.1:{port}/devstoreaccount1"),
        "checkpoints",
        StorageCredential::from(
            eventhub_checkpointstore::SharedKeyCredential::new(
                DEVELOPMENT_ACCOUNT_NAME,
                DEVELOPMENT_ACCOUNT_KEY,
            )
            .unwrap(),
        ),
        Some(TableCheckpointStoreOptions {
            service: ServiceOptions {
                operation_timeout: Some(timeout),
                ..Default::default()
            },
        }),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let err = store
        .list_checkpoints(&Scope::new(NS, EH, CG))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        matches!(
            err,
            Error::Timeout {
                operation: "list_checkpoints",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("Connection refused"), "{err}");
    assert!(!format!("{err:?}").contains(DEVELOPMENT_ACCOUNT_KEY));
    // A hang guard (10x the bound): the bound shows in the error's type.
    assert!(elapsed < timeout * 10, "{elapsed:?}");
    let err = TableCheckpointStore::new(
        "http://127.0.0.1:1/devstoreaccount1",
        "checkpoints",
        StorageCredential::Anonymous,
        Some(TableCheckpointStoreOptions {
            service: ServiceOptions {
                operation_timeout: Some(std::time::Duration::ZERO),
                ..Default::default()
            },
        }),
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
}
