//! The local Event Hubs endpoint (`tools/eventhubs-local`) against the official Rust client
//! (`azure_messaging_eventhubs` 0.15): hub and partition properties, receiving from every start
//! position the client can ask for, live appends, and the errors for what it does not serve.

use azure_messaging_eventhubs::{OpenReceiverOptions, StartLocation, StartPosition};
use eventhub_checkpointstore_testkit::eventhubs::{self, consumer_client, create_hub, HubSpec};
use futures::StreamExt;
use std::time::Duration;

fn preloaded(partitions: usize, events: usize) -> String {
    create_hub(
        "props",
        HubSpec {
            partitions,
            preload: events,
            rate: 0.0,
            total: None,
        },
    )
}

/// The sequence numbers of the next `count` events of `partition` from `start`.
async fn receive(hub: &str, partition: &str, start: StartPosition, count: usize) -> Vec<i64> {
    let client = consumer_client(hub, "$Default").await;
    let receiver = client
        .open_receiver_on_partition(
            partition.to_owned(),
            Some(OpenReceiverOptions {
                start_position: Some(start),
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    let mut events = receiver.stream_events();
    let mut seen = Vec::new();
    while seen.len() < count {
        let event = tokio::time::timeout(Duration::from_secs(20), events.next())
            .await
            .expect("an event within 20 s")
            .expect("the stream goes on")
            .expect("an event, not an error");
        seen.push(event.sequence_number().expect("a sequence number"));
    }
    seen
}

#[tokio::test]
async fn hub_and_partition_properties() {
    let hub = preloaded(4, 10);
    let client = consumer_client(&hub, "$Default").await;
    let properties = client.get_eventhub_properties().await.unwrap();
    assert_eq!(properties.name, hub);
    assert_eq!(properties.partition_ids, ["0", "1", "2", "3"]);
    let partition = client.get_partition_properties("2").await.unwrap();
    assert_eq!(partition.last_enqueued_sequence_number, 9);
    assert_eq!(partition.beginning_sequence_number, 0);
    assert!(!partition.is_empty);
    assert_eq!(eventhubs::append(&hub, "2", 5), 14);
    let partition = client.get_partition_properties("2").await.unwrap();
    assert_eq!(partition.last_enqueued_sequence_number, 14);
}

#[tokio::test]
async fn receivers_start_where_asked() {
    let hub = preloaded(2, 20);
    let from = |location, inclusive| StartPosition {
        location,
        inclusive,
    };
    assert_eq!(
        receive(&hub, "0", from(StartLocation::Earliest, false), 3).await,
        [0, 1, 2]
    );
    assert_eq!(
        receive(&hub, "1", from(StartLocation::SequenceNumber(5), false), 2).await,
        [6, 7]
    );
    assert_eq!(
        receive(&hub, "1", from(StartLocation::SequenceNumber(5), true), 2).await,
        [5, 6]
    );
    // Offsets are what the events carry (here 1,024 per event).
    assert_eq!(
        receive(
            &hub,
            "0",
            from(StartLocation::Offset("4096".into()), false),
            1
        )
        .await,
        [5]
    );
    // Latest: only what is appended after the receiver opened.
    let latest = {
        let hub = hub.clone();
        tokio::spawn(async move { receive(&hub, "0", from(StartLocation::Latest, false), 2).await })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    eventhubs::append(&hub, "0", 2);
    assert_eq!(latest.await.unwrap(), [20, 21]);
}
