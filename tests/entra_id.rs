//! Entra ID end to end: the stores over HTTPS against an Azurite that takes OAuth bearer tokens
//! (`scripts/azurite.sh` starts it with a certificate from a throwaway CA), trusting that CA
//! through the stores' `client_options` transport.
//!
//! Checked, for the blob and the table store: all four operations through a `TokenCredential`;
//! the credential is asked for the storage scope and its token is cached, then renewed before it
//! goes stale (Azurite refuses an expired token, which the negative case shows); a token for
//! another audience fails with a typed 403 that names the cause.

use eventhub_checkpointstore::Scope;
use eventhub_checkpointstore::ServiceOptions;
use eventhub_checkpointstore_testkit as common;

use common::entra::{https_azurite, trusting, AzuriteTokenCredential, STORAGE_AUDIENCE};
use eventhub_checkpointstore::azure_core::{credentials::TokenCredential, time::Duration};
use eventhub_checkpointstore::{
    BlobCheckpointStore, BlobCheckpointStoreOptions, Checkpoint, CheckpointStore, Error, Ownership,
    StorageCredential,
};
use std::sync::Arc;

const NS: &str = "entra.servicebus.windows.net";
const EH: &str = "telemetry";
const CG: &str = "$Default";
const SCOPE: &str = "https://storage.azure.com/.default";

fn credential_of(token: &Arc<AzuriteTokenCredential>) -> StorageCredential {
    let dynamic: Arc<dyn TokenCredential> = token.clone();
    dynamic.into()
}

fn blob_store(token: &Arc<AzuriteTokenCredential>) -> BlobCheckpointStore {
    let (blob_url, _, ca) = https_azurite();
    BlobCheckpointStore::new(
        &blob_url,
        &common::unique_container(),
        credential_of(token),
        Some(BlobCheckpointStoreOptions {
            service: ServiceOptions {
                client_options: trusting(&ca),
                ..Default::default()
            },
            ..Default::default()
        }),
    )
    .unwrap()
}

#[cfg(feature = "table")]
fn table_store(
    token: &Arc<AzuriteTokenCredential>,
) -> eventhub_checkpointstore::TableCheckpointStore {
    let (_, table_url, ca) = https_azurite();
    eventhub_checkpointstore::TableCheckpointStore::new(
        &table_url,
        &common::unique_container(),
        credential_of(token),
        Some(eventhub_checkpointstore::TableCheckpointStoreOptions {
            service: ServiceOptions {
                client_options: trusting(&ca),
                ..Default::default()
            },
        }),
    )
    .unwrap()
}

/// All four operations, each checked against what the store then reports.
async fn four_operations(store: &dyn CheckpointStore) {
    let won = store
        .claim_ownership(&[Ownership::new((NS, EH, CG), "0", "processor-a")])
        .await
        .expect("claim over https with a bearer token");
    assert_eq!(won.len(), 1);
    let listed = store.list_ownership(&Scope::new(NS, EH, CG)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].owner_id.as_deref(), Some("processor-a"));
    assert_eq!(listed[0].etag, won[0].etag);
    store
        .update_checkpoint(&Checkpoint::new(
            (NS, EH, CG),
            "0",
            Some("4096".into()),
            Some(42),
        ))
        .await
        .unwrap();
    let checkpoints = store
        .list_checkpoints(&Scope::new(NS, EH, CG))
        .await
        .unwrap();
    assert_eq!(
        checkpoints,
        [Checkpoint::new(
            (NS, EH, CG),
            "0",
            Some("4096".into()),
            Some(42)
        )]
    );
}

fn assert_storage_scope_only(token: &AzuriteTokenCredential) {
    let scopes = token.scopes();
    assert!(!scopes.is_empty());
    assert!(scopes.iter().all(|s| s == &[SCOPE]), "asked for {scopes:?}");
}

fn assert_wrong_audience(err: Error) {
    match &err {
        Error::Service {
            status: 403,
            error_code: Some(code),
            message,
        } => {
            assert_eq!(code, "AuthenticationFailed");
            assert!(message.contains("audience"), "the cause is named: {err}");
        }
        other => panic!("expected a 403 for the wrong audience, got {other:?}"),
    }
}

#[tokio::test]
async fn blob_store_all_operations_with_a_bearer_token_over_tls() {
    let token = AzuriteTokenCredential::new();
    let store = blob_store(&token);
    assert!(store.create_container_if_missing().await.unwrap());
    four_operations(&store).await;
    assert_storage_scope_only(&token);
    // One token, cached across every request (6 here).
    assert_eq!(token.calls(), 1);
}

