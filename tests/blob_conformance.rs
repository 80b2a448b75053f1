//! The shared conformance suite, run against `BlobCheckpointStore` on Azurite.

mod common;
mod conformance;

use async_trait::async_trait;
use eventhub_checkpointstore::CheckpointStore;
use std::sync::Arc;

/// One fresh container per test; every client is a separate `BlobCheckpointStore` (its own
/// connection pool), like a separate process.
struct BlobBackend {
    container: String,
}

async fn blob_backend() -> BlobBackend {
    let store = common::fresh_store(None).await;
    let container = store
        .container_url()
        .path_segments()
        .unwrap()
        .next_back()
        .unwrap()
        .to_owned();
    BlobBackend { container }
}

#[async_trait]
impl conformance::Backend for BlobBackend {
    async fn client(&self) -> Arc<dyn CheckpointStore> {
        Arc::new(common::store_on(&self.container, None))
    }
}

conformance_suite!(blob_backend());
