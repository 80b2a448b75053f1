//! From the command line to a store and a scope.

use crate::{Auth, CopyArgs, Failure, Global, Naming};
use eventhub_checkpointstore::azure_core::credentials::TokenCredential;
use eventhub_checkpointstore::{
    BlobCheckpointStore, BlobCheckpointStoreOptions, BlobNaming, CheckpointStore, SasToken, Scope,
    StorageCredential, TableCheckpointStore,
};
use std::sync::Arc;

/// The scope the command works on.
pub(crate) fn scope(global: &Global) -> Result<Scope, Failure> {
    let missing = |flag: &str| Failure::Refused(format!("{flag} is required"));
    Ok(Scope::new(
        global
            .namespace
            .clone()
            .ok_or_else(|| missing("--namespace"))?,
        global
            .eventhub
            .clone()
            .ok_or_else(|| missing("--eventhub"))?,
        global.consumer_group.clone(),
    ))
}

/// The destination scope of a copy: the source's, with what `to` changes.
pub(crate) fn destination_scope(from: &Scope, to: &CopyArgs) -> Scope {
    Scope::new(
        to.to_namespace
            .clone()
            .unwrap_or_else(|| from.fully_qualified_namespace.clone()),
        to.to_eventhub
            .clone()
            .unwrap_or_else(|| from.eventhub_name.clone()),
        to.to_consumer_group
            .clone()
            .unwrap_or_else(|| from.consumer_group.clone()),
    )
}

/// A store, blob or table.
pub(crate) enum Store {
    Blob(BlobCheckpointStore),
    Table(TableCheckpointStore),
}

impl Store {
    pub(crate) fn records(&self) -> &dyn CheckpointStore {
        match self {
            Store::Blob(store) => store,
            Store::Table(store) => store,
        }
    }

    /// Creates the container or table if it does not exist yet (a copy's or import's target).
    pub(crate) async fn create_if_missing(&self) -> Result<(), Failure> {
        match self {
            Store::Blob(store) => store.create_container_if_missing().await?,
            Store::Table(store) => store.create_table_if_missing().await?,
        };
        Ok(())
    }
}

/// The store the global options name; with `to`, the destination of a copy (what it does not
/// change is the source's).
pub(crate) fn store(global: &Global, to: Option<&CopyArgs>) -> Result<Store, Failure> {
    let naming = to.and_then(|t| t.to_naming).unwrap_or(global.naming);
    let (container, table) = match to {
        Some(CopyArgs {
            to_container: Some(c),
            ..
        }) => (Some(c.clone()), None),
        Some(CopyArgs {
            to_table: Some(t), ..
        }) => (None, Some(t.clone())),
        _ => (global.container.clone(), global.table.clone()),
    };
    let connection_string = to
        .and_then(|t| t.to_connection_string.clone())
        .or_else(|| global.connection_string.clone());
    let blob_options = || BlobCheckpointStoreOptions {
        naming: match naming {
            Naming::Lowercase => BlobNaming::Lowercase,
            Naming::Verbatim => BlobNaming::Verbatim,
        },
        ..Default::default()
    };
    Ok(match (container, table, connection_string) {
        (Some(container), None, Some(conn)) => Store::Blob(
            BlobCheckpointStore::from_connection_string(&conn, &container, Some(blob_options()))?,
        ),
        (None, Some(table), Some(conn)) => Store::Table(
            TableCheckpointStore::from_connection_string(&conn, &table, None)?,
        ),
        (Some(container), None, None) => {
            let (url, credential) = account(global)?;
            Store::Blob(BlobCheckpointStore::new(
                &url,
                &container,
                credential,
                Some(blob_options()),
            )?)
        }
        (None, Some(table), None) => {
            let (url, credential) = account(global)?;
            Store::Table(TableCheckpointStore::new(&url, &table, credential, None)?)
        }
        _ => {
            return Err(Failure::Refused(
                "name the records' container (--container) or table (--table)".into(),
            ))
        }
    })
}

/// `--account-url` with `--sas`, or with an Entra ID credential.
fn account(global: &Global) -> Result<(String, StorageCredential), Failure> {
    let url = global.account_url.clone().ok_or_else(|| {
        Failure::Refused(
            "give --connection-string (or AZURE_STORAGE_CONNECTION_STRING), or --account-url"
                .into(),
        )
    })?;
    if let Some(sas) = &global.sas {
        return Ok((url, SasToken::new(sas)?.into()));
    }
    let credential: Arc<dyn TokenCredential> = match global.auth {
        Auth::DeveloperTools => azure_identity::DeveloperToolsCredential::new(None)
            .map(|c| c as Arc<dyn TokenCredential>),
        Auth::ManagedIdentity => azure_identity::ManagedIdentityCredential::new(None)
            .map(|c| c as Arc<dyn TokenCredential>),
        Auth::WorkloadIdentity => azure_identity::WorkloadIdentityCredential::new(None)
            .map(|c| c as Arc<dyn TokenCredential>),
    }
    .map_err(|e| Failure::Refused(format!("cannot set up the Entra ID credential: {e}")))?;
    Ok((url, credential.into()))
}
