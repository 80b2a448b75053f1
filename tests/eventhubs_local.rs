//! The local Event Hubs endpoint (`tools/eventhubs-local`) against the official Rust client
//! (`azure_messaging_eventhubs` 0.15): hub and partition properties, receiving from every start
//! position the client can ask for, live appends, and the errors for what it does not serve;
//! then, with the AMQP client under it, the service's arbitration between receivers (epochs)
//! and the faults a test can inject through the control plane.

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
    receive_in("$Default", hub, partition, start, count).await
}

/// [`receive`] as consumer group `group`.
async fn receive_in(
    group: &str,
    hub: &str,
    partition: &str,
    start: StartPosition,
    count: usize,
) -> Vec<i64> {
    let client = consumer_client(hub, group).await;
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
    // Latest: only what is appended after the receiver opened (the only one of its group).
    let latest = {
        let hub = hub.clone();
        tokio::spawn(async move {
            receive_in("latest", &hub, "0", from(StartLocation::Latest, false), 2).await
        })
    };
    while eventhubs::receivers(&hub, "0", "latest") == 0 {
        assert!(
            !latest.is_finished(),
            "the receiver ended before anything was appended"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eventhubs::append(&hub, "0", 2);
    assert_eq!(latest.await.unwrap(), [20, 21]);
}

/// What a raw AMQP receiver asks for: the official 0.15 client sends no epoch and reports link
/// errors without their condition, so the endpoint's arbitration and faults are checked with
/// the AMQP client under it.
mod raw {
    use fe2o3_amqp::{
        connection::ConnectionHandle,
        link::{LinkStateError, ReceiverAttachError, RecvError},
        sasl_profile::SaslProfile,
        session::SessionHandle,
        types::{
            definitions::{self, ErrorCondition, Fields},
            messaging::{Body, Source},
            primitives::{Symbol, Value},
        },
        Connection, Receiver, Session,
    };
    use serde_amqp::{described::Described, descriptor::Descriptor};
    use std::time::Duration;

    const SELECTOR: &str = "apache.org:selector-filter:string";
    /// The filter that starts at a partition's first event.
    pub const FROM_START: &str = "amqp.annotation.x-opt-offset > '-1'";

    pub struct Client {
        connection: ConnectionHandle<()>,
        session: SessionHandle<()>,
        links: u64,
    }

    impl Client {
        pub async fn open() -> Self {
            let mut connection = Connection::builder()
                .container_id("raw-test")
                .sasl_profile(SaslProfile::Anonymous)
                .open(eventhub_checkpointstore_testkit::eventhubs::amqp_url().as_str())
                .await
                .expect("the endpoint accepts a connection");
            let session = Session::begin(&mut connection).await.expect("a session");
            Self {
                connection,
                session,
                links: 0,
            }
        }

        /// Opens a receiver on `hub`'s `partition` for `group`, from `filter` (a selector
        /// expression; none: the end), with `epoch`; the error's condition if refused.
        pub async fn receiver(
            &mut self,
            hub: &str,
            group: &str,
            partition: &str,
            filter: Option<&str>,
            epoch: Option<i64>,
        ) -> Result<Receiver, String> {
            let mut source = Source::builder().address(format!(
                "amqps://localhost/{hub}/ConsumerGroups/{group}/Partitions/{partition}"
            ));
            if let Some(filter) = filter {
                source = source.add_to_filter(
                    Symbol::from(SELECTOR),
                    Described {
                        descriptor: Descriptor::Name(Symbol::from(SELECTOR)),
                        value: Value::String(filter.to_owned()),
                    },
                );
            }
            let mut properties = Fields::new();
            if let Some(epoch) = epoch {
                properties.insert(Symbol::from("com.microsoft:epoch"), Value::Long(epoch));
            }
            // 0.14's builder resets the properties in `name()`: name first. Names are unique
            // within a session.
            self.links += 1;
            let attached = Receiver::builder()
                .name(format!("r-{}", self.links))
                .source(source.build())
                .properties(properties)
                .attach(&mut self.session)
                .await;
            match attached {
                // A refused link may be attached, then detached at once with the error: its
                // first receive tells (see `refused`).
                Ok(receiver) => Ok(receiver),
                Err(ReceiverAttachError::RemoteClosedWithError(error)) => Err(condition(&error)),
                Err(other) => Err(format!("{other:?}")),
            }
        }

        /// The condition the endpoint closed the connection with (waits for the close).
        pub async fn closed_with(&mut self) -> String {
            match self.connection.on_close().await {
                Err(fe2o3_amqp::connection::Error::RemoteClosedWithError(error)) => {
                    condition(&error)
                }
                other => format!("{other:?}"),
            }
        }

        /// A receiver of partition 0 of `$Default` from its first event, with `epoch`: the
        /// one most tests want.
        pub async fn first_partition(&mut self, hub: &str, epoch: Option<i64>) -> Receiver {
            self.receiver(hub, "$Default", "0", Some(FROM_START), epoch)
                .await
                .expect("a receiver from the start")
        }

        pub async fn close(self) {
            let Self {
                mut connection,
                mut session,
                ..
            } = self;
            let _ = session.end().await;
            let _ = connection.close().await;
        }
    }

    /// The condition of an AMQP error, as the symbol on the wire.
    pub fn condition(error: &definitions::Error) -> String {
        match &error.condition {
            ErrorCondition::AmqpError(e) => Symbol::from(e).0,
            ErrorCondition::ConnectionError(e) => Symbol::from(e).0,
            ErrorCondition::LinkError(e) => Symbol::from(e).0,
            ErrorCondition::Custom(symbol) => symbol.0.clone(),
            other => format!("{other:?}"),
        }
    }

    /// What the next receive gives within `wait`: a sequence number, the condition the link
    /// was detached with, or `None` (nothing came).
    pub async fn next(receiver: &mut Receiver, wait: Duration) -> Option<Result<i64, String>> {
        let received = tokio::time::timeout(wait, receiver.recv::<Body<Value>>())
            .await
            .ok()?;
        Some(match received {
            Ok(delivery) => {
                let _ = receiver.accept(&delivery).await;
                let annotations = delivery
                    .message()
                    .message_annotations
                    .as_ref()
                    .expect("events carry annotations");
                match annotations
                    .0
                    .iter()
                    .find(|(key, _)| format!("{key:?}").contains("x-opt-sequence-number"))
                    .map(|(_, value)| value)
                {
                    Some(Value::Long(n)) => Ok(*n),
                    other => panic!("a sequence number annotation, not {other:?}"),
                }
            }
            Err(RecvError::LinkStateError(
                LinkStateError::RemoteDetachedWithError(error)
                | LinkStateError::RemoteClosedWithError(error),
            )) => Err(condition(&error)),
            Err(other) => Err(format!("{other:?}")),
        })
    }

    /// The condition a receiver is detached with, its events before it skipped; panics if none
    /// comes within `wait`.
    pub async fn detached(receiver: &mut Receiver, wait: Duration) -> String {
        loop {
            match next(receiver, wait).await {
                Some(Ok(_)) => continue,
                Some(Err(condition)) => return condition,
                None => panic!("no detach within {wait:?}"),
            }
        }
    }

    /// Whether the error of an attach or a first receive is a refusal with `condition`.
    pub async fn refused(
        attached: Result<Receiver, String>,
        wait: Duration,
    ) -> Result<String, String> {
        match attached {
            Err(condition) => Ok(condition),
            Ok(mut receiver) => match next(&mut receiver, wait).await {
                Some(Err(condition)) => Ok(condition),
                other => Err(format!("the receiver was not refused: {other:?}")),
            },
        }
    }
}

const WAIT: Duration = Duration::from_secs(20);

const STOLEN: &str = "amqp:link:stolen";

#[tokio::test]
async fn an_epoch_receiver_holds_its_partition_against_lower_and_none_and_yields_to_equal_or_higher(
) {
    let hub = preloaded(1, 5);
    let mut client = raw::Client::open().await;
    let start = Some(raw::FROM_START);
    let mut first = client
        .receiver(&hub, "$Default", "0", start, Some(1))
        .await
        .unwrap();
    assert_eq!(raw::next(&mut first, WAIT).await, Some(Ok(0)));
    // Lower, or none, while epoch 1 holds it: refused with amqp:link:stolen.
    for epoch in [Some(0), None] {
        let attached = client.receiver(&hub, "$Default", "0", start, epoch).await;
        assert_eq!(
            raw::refused(attached, WAIT).await.as_deref(),
            Ok(STOLEN),
            "{epoch:?}"
        );
    }
    // Another consumer group is another partition owner.
    let mut other = client
        .receiver(&hub, "Other", "0", start, None)
        .await
        .unwrap();
    assert_eq!(raw::next(&mut other, WAIT).await, Some(Ok(0)));
    // Equal takes over, then higher: each holder is detached with amqp:link:stolen.
    let mut equal = client
        .receiver(&hub, "$Default", "0", start, Some(1))
        .await
        .unwrap();
    assert_eq!(raw::next(&mut equal, WAIT).await, Some(Ok(0)));
    assert_eq!(raw::detached(&mut first, WAIT).await, STOLEN);
    let mut higher = client
        .receiver(&hub, "$Default", "0", start, Some(7))
        .await
        .unwrap();
    assert_eq!(raw::next(&mut higher, WAIT).await, Some(Ok(0)));
    assert_eq!(raw::detached(&mut equal, WAIT).await, STOLEN);
    // The other group's receiver was not touched.
    assert_eq!(raw::next(&mut other, WAIT).await, Some(Ok(1)));
    // Once the holder detaches, a receiver without an epoch may read again.
    higher.close().await.unwrap();
    let mut free = client
        .receiver(&hub, "$Default", "0", start, None)
        .await
        .unwrap();
    assert_eq!(raw::next(&mut free, WAIT).await, Some(Ok(0)));
    client.close().await;
}

#[tokio::test]
async fn unknown_hubs_and_partitions_are_not_found_and_bad_filters_invalid() {
    let hub = preloaded(2, 1);
    let mut client = raw::Client::open().await;
    let start = Some(raw::FROM_START);
    for (hub, partition, filter, condition) in [
        ("no-such-hub", "0", start, "amqp:not-found"),
        (hub.as_str(), "2", start, "amqp:not-found"),
        (
            hub.as_str(),
            "0",
            Some("amqp.annotation.x-opt-offset > 5"),
            "amqp:invalid-field",
        ),
        (
            hub.as_str(),
            "0",
            Some("x-opt-sequence-number >= '1'"),
            "amqp:invalid-field",
        ),
    ] {
        let attached = client
            .receiver(hub, "$Default", partition, filter, None)
            .await;
        assert_eq!(
            raw::refused(attached, WAIT).await.as_deref(),
            Ok(condition),
            "{hub}/{partition} {filter:?}"
        );
    }
    client.close().await;
}

#[tokio::test]
async fn detached_receivers_carry_the_fault_s_condition_and_may_attach_again() {
    let hub = preloaded(1, 3);
    let mut client = raw::Client::open().await;
    let start = Some("amqp.annotation.x-opt-sequence-number >= '0'");
    for condition in [
        "amqp:link:detach-forced",
        "com.microsoft:server-busy",
        "amqp:internal-error",
    ] {
        let mut receiver = client
            .receiver(&hub, "$Default", "0", start, Some(0))
            .await
            .unwrap();
        assert_eq!(raw::next(&mut receiver, WAIT).await, Some(Ok(0)));
        assert_eq!(eventhubs::detach_receivers(&hub, "0", condition), 1);
        assert_eq!(raw::detached(&mut receiver, WAIT).await, condition);
    }
    let mut again = client
        .receiver(&hub, "$Default", "0", start, Some(0))
        .await
        .unwrap();
    assert_eq!(raw::next(&mut again, WAIT).await, Some(Ok(0)));
    client.close().await;
}

#[tokio::test]
async fn refused_receivers_are_refused_with_the_fault_s_condition_until_it_is_lifted() {
    let hub = preloaded(1, 3);
    let mut client = raw::Client::open().await;
    let start = Some(raw::FROM_START);
    // Refused for longer than any test runs; lifted below.
    eventhubs::partition_fault(&hub, "0", "refuse?ms=600000");
    let attached = client.receiver(&hub, "$Default", "0", start, Some(0)).await;
    assert_eq!(
        raw::refused(attached, WAIT).await.as_deref(),
        Ok("com.microsoft:server-busy")
    );
    eventhubs::partition_fault(&hub, "0", "refuse?ms=600000&condition=amqp:internal-error");
    let attached = client.receiver(&hub, "$Default", "0", start, Some(0)).await;
    assert_eq!(
        raw::refused(attached, WAIT).await.as_deref(),
        Ok("amqp:internal-error")
    );
    eventhubs::partition_fault(&hub, "0", "refuse?ms=0");
    let mut receiver = client
        .receiver(&hub, "$Default", "0", start, Some(0))
        .await
        .unwrap();
    assert_eq!(raw::next(&mut receiver, WAIT).await, Some(Ok(0)));
    client.close().await;
}

#[tokio::test]
async fn a_paused_partition_delivers_nothing_until_resumed() {
    let hub = preloaded(1, 2);
    let mut client = raw::Client::open().await;
    let mut receiver = client.first_partition(&hub, Some(0)).await;
    assert_eq!(raw::next(&mut receiver, WAIT).await, Some(Ok(0)));
    assert_eq!(raw::next(&mut receiver, WAIT).await, Some(Ok(1)));
    eventhubs::partition_fault(&hub, "0", "pause");
    eventhubs::append(&hub, "0", 3);
    // Nothing while paused (a slow machine can only make this pass, never fail wrongly).
    assert_eq!(
        raw::next(&mut receiver, Duration::from_millis(500)).await,
        None
    );
    eventhubs::partition_fault(&hub, "0", "resume");
    for expected in 2..5 {
        assert_eq!(raw::next(&mut receiver, WAIT).await, Some(Ok(expected)));
    }
    client.close().await;
}

#[tokio::test]
async fn expired_events_are_gone_and_starts_before_them_begin_at_the_first_retained() {
    let hub = preloaded(2, 10);
    assert_eq!(eventhubs::expire(&hub, "1", 4), 4);
    // Expiry never moves back.
    assert_eq!(eventhubs::expire(&hub, "1", 2), 4);
    let client = consumer_client(&hub, "$Default").await;
    let properties = client.get_partition_properties("1").await.unwrap();
    assert_eq!(properties.beginning_sequence_number, 4);
    assert_eq!(properties.last_enqueued_sequence_number, 9);
    assert!(!properties.is_empty);
    let from = |location, inclusive| StartPosition {
        location,
        inclusive,
    };
    assert_eq!(
        receive(&hub, "1", from(StartLocation::Earliest, false), 2).await,
        [4, 5]
    );
    assert_eq!(
        receive(&hub, "1", from(StartLocation::SequenceNumber(1), true), 2).await,
        [4, 5]
    );
    assert_eq!(
        receive(&hub, "1", from(StartLocation::SequenceNumber(6), false), 1).await,
        [7]
    );
    // Everything expired: empty, its begin the last enqueued event (as the service reports).
    assert_eq!(eventhubs::expire(&hub, "1", 10), 9);
    let properties = client.get_partition_properties("1").await.unwrap();
    assert!(properties.is_empty);
    assert_eq!(properties.last_enqueued_sequence_number, 9);
    // The other partition is untouched.
    let other = client.get_partition_properties("0").await.unwrap();
    assert_eq!(other.beginning_sequence_number, 0);
}

#[tokio::test]
async fn a_start_past_the_end_of_a_partition_is_refused_and_the_next_event_s_is_not() {
    let hub = preloaded(1, 10);
    let mut client = raw::Client::open().await;
    let out_of_range = "com.microsoft:argument-out-of-range";
    for filter in [
        "amqp.annotation.x-opt-sequence-number >= '11'",
        "amqp.annotation.x-opt-sequence-number > '10'",
        "amqp.annotation.x-opt-offset > '10240'",
        "amqp.annotation.x-opt-offset >= '11264'",
    ] {
        let attached = client
            .receiver(&hub, "$Default", "0", Some(filter), None)
            .await;
        assert_eq!(
            raw::refused(attached, WAIT).await.as_deref(),
            Ok(out_of_range),
            "{filter}"
        );
    }
    // Where the next event will be: accepted, and it is delivered once appended.
    let mut receivers = Vec::new();
    for filter in [
        "amqp.annotation.x-opt-sequence-number >= '10'",
        "amqp.annotation.x-opt-sequence-number > '9'",
        "amqp.annotation.x-opt-offset > '9216'",
        "amqp.annotation.x-opt-offset >= '10240'",
    ] {
        receivers.push(
            client
                .receiver(&hub, "$Default", "0", Some(filter), None)
                .await
                .unwrap(),
        );
    }
    eventhubs::append(&hub, "0", 1);
    for receiver in &mut receivers {
        assert_eq!(raw::next(receiver, WAIT).await, Some(Ok(10)));
    }
    client.close().await;
    // The official client is told too, not left waiting for events that will not come.
    let consumer = consumer_client(&hub, "$Default").await;
    let opened = consumer
        .open_receiver_on_partition(
            "0".to_owned(),
            Some(OpenReceiverOptions {
                start_position: Some(StartPosition {
                    location: StartLocation::SequenceNumber(50),
                    inclusive: false,
                }),
                ..Default::default()
            }),
        )
        .await;
    let error = match opened {
        Err(err) => err.to_string(),
        Ok(receiver) => {
            let mut events = receiver.stream_events();
            match tokio::time::timeout(WAIT, events.next()).await {
                Ok(Some(Err(err))) => err.to_string(),
                other => panic!("an error for a start past the end, not {other:?}"),
            }
        }
    };
    assert!(!error.is_empty());
}

#[tokio::test]
async fn connections_closed_with_an_error_end_their_receivers() {
    let hub = preloaded(1, 1);
    let mut client = raw::Client::open().await;
    let mut receiver = client.first_partition(&hub, Some(0)).await;
    assert_eq!(raw::next(&mut receiver, WAIT).await, Some(Ok(0)));
    assert_eq!(
        eventhubs::end_connections(&hub, Some("amqp:internal-error"), Duration::ZERO),
        1,
        "the one connection that used the hub"
    );
    // The receiver ends with an error instead of waiting for events, and the connection was
    // closed with the condition given (not just cut).
    match raw::next(&mut receiver, WAIT).await {
        Some(Err(_)) => {}
        other => panic!("the receiver ends with the connection, not {other:?}"),
    }
    let closed = tokio::time::timeout(WAIT, client.closed_with()).await;
    assert_eq!(closed.as_deref(), Ok("amqp:internal-error"));
}
