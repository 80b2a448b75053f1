//! The shared conformance suite, run against `BlobCheckpointStore` on Azurite.

use eventhub_checkpointstore_testkit as common;

use async_trait::async_trait;
use eventhub_checkpointstore::azure_core::http::Etag;
use eventhub_checkpointstore::conformance;
use eventhub_checkpointstore::CheckpointStore;
use std::sync::Arc;

/// One fresh container per test; every client is a separate `BlobCheckpointStore` (its own
/// connection pool), like a separate process.
struct BlobBackend {
    container: String,
}

async fn blob_backend() -> BlobBackend {
    BlobBackend {
        container: common::fresh_container().await,
    }
}

#[async_trait]
impl conformance::Fixture for BlobBackend {
    async fn client(&self) -> Arc<dyn CheckpointStore> {
        Arc::new(common::store_on(&self.container, None))
    }

    /// Besides `*`: a comma, legal inside an entity tag, which the service reads as a list
    /// (found by tests/bad_input.rs's generated etags: Azurite answered 400).
    fn invalid_etags(&self) -> Vec<Etag> {
        vec![
            Etag::from("*"),
            Etag::from("\"*\""),
            Etag::from(""),
            Etag::from(","),
            Etag::from("\"0x8D1,0x8D2\""),
        ]
    }
}

eventhub_checkpointstore::conformance_suite!(blob_backend());
