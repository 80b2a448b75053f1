//! The four store operations with an Entra ID token credential over HTTPS.
//!
//! ```text
//! # Against Azure, as whoever is signed in to `az login` / `azd auth login`:
//! cargo run --example entra_id -- https://myaccount.blob.core.windows.net
//!
//! # Against the HTTPS + OAuth Azurite of scripts/azurite.sh (what scripts/test.sh runs):
//! scripts/azurite.sh run -- cargo run --example entra_id
//! ```
//!
//! Azurite accepts any JWT-shaped token with the storage audience (it checks no signature), so
//! against it the example mints its own tokens and trusts the throwaway CA the script made for the
//! run; against Azure it uses `azure_identity::DeveloperToolsCredential`, and nothing else changes.

use eventhub_checkpointstore_testkit::entra as azurite_token;

use eventhub_checkpointstore::Scope;
use eventhub_checkpointstore::ServiceOptions;
use eventhub_checkpointstore::{
    azure_core::credentials::TokenCredential, BlobCheckpointStore, BlobCheckpointStoreOptions,
    Checkpoint, CheckpointStore, Ownership, StorageCredential,
};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (account_url, credential, options): (String, Arc<dyn TokenCredential>, _) =
        match std::env::args().nth(1) {
            Some(account_url) => (
                account_url,
                azure_identity::DeveloperToolsCredential::new(None)?,
                BlobCheckpointStoreOptions::default(),
            ),
            None => {
                let (blob_url, _, ca) = azurite_token::https_azurite();
                let options = BlobCheckpointStoreOptions {
                    service: ServiceOptions {
                        client_options: azurite_token::trusting(&ca),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                (
                    blob_url,
                    azurite_token::AzuriteTokenCredential::new(),
                    options,
                )
            }
        };
    let container = format!("entra-example-{}", std::process::id());
    let store = BlobCheckpointStore::new(
        &account_url,
        &container,
        StorageCredential::from(credential),
        Some(options),
    )?;
    println!("store: {store:?}");
    store.create_container_if_missing().await?;

    let (ns, hub, group) = ("example.servicebus.windows.net", "telemetry", "$Default");
    let won = store
        .claim_ownership(&[Ownership::new((ns, hub, group), "0", "entra-example")])
        .await?;
    println!("claimed {} partition(s) with a bearer token", won.len());
    store
        .update_checkpoint(&Checkpoint::new(
            (ns, hub, group),
            "0",
            Some("4096".into()),
            Some(42),
        ))
        .await?;
    let owners = store.list_ownership(&Scope::new(ns, hub, group)).await?;
    let checkpoints = store.list_checkpoints(&Scope::new(ns, hub, group)).await?;
    println!(
        "listed {} ownership record(s) and {} checkpoint(s): partition 0 at sequence number {:?}",
        owners.len(),
        checkpoints.len(),
        checkpoints.first().and_then(|c| c.sequence_number)
    );
    if won.len() != 1 || owners.len() != 1 || checkpoints.len() != 1 {
        return Err("the store did not read back what it wrote".into());
    }
    Ok(())
}
