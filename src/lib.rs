//! An async checkpoint store for Azure Event Hubs consumers.
//!
//! Processes that share the partitions of an event hub need one durable place to record which
//! process owns which partition and how far each partition has been processed. This crate is that
//! place: the [`CheckpointStore`] trait, and [`BlobCheckpointStore`], which keeps both in Azure Blob
//! Storage exactly as Python's `azure-eventhub-checkpointstoreblob-aio` and the .NET, Java and JS
//! stores do, so a fleet written in several languages can share one container.
//!
//! ```
//! use eventhub_checkpointstore::{BlobCheckpointStore, CheckpointStore, Scope};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // `scripts/azurite.sh run` sets this to a fresh Azurite's connection string.
//! let connection = std::env::var("AZURE_STORAGE_CONNECTION_STRING")?;
//! let store = BlobCheckpointStore::from_connection_string(&connection, "checkpoints", None)?;
//! store.create_container_if_missing().await?;
//!
//! let scope = Scope::new("myns.servicebus.windows.net", "telemetry", "$Default");
//! // Claim partition 0: conditional on nobody having claimed it yet.
//! let won = store.claim_ownership(&[scope.ownership("0", "processor-a")]).await?;
//! if let Some(mine) = won.first() {
//!     // Record progress, then renew the claim with the etag it returned.
//!     store.update_checkpoint(&scope.checkpoint("0", Some("4096".into()), Some(42))).await?;
//!     store.claim_ownership(std::slice::from_ref(mine)).await?;
//! }
//! let checkpoints = store.list_checkpoints(&scope).await?;
//! # Ok(()) }
//! ```
//!
//! With feature `table`, `TableCheckpointStore` keeps the same records in Azure Table storage,
//! laid out as Python's `azure-eventhub-checkpointstoretable` does.
//!
//! Consumers that do not use the official processor can share partitions with a
//! [`balancer::PartitionBalancer`] (fair shares, cooperative handover between live consumers,
//! expiry judged by the service's clock) and checkpoint through a
//! [`checkpointer::Checkpointer`], which writes each partition's newest position every N events
//! or T time instead of once per event.
//!
//! # Features
//!
//! | feature | what it adds |
//! |---|---|
//! | `eventhubs` | the official processor's `CheckpointStore` for every store of this crate (module `eventhubs`); needs OpenSSL's headers |
//! | `table` | `TableCheckpointStore`: the same records in Azure Table storage |
//! | `blocking` | `blocking::BlobCheckpointStore`: the operations without async |
//! | `conformance` | `conformance`: the suite any `CheckpointStore` must pass |
//! | `metrics` | counters, gauges and histograms through the `metrics` facade (module `metrics`) |
//! | `cli` | the `eh-checkpoints` command-line tool (below) |
//!
//! # Command line
//!
//! `cargo install eventhub-checkpointstore --features cli` installs `eh-checkpoints`, which lists,
//! sets, releases, copies, exports, imports and migrates the records of a consumer group, and with
//! `eventhubs` too, shows each partition's lag (`eh-checkpoints lag`). `eh-checkpoints --help`
//! lists the commands; the repository's `docs/cli.md` walks through a session.
//!
//! # Authentication
//! [`StorageCredential`]: Entra ID (any `azure_core` `TokenCredential`, e.g. from
//! `azure_identity`; needs https), an account key ([`SharedKeyCredential`]), a SAS
//! ([`SasToken`]), or a [`ConnectionString`]. Keys and signatures never appear in errors or
//! `Debug` output.
//!
//! # Logging
//! Each operation is a `tracing` span at `DEBUG` under this crate's module path; lost ownership
//! races are `DEBUG` events, failed claims and malformed records `WARN`.
//!
//! # Versions of other crates in this one's API
//! Some of this crate's API is other crates' types, so their major versions are part of its
//! semver: `azure_core` 1 (re-exported as `eventhub_checkpointstore::azure_core`: `Etag`,
//! `ClientOptions`, `TokenCredential`, `OffsetDateTime`), `azure_storage_blob` 1 (re-exported as
//! `eventhub_checkpointstore::azure_storage_blob`, for
//! [`BlobCheckpointStore::container_client`]), and with feature `eventhubs`
//! `azure_messaging_eventhubs` 0.15 (its `CheckpointStore` trait, implemented by the stores;
//! `ReceivedEventData` and `ConsumerClient` in [`processor`]). Three more appear in signatures
//! and are stable: `time` 0.3 (`OffsetDateTime`, the type `azure_core` uses), `url` 2
//! ([`BlobCheckpointStore::container_url`]) and, with `eventhubs`, `futures_core` 0.3 (the
//! `BoxFuture` of `processor::Connection::from_fn`, the `Stream` of a partition's events). A new major (or 0.x minor) of one
//! of them is a new minor of this crate while it is 0.x. Types that only grow are
//! `#[non_exhaustive]` (errors, outcomes, reports, stats); options structs have public fields
//! and a `Default`: build them with `..Default::default()`, which keeps compiling as fields are
//! added. The `DEFAULT_*` constants name today's defaults; a default may change in a minor
//! release (the CHANGELOG says so), so set the option when a value matters to you. [`Ownership`] and [`Checkpoint`] are plain records with public fields on purpose: they
//! are the records every language's store shares, fixed by that shared format, so they do not
//! grow.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

