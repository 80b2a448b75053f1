//! Bad input, as property tests.
//!
//! Guarantees checked: no input makes the store panic; every input is either refused with a typed
//! error before any request, or works (what was written reads back the same); a refusal never
//! echoes an account key.

use eventhub_checkpointstore_testkit as common;

use common::Recorder;
use eventhub_checkpointstore::{
    azure_core::http::Etag, BlobCheckpointStore, Checkpoint, CheckpointStore, ConnectionString,
    Error, Ownership, SasToken, SharedKeyCredential,
};
use proptest::prelude::*;

/// Strings of the kinds that break naive code: empty, separators, upper case, non-ASCII, control
/// characters, percent signs, and very long.
fn nasty() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-zA-Z0-9$._-]{1,12}",
        "[a-z0-9/ ]{1,8}",
        "[A-Z]{1,8}",
        "\\PC{1,16}",
        ".{0,8}",
        "[\\x00-\\x1f\\x7f%?#&=+;]{1,6}",
        "[a-z]{1200,1300}",
        any::<String>(),
    ]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The parser never panics, and a refusal never echoes the key.
    #[test]
    fn connection_strings_parse_or_fail_typed(
        pairs in proptest::collection::vec(
            (
                prop_oneof![
                    Just("AccountName"), Just("AccountKey"), Just("accountkey"),
                    Just("BlobEndpoint"), Just("TableEndpoint"), Just("SharedAccessSignature"),
                    Just("DefaultEndpointsProtocol"), Just("EndpointSuffix"),
                    Just("UseDevelopmentStorage"), Just("DevelopmentStorageProxyUri"), Just(""),
                    Just("Unknown"),
                ],
                nasty(),
            ),
            0..6,
        ),
        separator in prop_oneof![Just(";"), Just(";;"), Just(" ; ")],
        secret in "[A-Za-z0-9+/]{20,40}={0,2}",
    ) {
        let text: Vec<String> = pairs
            .iter()
            .map(|(k, v)| if *k == "AccountKey" { format!("{k}={secret}") } else { format!("{k}={v}") })
            .collect();
        let text = text.join(separator);
        match ConnectionString::parse(&text) {
            Ok(parsed) => {
                let shown = format!("{parsed:?}");
                prop_assert!(!shown.contains(&secret), "{}", shown)
            }
            Err(err) => {
                prop_assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
                prop_assert!(!format!("{err} {err:?}").contains(&secret), "{err:?}");
            }
        }
        // Whatever parsed must also build a store or fail typed.
        if let Err(err) = BlobCheckpointStore::from_connection_string(&text, "checkpoints", None) {
            prop_assert!(
                matches!(err, Error::InvalidInput { .. }),
                "{err:?}"
            );
            prop_assert!(!format!("{err} {err:?}").contains(&secret), "{err:?}");
        }
    }

    /// Arbitrary text anywhere in a connection string, not only in values.
    #[test]
    fn arbitrary_text_never_panics_the_parser(text in any::<String>()) {
        let _ = ConnectionString::parse(&text);
    }

    /// Account URLs, container (or table) names, keys and SAS tokens: a store or a typed refusal,
    /// for both stores.
    #[test]
    fn constructors_refuse_bad_arguments_typed(
        url in prop_oneof![nasty(), "https?://[a-z0-9.:\\[\\]@%/?=&]{0,30}"],
        container in nasty(),
        account in nasty(),
        key in nasty(),
        sas in nasty(),
    ) {
        let results = [
            SharedKeyCredential::new(account.clone(), key.clone())
                .and_then(|k| BlobCheckpointStore::new(&url, &container, k, None)),
            SasToken::new(&sas).and_then(|s| BlobCheckpointStore::new(&url, &container, s, None)),
        ];
        #[cfg(feature = "table")]
        let tables = {
            use eventhub_checkpointstore::TableCheckpointStore;
            [
                SharedKeyCredential::new(account.clone(), key.clone())
                    .and_then(|k| TableCheckpointStore::new(&url, &container, k, None)),
                SasToken::new(&sas).and_then(|s| TableCheckpointStore::new(&url, &container, s, None)),
            ]
            .map(|r| r.map(|store| format!("{store:?}")))
        };
        #[cfg(not(feature = "table"))]
        let tables: [Result<String, Error>; 0] = [];
        let results = results.map(|r| r.map(|store| format!("{store:?}")));
        for result in results.into_iter().chain(tables) {
            match result {
                Ok(shown) => {
                    prop_assert!(key.len() < 4 || !shown.contains(&key), "{shown}");
                }
                Err(err) => prop_assert!(
                    matches!(err, Error::InvalidInput { .. }),
                    "{err:?}"
                ),
            }
        }
    }
}

/// A store under test with a recorder of every request it sends, and how it lists a partition id
/// it was given (the blob store's default layout lower-cases names; the table store keeps them).
struct Subject {
    store: Box<dyn CheckpointStore>,
    sent: Recorder,
    listed_as: fn(&str) -> String,
}

impl Subject {
    /// Whether `err` is a refusal made before any request: typed, and nothing was sent.
    fn refused_before_any_request(&self, err: &Error) -> bool {
        matches!(err, Error::InvalidInput { .. }) && self.sent.take().is_empty()
    }
}

async fn blob_subject() -> Subject {
    let sent = Recorder::default();
    let container = common::fresh_container().await;
    let store = common::store_on(&container, Some(sent.install(Default::default())));
    Subject {
        store: Box::new(store),
        sent,
        listed_as: str::to_lowercase,
    }
}