#[tokio::test]
async fn blob_store_renews_a_token_before_it_goes_stale() {
    // Tokens valid for 2 s: each is inside azure_core's 5-minute refresh window at once, and stale
    // by the second operation. Azurite refuses a stale token (see below), so the second operation
    // succeeding means a new one was fetched for it.
    let token = AzuriteTokenCredential::with(STORAGE_AUDIENCE, Duration::seconds(2));
    let store = blob_store(&token);
    store.create_container_if_missing().await.unwrap();
    let calls = token.calls();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    four_operations(&store).await;
    assert!(
        token.calls() > calls,
        "a new token after the old one expired"
    );

    // A token that stays valid past the refresh window is fetched once and reused; inside the
    // window (5 min before its expiry) it is renewed before it is sent again.
    let token = AzuriteTokenCredential::with(
        STORAGE_AUDIENCE,
        Duration::minutes(5) + Duration::seconds(2),
    );
    let store = blob_store(&token);
    store.create_container_if_missing().await.unwrap();
    store.list_ownership(&Scope::new(NS, EH, CG)).await.unwrap();
    assert_eq!(token.calls(), 1, "cached while outside the refresh window");
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    store.list_ownership(&Scope::new(NS, EH, CG)).await.unwrap();
    assert_eq!(token.calls(), 2, "renewed inside the refresh window");
    store
        .list_checkpoints(&Scope::new(NS, EH, CG))
        .await
        .unwrap();
    assert_eq!(token.calls(), 2, "the renewed token is cached again");

    // The negative case: a credential that only has stale tokens is refused.
    let stale = AzuriteTokenCredential::with(STORAGE_AUDIENCE, Duration::seconds(-30));
    let err = blob_store(&stale)
        .create_container_if_missing()
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403), "{err}");
}

#[tokio::test]
async fn blob_store_token_for_another_audience_is_a_typed_403_naming_the_cause() {
    let token = AzuriteTokenCredential::with("https://vault.azure.net", Duration::hours(1));
    let store = blob_store(&token);
    assert_wrong_audience(store.create_container_if_missing().await.unwrap_err());
    assert_wrong_audience(
        store
            .list_ownership(&Scope::new(NS, EH, CG))
            .await
            .unwrap_err(),
    );
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_transport_error() {
    // Without the test CA, the server's certificate cannot be verified.
    let (blob_url, _, _) = https_azurite();
    let token = AzuriteTokenCredential::new();
    let store = BlobCheckpointStore::new(
        &blob_url,
        &common::unique_container(),
        credential_of(&token),
        Some(BlobCheckpointStoreOptions {
            service: ServiceOptions {
                operation_timeout: Some(std::time::Duration::from_secs(10)),
                client_options: eventhub_checkpointstore::azure_core::http::ClientOptions {
                    retry: eventhub_checkpointstore::azure_core::http::RetryOptions::none(),
                    ..Default::default()
                },
                ..Default::default()
            },
            ..Default::default()
        }),
    )
    .unwrap();
    let err = store
        .list_ownership(&Scope::new(NS, EH, CG))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Transport { message } if message.to_lowercase().contains("certificate")),
        "{err:?}"
    );
}

#[cfg(feature = "table")]
#[tokio::test]
async fn table_store_all_operations_with_a_bearer_token_over_tls() {
    let token = AzuriteTokenCredential::new();
    let store = table_store(&token);
    assert!(store.create_table_if_missing().await.unwrap());
    four_operations(&store).await;
    assert_storage_scope_only(&token);
    assert_eq!(token.calls(), 1);
}

#[cfg(feature = "table")]
#[tokio::test]
async fn table_store_renews_a_token_before_it_goes_stale() {
    let token = AzuriteTokenCredential::with(STORAGE_AUDIENCE, Duration::seconds(2));
    let store = table_store(&token);
    store.create_table_if_missing().await.unwrap();
    let calls = token.calls();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    four_operations(&store).await;
    assert!(
        token.calls() > calls,
        "a new token after the old one expired"
    );

    let stale = AzuriteTokenCredential::with(STORAGE_AUDIENCE, Duration::seconds(-30));
    let err = table_store(&stale)
        .create_table_if_missing()
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403), "{err}");
}

#[cfg(feature = "table")]
#[tokio::test]
async fn table_store_token_for_another_audience_is_a_typed_403_naming_the_cause() {
    let token = AzuriteTokenCredential::with("https://vault.azure.net", Duration::hours(1));
    let store = table_store(&token);
    assert_wrong_audience(store.create_table_if_missing().await.unwrap_err());
    assert_wrong_audience(
        store
            .list_checkpoints(&Scope::new(NS, EH, CG))
            .await
            .unwrap_err(),
    );
}
