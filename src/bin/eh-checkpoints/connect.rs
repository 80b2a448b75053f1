//! From the command line to a store and a scope: where the records are is given one way only, a
//! flag always beats the environment, and every store can say where it is (never its secret).

use crate::{Auth, CopyArgs, Failure, Global, Naming};
use eventhub_checkpointstore::azure_core::credentials::TokenCredential;
use eventhub_checkpointstore::{
    BlobCheckpointStore, BlobCheckpointStoreOptions, BlobNaming, CheckpointStore, SasToken, Scope,
    ServiceOptions, StorageCredential, TableCheckpointStore, TableCheckpointStoreOptions,
};
use std::sync::Arc;

const CONNECTION_STRING_VAR: &str = "AZURE_STORAGE_CONNECTION_STRING";
const SAS_VAR: &str = "AZURE_STORAGE_SAS";

/// The scope the command works on. Without `--namespace` (or `--eventhub`), the namespace (and
/// the entity path) of the Event Hubs connection string in the environment, if any.
pub(crate) fn scope(global: &Global) -> Result<Scope, Failure> {
    let missing = |flag: &str| {
        Failure::Refused(format!(
            "{flag} is required (or an Event Hubs connection string in EVENTHUBS_CONNECTION_STRING \
             that names it)"
        ))
    };
    let (namespace, eventhub) = from_eventhubs_connection_string(global.eventhub.as_deref());
    Ok(Scope::new(
        global
            .namespace
            .clone()
            .or(namespace)
            .ok_or_else(|| missing("--namespace"))?,
        global
            .eventhub
            .clone()
            .or(eventhub)
            .ok_or_else(|| missing("--eventhub"))?,
        global.consumer_group.clone(),
    ))
}

/// The namespace and entity path of `EVENTHUBS_CONNECTION_STRING`, as far as it names them
/// (`eventhub`: the hub given on the command line, which its entity path must match).
#[cfg(feature = "eventhubs")]
fn from_eventhubs_connection_string(eventhub: Option<&str>) -> (Option<String>, Option<String>) {
    use eventhub_checkpointstore::processor::Connection;
    let Ok(text) = std::env::var(crate::eventhubs::CONNECTION_STRING_VAR) else {
        return (None, None);
    };
    // Without a hub to name, only one with an entity path parses; the namespace needs any name.
    match Connection::from_connection_string(&text, eventhub) {
        Ok(connection) => {
            let scope = connection.scope();
            (
                Some(scope.fully_qualified_namespace),
                Some(scope.eventhub_name),
            )
        }
        Err(_) => match Connection::from_connection_string(&text, Some("-")) {
            Ok(connection) => (Some(connection.scope().fully_qualified_namespace), None),
            Err(_) => (None, None),
        },
    }
}

