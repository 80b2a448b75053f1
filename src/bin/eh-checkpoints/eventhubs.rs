//! Event Hubs, for `lag`: a consumer client from an Event Hubs connection string or from the
//! namespace with an Entra ID credential (the library's `processor::Connection`), and what the
//! lag needs from it: the partitions' properties and the enqueued time of a partition's oldest
//! unprocessed event.

use crate::{Auth, Failure};
use azure_messaging_eventhubs::{
    ConsumerClient, OpenReceiverOptions, StartLocation, StartPosition,
};
use clap::ValueEnum;
use eventhub_checkpointstore::{azure_core::time::OffsetDateTime, processor};
use futures::StreamExt;
use std::fmt;

pub(crate) const CONNECTION_STRING_VAR: &str = "EVENTHUBS_CONNECTION_STRING";

/// How to reach Event Hubs: from a connection string, or the namespace with Entra ID.
pub(crate) struct Connection {
    hub: processor::Connection,
    /// How it signs in, for a failure's hint: an Entra ID credential, or a connection string.
    by_credential: Option<Auth>,
    /// How long one call to Event Hubs may take, its retries included (`--timeout`).
    timeout: std::time::Duration,
}

impl Connection {
    /// From a connection string (its entity path, if any, must be the scope's event hub), or
    /// from `namespace` with the Entra ID credential `auth`. `endpoint` overrides where the
    /// client connects (an emulator, a proxy).
    pub(crate) fn new(
        connection_string: Option<&str>,
        namespace: &str,
        eventhub: &str,
        auth: Auth,
        endpoint: Option<String>,
        timeout: std::time::Duration,
    ) -> Result<Self, Failure> {
        let by_credential = connection_string.is_none().then_some(auth);
        let hub = match connection_string {
            None => processor::Connection::new(
                namespace,
                eventhub,
                crate::connect::token_credential(auth)?,
            ),
            Some(text) => processor::Connection::from_connection_string(text, Some(eventhub))
                .map_err(|err| match err {
                    eventhub_checkpointstore::Error::InvalidInput { message } => {
                        Failure::Refused(message)
                    }
                    other => Failure::Refused(other.to_string()),
                })?,
        };
        let hub = match endpoint {
            Some(endpoint) => hub.with_custom_endpoint(endpoint),
            None => hub,
        };
        Ok(Self {
            hub,
            by_credential,
            timeout,
        })
    }

    /// `call` to Event Hubs, given up after the timeout; a failure names the namespace.
    pub(crate) async fn bounded<T, E: fmt::Display>(
        &self,
        call: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, Failure> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(self.unreachable(err)),
            Err(_) => Err(self.unreachable(format!(
                "no answer within {} (--timeout)",
                humantime::format_duration(self.timeout)
            ))),
        }
    }

    /// A failure to reach Event Hubs: exit 1, as a store that cannot be reached. Signed in by
    /// an Entra ID credential, it says how else to sign in: the usual cause is no credential.
    fn unreachable(&self, err: impl fmt::Display) -> Failure {
        let namespace = &self.hub.scope().fully_qualified_namespace;
        let hint = match self.by_credential {
            None => String::new(),
            Some(auth) => format!(
                ". Signed in with the {} credential (--auth); for a connection string instead, \
                 pass --eventhubs-connection-string or set {CONNECTION_STRING_VAR}",
                auth.to_possible_value()
                    .map_or_else(String::new, |v| v.get_name().to_owned())
            ),
        };
        Failure::EventHubs(format!("Event Hubs namespace {namespace}: {err}{hint}"))
    }

    /// A consumer client on the hub's `consumer_group`.
    pub(crate) async fn open(&self, consumer_group: &str) -> Result<ConsumerClient, Failure> {
        let hub = self.hub.clone().with_consumer_group(consumer_group);
        self.bounded(hub.open()).await
    }
}

/// What `lag` reads of one partition.
pub(crate) struct PartitionEnd {
    pub(crate) beginning_sequence_number: i64,
    pub(crate) last_sequence_number: Option<i64>,
    pub(crate) last_enqueued: Option<OffsetDateTime>,
}

/// The hub's partition ids and, for each, where it begins and ends.
pub(crate) async fn partition_ends(
    connection: &Connection,
    client: &ConsumerClient,
) -> Result<Vec<(String, PartitionEnd)>, Failure> {
    let hub = connection.bounded(client.get_eventhub_properties()).await?;
    let mut ends = Vec::with_capacity(hub.partition_ids.len());
    for id in hub.partition_ids {
        let p = connection
            .bounded(client.get_partition_properties(&id))
            .await?;
        ends.push((
            id,
            PartitionEnd {
                beginning_sequence_number: p.beginning_sequence_number,
                last_sequence_number: (!p.is_empty).then_some(p.last_enqueued_sequence_number),
                last_enqueued: p.last_enqueued_time_utc.map(OffsetDateTime::from),
            },
        ));
    }
    Ok(ends)
}

/// The enqueued time of the first event after sequence number `after` (from the partition's
/// start with none): one event read, within `timeout`. `None` if none came (a reader of the
/// consumer group with an owner level holds the partition, or the event expired meanwhile).
pub(crate) async fn first_unprocessed(
    client: &ConsumerClient,
    partition: &str,
    after: Option<i64>,
    timeout: std::time::Duration,
) -> Option<OffsetDateTime> {
    let start = match after {
        Some(sequence_number) => StartPosition {
            location: StartLocation::SequenceNumber(sequence_number),
            inclusive: false,
        },
        None => StartPosition {
            location: StartLocation::Earliest,
            inclusive: true,
        },
    };
    let read = async {
        let receiver = client
            .open_receiver_on_partition(
                partition.to_owned(),
                Some(OpenReceiverOptions {
                    start_position: Some(start),
                    prefetch: Some(1),
                    ..Default::default()
                }),
            )
            .await
            .inspect_err(|e| tracing::debug!(partition, %e, "opening a receiver"))
            .ok()?;
        let event = {
            let mut events = receiver.stream_events();
            events.next().await?.ok()?
        };
        let _ = receiver.close().await;
        event.enqueued_time().map(OffsetDateTime::from)
    };
    tokio::time::timeout(timeout, read).await.ok().flatten()
}
