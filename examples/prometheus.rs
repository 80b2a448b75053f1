//! The crate's metrics (feature `metrics`) exported for Prometheus: a balancer and a checkpointer
//! on a `BlobCheckpointStore` run a few cycles, then the figures are printed in Prometheus' text
//! format, as a `/metrics` endpoint would serve them.
//!
//! ```sh
//! scripts/azurite.sh run -- cargo run --example prometheus --features metrics
//! ```
//!
//! `metrics-exporter-prometheus` is built here without its HTTP listener, and the text is
//! rendered by hand; in a service, enable its `http-listener` feature and call
//! `PrometheusBuilder::new().with_http_listener(([0, 0, 0, 0], 9000)).install()` instead, or
//! serve `handle.render()` from the web framework the service already has.

use eventhub_checkpointstore::balancer::{BalancerOptions, PartitionBalancer};
use eventhub_checkpointstore::checkpointer::{Checkpointer, CheckpointerOptions};
use eventhub_checkpointstore::{BlobCheckpointStore, CheckpointStore, Scope};
use metrics_exporter_prometheus::PrometheusBuilder;
use std::{error::Error, num::NonZeroU64, sync::Arc, time::Duration};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let handle = PrometheusBuilder::new().install_recorder()?;
    eventhub_checkpointstore::metrics::describe();

    let connection = std::env::var("AZURE_STORAGE_CONNECTION_STRING")
        .map_err(|_| "set AZURE_STORAGE_CONNECTION_STRING (scripts/azurite.sh run sets it)")?;
    let store = BlobCheckpointStore::from_connection_string(&connection, "metrics-example", None)?;
    store.create_container_if_missing().await?;
    let store: Arc<dyn CheckpointStore> = Arc::new(store);
    let scope = Scope::new("myns.servicebus.windows.net", "telemetry", "$Default");

    let checkpointer = Arc::new(Checkpointer::new(
        store.clone(),
        scope.clone(),
        CheckpointerOptions {
            every_events: NonZeroU64::new(50),
            every: None,
        },
    )?);
    let balancer = PartitionBalancer::new(
        store.clone(),
        scope.clone(),
        "consumer-1",
        (0..4).map(|p| p.to_string()),
        BalancerOptions {
            interval: Duration::from_secs(10),
            ..Default::default()
        },
    )?
    .with_checkpointer(checkpointer.clone());

    // A few cycles, and 200 events processed on each partition ready.
    for _ in 0..3 {
        balancer.cycle().await?;
    }
    for partition in balancer.ready() {
        for seq in 0..200 {
            checkpointer
                .record(&partition, Some((seq * 1024).to_string()), Some(seq))
                .await?;
        }
    }
    balancer.relinquish().await?;

    // What a Prometheus scrape of this process would read.
    print!("{}", handle.render());
    Ok(())
}