pub mod balancer;
pub mod blob;
#[cfg(feature = "blocking")]
#[cfg_attr(docsrs, doc(cfg(feature = "blocking")))]
pub mod blocking;
pub mod checkpointer;
mod client;
#[cfg(feature = "conformance")]
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
pub mod conformance;
pub mod copy;
mod error;
#[cfg(feature = "eventhubs")]
#[cfg_attr(docsrs, doc(cfg(feature = "eventhubs")))]
pub mod eventhubs;
mod memory;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
#[cfg(not(feature = "metrics"))]
mod metrics;
mod model;
mod options;
#[cfg(feature = "eventhubs")]
#[cfg_attr(docsrs, doc(cfg(feature = "eventhubs")))]
pub mod processor;
mod redact;
mod scope;
mod shell;
mod store;
mod sync;
#[cfg(feature = "table")]
#[cfg_attr(docsrs, doc(cfg(feature = "table")))]
pub mod table;

pub use blob::{BlobCheckpointStore, BlobCheckpointStoreOptions, BlobNaming};
pub use client::connection_string::{
    ConnectionString, DEVELOPMENT_ACCOUNT_KEY, DEVELOPMENT_ACCOUNT_NAME,
};
pub use client::credential::{SasToken, SharedKeyCredential, StorageCredential};
pub use error::{Error, Result};
pub use memory::InMemoryCheckpointStore;
pub use model::{Advance, Checkpoint, Ownership};
pub use options::{ServiceOptions, DEFAULT_CLAIM_CONCURRENCY, DEFAULT_OPERATION_TIMEOUT};
pub use scope::Scope;
pub use store::{CheckpointStore, ServiceTime};
#[cfg(feature = "table")]
#[cfg_attr(docsrs, doc(cfg(feature = "table")))]
pub use table::{TableCheckpointStore, TableCheckpointStoreOptions};

// The Rust snippets of README and the docs pages are compiled (and those that need no service
// run) as doc tests; they show every feature, so with all of them on (as scripts/test.sh runs).
// tests/readme.rs checks that each is a whole program a reader can paste.
#[cfg(all(
    doctest,
    feature = "eventhubs",
    feature = "blocking",
    feature = "table"
))]
mod doc_pages {
    #[doc = include_str!("../README.md")]
    struct Readme;
    #[doc = include_str!("../docs/usage.md")]
    struct Usage;
    #[doc = include_str!("../docs/official-processor.md")]
    struct OfficialProcessor;
    #[doc = include_str!("../docs/interoperability.md")]
    struct Interoperability;
    #[doc = include_str!("../docs/guarantees.md")]
    struct Guarantees;
}

/// The `azure_core` this crate is built on, for [`ServiceOptions::client_options`],
/// [`Ownership::etag`] and token credentials of the same version.
pub use azure_core;
/// The official blob crate this store is built on, for
/// [`BlobCheckpointStore::container_client`] and [`BlobCheckpointStore::blob_client`].
pub use azure_storage_blob;