#[cfg(not(feature = "eventhubs"))]
fn from_eventhubs_connection_string(_: Option<&str>) -> (Option<String>, Option<String>) {
    (None, None)
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

    /// Where the records are, for people: never a key or a signature (the URLs carry none).
    pub(crate) fn describe(&self) -> String {
        match self {
            Store::Blob(store) => {
                let naming = match store.naming() {
                    BlobNaming::Verbatim => "verbatim",
                    _ => "lower-case",
                };
                format!("container {} ({naming} names)", store.container_url())
            }
            Store::Table(store) => format!("table {}", store.table_url()),
        }
    }

    /// The same store and layout: the same records.
    pub(crate) fn same_as(&self, other: &Store) -> bool {
        match (self, other) {
            (Store::Blob(a), Store::Blob(b)) => {
                a.container_url() == b.container_url() && a.naming() == b.naming()
            }
            (Store::Table(a), Store::Table(b)) => a.table_url() == b.table_url(),
            _ => false,
        }
    }

    /// Whether the container or table exists.
    pub(crate) async fn exists(&self) -> Result<bool, Failure> {
        Ok(match self {
            Store::Blob(store) => store.container_exists().await?,
            Store::Table(store) => store.table_exists().await?,
        })
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

/// How to reach the account.
enum Account {
    ConnectionString(String),
    Url {
        url: String,
        credential: StorageCredential,
    },
}

/// The store the global options name.
pub(crate) fn source(global: &Global) -> Result<Store, Failure> {
    let account = account(global)?;
    open(
        &account,
        global.container.clone(),
        global.table.clone(),
        global.naming,
        global,
    )
}

/// The destination of a copy: what `to` does not change is the source's.
pub(crate) fn destination(global: &Global, to: &CopyArgs) -> Result<Store, Failure> {
    let account = match &to.to_connection_string {
        Some(conn) => Account::ConnectionString(conn.clone()),
        None => account(global)?,
    };
    let (container, table) = match (&to.to_container, &to.to_table) {
        (Some(c), _) => (Some(c.clone()), None),
        (None, Some(t)) => (None, Some(t.clone())),
        (None, None) => (global.container.clone(), global.table.clone()),
    };
    let naming = to.to_naming.unwrap_or(global.naming);
    open(&account, container, table, naming, global)
}

/// Where the records' account is: given one way only, a flag before the environment.
fn account(global: &Global) -> Result<Account, Failure> {
    let usage = |message: &str| Err(Failure::Refused(message.to_owned()));
    match (&global.connection_string, &global.account_url) {
        (Some(_), Some(_)) => {
            usage("--connection-string and --account-url both say where the records are: give one")
        }
        (Some(conn), None) => {
            if global.sas.is_some() || global.auth.is_some() {
                return usage("--sas and --auth go with --account-url, not --connection-string");
            }
            Ok(Account::ConnectionString(conn.clone()))
        }
        (None, Some(url)) => {
            let credential = match (&global.sas, global.auth) {
                (Some(_), Some(_)) => {
                    return usage("--sas and --auth both give a credential: give one")
                }
                (Some(sas), None) => SasToken::new(sas)?.into(),
                (None, Some(auth)) => entra_id(auth)?,
                // The environment's SAS only where no flag says otherwise.
                (None, None) => match env(SAS_VAR) {
                    Some(sas) => SasToken::new(&sas)?.into(),
                    None => entra_id(Auth::DeveloperTools)?,
                },
            };
            Ok(Account::Url {
                url: url.clone(),
                credential,
            })
        }
        (None, None) => {
            if global.sas.is_some() || global.auth.is_some() {
                return usage("--sas and --auth go with --account-url");
            }
            match env(CONNECTION_STRING_VAR) {
                Some(conn) => Ok(Account::ConnectionString(conn)),
                None => usage(
                    "say where the records are: --connection-string (or AZURE_STORAGE_CONNECTION_STRING), or --account-url",
                ),
            }
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn open(
    account: &Account,
    container: Option<String>,
    table: Option<String>,
    naming: Naming,
    global: &Global,
) -> Result<Store, Failure> {
    let service = ServiceOptions {
        operation_timeout: Some(global.timeout),
        ..Default::default()
    };
    let blob_options = BlobCheckpointStoreOptions {
        naming: match naming {
            Naming::Lowercase => BlobNaming::Lowercase,
            Naming::Verbatim => BlobNaming::Verbatim,
        },
        service: service.clone(),
        ..Default::default()
    };
    let table_options = TableCheckpointStoreOptions { service };
    Ok(match (container, table, account) {
        (Some(container), None, Account::ConnectionString(conn)) => Store::Blob(
            BlobCheckpointStore::from_connection_string(conn, &container, Some(blob_options))?,
        ),
        (None, Some(table), Account::ConnectionString(conn)) => Store::Table(
            TableCheckpointStore::from_connection_string(conn, &table, Some(table_options))?,
        ),
        (Some(container), None, Account::Url { url, credential }) => Store::Blob(
            BlobCheckpointStore::new(url, &container, credential.clone(), Some(blob_options))?,
        ),
        (None, Some(table), Account::Url { url, credential }) => Store::Table(
            TableCheckpointStore::new(url, &table, credential.clone(), Some(table_options))?,
        ),
        _ => {
            return Err(Failure::Refused(
                "name the records' container (--container) or table (--table)".into(),
            ))
        }
    })
}

fn entra_id(auth: Auth) -> Result<StorageCredential, Failure> {
    Ok(token_credential(auth)?.into())
}

/// The Entra ID credential `auth` names, for the store or for Event Hubs.
pub(crate) fn token_credential(auth: Auth) -> Result<Arc<dyn TokenCredential>, Failure> {
    match auth {
        Auth::DeveloperTools => azure_identity::DeveloperToolsCredential::new(None)
            .map(|c| c as Arc<dyn TokenCredential>),
        Auth::ManagedIdentity => azure_identity::ManagedIdentityCredential::new(None)
            .map(|c| c as Arc<dyn TokenCredential>),
        Auth::WorkloadIdentity => azure_identity::WorkloadIdentityCredential::new(None)
            .map(|c| c as Arc<dyn TokenCredential>),
    }
    .map_err(|e| Failure::Refused(format!("cannot set up the Entra ID credential: {e}")))
}
