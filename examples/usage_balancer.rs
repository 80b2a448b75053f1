// Runs until Ctrl-C (here: scripts/azurite.sh run -- cargo run).
use eventhub_checkpointstore::balancer::{BalancerOptions, PartitionBalancer, Strategy};
use eventhub_checkpointstore::{BlobCheckpointStore, Scope};
use std::{sync::Arc, time::Duration};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = Arc::new(BlobCheckpointStore::from_connection_string(
        &std::env::var("AZURE_STORAGE_CONNECTION_STRING")?,
        "checkpoints",
        None,
    )?);
    store.create_container_if_missing().await?;
    let options = BalancerOptions {
        interval: Duration::from_secs(10),
        expiration: Duration::from_secs(30),
        strategy: Strategy::Greedy,
        ..Default::default()
    };
    let scope = Scope::new("myns.servicebus.windows.net", "telemetry", "$Default");
    let partitions = (0..32).map(|p| p.to_string());
    let balancer = PartitionBalancer::new(store, scope, "consumer-1", partitions, options)?;
    // Process what `balancer.ready()` lists, checking it at least every quarter interval.
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    balancer
        .run(stop, |cycle| println!("after this cycle: {cycle:?}"))
        .await?;
    Ok(())
}
