//! Expiry judged by the storage service's clock, when that clock differs from this host's: a
//! proxy in front of Azurite shifts every time the service reports (the `Date` header, the
//! records' modification times in headers and in listing bodies, the Table service's timestamps
//! and the times its ETags carry) by 5 minutes either way, as if the service's clock ran ahead of
//! or behind this host's. Consumers judging by this host's clock would then take live partitions
//! (service behind: every claim looks 5 minutes old) or wait minutes for dead ones (service ahead:
//! every claim looks fresh). The balancer does neither, for the blob and the table store.

use eventhub_checkpointstore_testkit as common;

use common::proxy::FaultProxy;
use eventhub_checkpointstore::{
    balancer::{BalancerOptions, PartitionBalancer, Strategy},
    CheckpointStore, Scope,
};
use std::{sync::Arc, time::Duration};

const EXPIRATION: Duration = Duration::from_secs(3);

/// A blob or a table store behind a proxy whose service clock runs `minutes` off.
async fn shifted(table: bool, minutes: i64) -> (FaultProxy, Arc<dyn CheckpointStore>) {
    let (proxy, store): (FaultProxy, Arc<dyn CheckpointStore>) = if table {
        let (proxy, store) = common::proxied_table_store(None).await;
        (proxy, Arc::new(store))
    } else {
        let (proxy, store) = common::proxied_blob_store(None).await;
        (proxy, Arc::new(store))
    };
    proxy.shift_clock(time::Duration::minutes(minutes));
    (proxy, store)
}

fn consumer(store: &Arc<dyn CheckpointStore>, name: &str) -> PartitionBalancer {
    PartitionBalancer::new(
        store.clone(),
        Scope::new("clock.servicebus.windows.net", "hub", "$Default"),
        name,
        ["0"],
        BalancerOptions {
            interval: Duration::from_millis(500),
            expiration: EXPIRATION,
            strategy: Strategy::Greedy,
            ..Default::default()
        },
    )
    .unwrap()
}

async fn neither_takes_live_partitions_nor_waits_for_dead_ones(table: bool, minutes: i64) {
    let what = format!(
        "{} store, service clock {minutes:+} min",
        if table { "table" } else { "blob" }
    );
    let (proxy, store) = shifted(table, minutes).await;
    let owner = consumer(&store, "owner");
    let other = consumer(&store, "other");
    assert_eq!(owner.cycle().await.unwrap().len(), 1, "{what}");
    let listed = store
        .list_ownership(&Scope::new(
            "clock.servicebus.windows.net",
            "hub",
            "$Default",
        ))
        .await
        .unwrap();
    let skew = listed[0].last_modified.unwrap() - time::OffsetDateTime::now_utc();
    assert!(
        (skew.whole_minutes() - minutes).abs() <= 1,
        "{what}: the proxy shifts the service's times ({skew})"
    );

    // A live claim, renewed every round: never taken.
    for _ in 0..3 {
        assert!(
            other.cycle().await.unwrap().is_empty(),
            "{what}: took a partition whose owner renewed it just now"
        );
        assert_eq!(
            owner.cycle().await.unwrap().len(),
            1,
            "{what}: the owner lost it"
        );
    }

    // The owner dies (it never cycles again): its claim expires 3 s after its last renewal, by
    // the service's clock. The deadline is generous; judged by this host's clock it would come
    // 5 minutes late, or never.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while other.cycle().await.unwrap().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: a claim 3 s past its expiry was not taken within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        other.ready().contains("0"),
        "{what}: an expired partition is ready at once"
    );
    drop(proxy);
}

#[tokio::test]
async fn blob_service_clock_ahead() {
    neither_takes_live_partitions_nor_waits_for_dead_ones(false, 5).await;
}

#[tokio::test]
async fn blob_service_clock_behind() {
    neither_takes_live_partitions_nor_waits_for_dead_ones(false, -5).await;
}

#[tokio::test]
async fn table_service_clock_ahead() {
    neither_takes_live_partitions_nor_waits_for_dead_ones(true, 5).await;
}

#[tokio::test]
async fn table_service_clock_behind() {
    neither_takes_live_partitions_nor_waits_for_dead_ones(true, -5).await;
}