#[cfg(feature = "table")]
async fn table_subject() -> Subject {
    use eventhub_checkpointstore::{TableCheckpointStore, TableCheckpointStoreOptions};
    let sent = Recorder::default();
    let mut options = TableCheckpointStoreOptions::default();
    sent.install_in(&mut options.service.client_options);
    let store = TableCheckpointStore::from_connection_string(
        &common::connection_string(),
        &common::unique_container(),
        Some(options),
    )
    .unwrap();
    assert!(store.create_table_if_missing().await.unwrap());
    Subject {
        store: Box::new(store),
        sent,
        listed_as: str::to_owned,
    }
}

/// A name: mostly of the kind Event Hubs uses (so most cases get past validation and make
/// requests), otherwise anything [`nasty`].
fn name() -> impl Strategy<Value = String> {
    prop_oneof![4 => "[a-zA-Z0-9$._-]{1,12}", 1 => nasty()]
}

/// Names, owner ids, offsets, sequence numbers and etags against the real service: refused with
/// `InvalidInput` before any request (none recorded), or written and read back exactly. Both
/// outcomes must occur often, or the property proved little.
fn records_round_trip_or_are_refused<F: std::future::Future<Output = Subject>>(subject: fn() -> F) {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    let (written, refused) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let count = |result: &Result<bool, TestCaseError>| match result {
        Ok(true) => written.fetch_add(1, Relaxed),
        Ok(false) => refused.fetch_add(1, Relaxed),
        Err(_) => 0,
    };
    // Each case makes requests to Azurite: fewer cases than the pure properties.
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 128,
        ..ProptestConfig::default()
    });
    let strategy = (
        (name(), name(), name(), name()),
        (nasty(), nasty(), any::<i64>(), nasty()),
    );
    runner
        .run(
            &strategy,
            |((namespace, hub, group, partition), (owner, offset, sequence_number, etag))| {
                runtime().block_on(async {
                    // Storage of its own per case: names of different cases may meet once
                    // lower-cased.
                    let subject = subject().await;
                    subject.sent.take();
                    let claim = Ownership::new((&namespace, &hub, &group), &partition, &owner);
                    let result = round_trip_ownership(&subject, &claim, &etag).await;
                    count(&result);
                    result?;

                    let checkpoint = Checkpoint::new(
                        (&namespace, &hub, &group),
                        &partition,
                        Some(offset),
                        Some(sequence_number),
                    );
                    let result = round_trip_checkpoint(&subject, &checkpoint).await;
                    count(&result);
                    result.map(drop)
                })
            },
        )
        .unwrap();
    let (written, refused) = (written.into_inner(), refused.into_inner());
    println!("{written} records written and read back, {refused} refused");
    assert!(
        written >= 32 && refused >= 32,
        "{written} written, {refused} refused"
    );
}

#[test]
fn blob_records_round_trip_or_are_refused() {
    records_round_trip_or_are_refused(blob_subject);
}

#[cfg(feature = "table")]
#[test]
fn table_records_round_trip_or_are_refused() {
    records_round_trip_or_are_refused(table_subject);
}

/// Claims a new record and reads it back, then claims it with `etag`: `Ok(true)` when written,
/// `Ok(false)` when refused before any request.
async fn round_trip_ownership(
    subject: &Subject,
    claim: &Ownership,
    etag: &str,
) -> Result<bool, TestCaseError> {
    let store = &subject.store;
    let won = match store.claim_ownership(std::slice::from_ref(claim)).await {
        Err(err) => {
            prop_assert!(subject.refused_before_any_request(&err), "{err:?}");
            return Ok(false);
        }
        Ok(won) => won,
    };
    prop_assert_eq!(won.len(), 1, "a new record is won");
    let listed = store.list_ownership(&claim.scope).await.unwrap();
    let partition = (subject.listed_as)(&claim.partition_id);
    let mine = listed.iter().find(|o| o.partition_id == partition);
    let mine = mine.expect("the claimed record is listed");
    let expected_owner = claim.owner_id.clone().filter(|o| !o.is_empty());
    prop_assert_eq!(&mine.owner_id, &expected_owner);
    prop_assert_eq!(&mine.etag, &won[0].etag);

    // A claim conditioned on an arbitrary etag: refused before any request, or not won.
    let stale = Ownership {
        etag: Some(Etag::from(etag.to_owned())),
        ..claim.clone()
    };
    subject.sent.take();
    match store.claim_ownership(&[stale]).await {
        Ok(won) => prop_assert!(won.is_empty(), "won with etag {:?}", etag),
        Err(err) => prop_assert!(subject.refused_before_any_request(&err), "{err:?}"),
    }
    Ok(true)
}

/// Writes a checkpoint and reads it back: `Ok(true)` when written, `Ok(false)` when refused before
/// any request.
async fn round_trip_checkpoint(
    subject: &Subject,
    checkpoint: &Checkpoint,
) -> Result<bool, TestCaseError> {
    let store = &subject.store;
    subject.sent.take();
    if let Err(err) = store.update_checkpoint(checkpoint).await {
        prop_assert!(subject.refused_before_any_request(&err), "{err:?}");
        return Ok(false);
    }
    let listed = store.list_checkpoints(&checkpoint.scope).await.unwrap();
    let partition = (subject.listed_as)(&checkpoint.partition_id);
    let mine = listed.iter().find(|c| c.partition_id == partition);
    let mine = mine.expect("the checkpoint is listed");
    prop_assert_eq!(mine.sequence_number, checkpoint.sequence_number);
    prop_assert_eq!(
        mine.offset.as_deref(),
        checkpoint.offset.as_deref().filter(|o| !o.is_empty())
    );
    Ok(true)
}
