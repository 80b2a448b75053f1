//! The AMQP side: connections (SASL ANONYMOUS), sessions, and the links a consumer opens: the
//! `$cbs` and `$management` request/reply pairs, and partition receivers that stream events.

use crate::epoch::{self, Kick};
use crate::filter::{self, Position};
use crate::hubs::{lock, Event, Hubs, Partition};
use crate::{faults::Faults, latency};
use fe2o3_amqp::{
    acceptor::{
        ConnectionAcceptor, LinkAcceptor, LinkEndpoint, ListenerSessionHandle,
        SaslAnonymousMechanism, SessionAcceptor,
    },
    link::{delivery::Sendable, Receiver, Sender},
    types::{
        definitions::{self, AmqpError, ErrorCondition, LinkError, Role},
        messaging::{
            AmqpValue, ApplicationProperties, Body, Data, Message, MessageAnnotations, MessageId,
            Properties, Source, TargetArchetype,
        },
        primitives::{Array, OrderedMap, SimpleValue, Symbol, Timestamp, Value},
    },
};
use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{mpsc, oneshot},
};

const SELECTOR_FILTER: &str = "apache.org:selector-filter:string";
const SELECTOR_FILTER_CODE: u64 = 0x0000_468C_0000_0004;
const EPOCH: &str = "com.microsoft:epoch";

static NEXT_REPLY_LINK: AtomicU64 = AtomicU64::new(1);

/// Accepts connections until the listener fails; what the endpoint sends on each reaches the
/// client `latency` later (see [`crate::latency`]). While `faults` refuses connections, each is
/// closed as soon as it is accepted.
pub async fn serve(listener: TcpListener, hubs: Arc<Hubs>, latency: Duration, faults: Arc<Faults>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if faults.refusing() {
                    tracing::debug!(%peer, "connection refused (fault)");
                    drop(stream);
                    continue;
                }
                tracing::debug!(%peer, "connection");
                let _ = stream.set_nodelay(true);
                // A second handle on the socket, through which the control plane can cut it.
                let tracked = stream
                    .into_std()
                    .and_then(|std| Ok((std.try_clone()?, std)))
                    .and_then(|(clone, std)| Ok((clone, TcpStream::from_std(std)?)));
                let Ok((clone, stream)) = tracked else {
                    continue;
                };
                let (id, closing) = faults.track(clone);
                let peer = Peer {
                    id,
                    hubs: hubs.clone(),
                    faults: faults.clone(),
                };
                tokio::spawn(async move {
                    if latency.is_zero() {
                        connection(stream, peer.clone(), closing).await;
                    } else {
                        connection(latency::delayed(stream, latency), peer.clone(), closing).await;
                    }
                    peer.faults.ended(peer.id);
                });
            }
            Err(err) => {
                tracing::error!(%err, "accept failed");
                return;
            }
        }
    }
}

/// One client connection's view of the endpoint: the hubs, and the faults that know the
/// connection by its id (and which hubs it used).
#[derive(Clone)]
struct Peer {
    id: u64,
    hubs: Arc<Hubs>,
    faults: Arc<Faults>,
}

impl Peer {
    /// The hub named `name`, noted as used by this connection.
    fn hub(&self, name: &str) -> Option<Arc<crate::hubs::Hub>> {
        self.faults.touch(self.id, name);
        self.hubs.get(name)
    }
}

/// Serves one connection until the client closes it, or until `closing` says to close it with
/// an error (a fault).
async fn connection<Io>(stream: Io, peer: Peer, mut closing: oneshot::Receiver<Kick>)
where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + std::fmt::Debug + Send + Unpin + 'static,
{
    let acceptor = ConnectionAcceptor::builder()
        .container_id("eventhubs-local")
        .sasl_acceptor(SaslAnonymousMechanism::new())
        .build();
    let mut connection = match acceptor.accept(stream).await {
        Ok(connection) => connection,
        Err(err) => {
            tracing::debug!(%err, "connection refused");
            return;
        }
    };
    let sessions = SessionAcceptor::new();
    loop {
        tokio::select! {
            session = sessions.accept(&mut connection) => match session {
                Ok(session) => {
                    tokio::spawn(session_loop(session, peer.clone()));
                }
                Err(_) => break,
            },
            Ok(kick) = &mut closing => {
                tracing::info!(?kick, "connection closed with an error (fault)");
                let _ = connection.close_with_error(error(&kick)).await;
                return;
            }
        }
    }
    let _ = connection.close().await;
}

/// An error condition as the symbol given (Event Hubs' own, such as
/// `com.microsoft:server-busy`, are not in the AMQP enumerations; the standard ones go on the
/// wire the same way).
fn condition(symbol: &str) -> ErrorCondition {
    ErrorCondition::Custom(Symbol::from(symbol))
}

/// The AMQP error a kick carries.
fn error(kick: &Kick) -> definitions::Error {
    definitions::Error::new(condition(&kick.condition), kick.description.clone(), None)
}

/// The reply links of one session, in attach order: where a request's reply goes.
type Replies = Arc<Mutex<Vec<ReplyLink>>>;

struct ReplyLink {
    id: u64,
    node: Node,
    /// The client's address (the link's target), which a request's `reply-to` names.
    client: String,
    queue: mpsc::Sender<Message<AmqpValue<Value>>>,
}

/// Where the reply to a request sent to `node` goes: the reply link its `reply-to` names, else
/// (Python's client sends none and matches replies by correlation id) the newest reply link
/// from the same node.
fn reply_queue(
    replies: &Replies,
    node: Node,
    reply_to: &str,
) -> Option<mpsc::Sender<Message<AmqpValue<Value>>>> {
    let replies = lock(replies);
    let mut from_node = replies.iter().filter(|r| r.node == node);
    from_node
        .clone()
        .find(|r| !reply_to.is_empty() && r.client == reply_to)
        .or_else(|| from_node.next_back())
        .map(|r| r.queue.clone())
}

/// What a link is, by its address.
enum Link {
    /// A request link to `$cbs` or `$management` (the client sends).
    Requests(Node),
    /// A reply link from `$cbs` or `$management` (the client receives), to `client`.
    Replies {
        node: Node,
        client: String,
    },
    /// A partition receiver.
    Partition,
    Unknown(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Node {
    Cbs,
    Management,
}

fn node(address: &str) -> Option<Node> {
    match address {
        "$cbs" => Some(Node::Cbs),
        "$management" => Some(Node::Management),
        _ => None,
    }
}

fn source_address(source: &Option<Box<Source>>) -> Option<String> {
    source.as_ref()?.address.clone()
}

fn target_address(target: &Option<Box<TargetArchetype>>) -> Option<String> {
    let TargetArchetype::Target(target) = target.as_deref()?;
    target.address.clone()
}

async fn session_loop(mut session: ListenerSessionHandle, peer: Peer) {
    let links = LinkAcceptor::builder().initial_delivery_count(0).build();
    let replies: Replies = Arc::default();
    while let Some(attach) = session.next_incoming_attach().await {
        let kind = match attach.role {
            // The client sends: a request link, by its target.
            Role::Sender => match target_address(&attach.target).as_deref().and_then(node) {
                Some(node) => Link::Requests(node),
                None => Link::Unknown(format!("{:?}", target_address(&attach.target))),
            },
            // The client receives: a reply link or a partition, by its source.
            Role::Receiver => match source_address(&attach.source) {
                Some(address) if node(&address).is_some() => Link::Replies {
                    node: node(&address).expect("checked"),
                    client: target_address(&attach.target).unwrap_or_default(),
                },
                Some(_) => Link::Partition,
                None => Link::Unknown("no source".into()),
            },
        };
        let epoch = attach.properties.as_ref().and_then(|p| {
            p.get(&Symbol::from(EPOCH)).and_then(|v| match v {
                Value::Long(epoch) => Some(*epoch),
                Value::Int(epoch) => Some(i64::from(*epoch)),
                _ => None,
            })
        });
        let endpoint = match links.accept_incoming_attach(attach, &mut session).await {
            Ok(endpoint) => endpoint,
            Err(err) => {
                tracing::debug!(?err, "attach failed");
                continue;
            }
        };
        match (kind, endpoint) {
            (Link::Requests(node), LinkEndpoint::Receiver(receiver)) => {
                tokio::spawn(requests(receiver, node, peer.clone(), replies.clone()));
            }
            (Link::Replies { node, client }, LinkEndpoint::Sender(sender)) => {
                let (queue, queued) = mpsc::channel(64);
                let id = NEXT_REPLY_LINK.fetch_add(1, Ordering::Relaxed);
                lock(&replies).push(ReplyLink {
                    id,
                    node,
                    client,
                    queue,
                });
                let replies = replies.clone();
                tokio::spawn(async move {
                    reply_link(sender, queued).await;
                    lock(&replies).retain(|r| r.id != id);
                });
            }
            (Link::Partition, LinkEndpoint::Sender(sender)) => {
                tokio::spawn(partition_link(sender, peer.clone(), epoch));
            }
            (Link::Unknown(what), endpoint) => {
                refuse(
                    endpoint,
                    ErrorCondition::AmqpError(AmqpError::NotFound),
                    format!("nothing is served at {what}"),
                )
                .await
            }
            (_, endpoint) => {
                refuse(
                    endpoint,
                    ErrorCondition::AmqpError(AmqpError::NotAllowed),
                    "a link in the wrong direction".into(),
                )
                .await
            }
        }
    }
    let _ = session.end().await;
}

/// Closes a just-attached link with `condition`: how Event Hubs refuses a link.
async fn refuse(endpoint: LinkEndpoint, condition: ErrorCondition, description: String) {
    tracing::info!(?condition, %description, "link refused");
    let error = definitions::Error::new(condition, description, None);
    match endpoint {
        LinkEndpoint::Sender(sender) => {
            let _ = sender.close_with_error(error).await;
        }
        LinkEndpoint::Receiver(receiver) => {
            let _ = receiver.close_with_error(error).await;
        }
    }
}

/// Sends the replies queued for one client until the client detaches the link (answering its
/// detach, which clients wait for).
async fn reply_link(mut sender: Sender, mut queued: mpsc::Receiver<Message<AmqpValue<Value>>>) {
    loop {
        let reply = tokio::select! {
            reply = queued.recv() => reply,
            detached = sender.on_detach() => {
                tracing::debug!(?detached, "reply link detached");
                let _ = sender.close().await;
                return;
            }
        };
        let Some(reply) = reply else { return };
        let sendable = Sendable::builder().message(reply).settled(true).build();
        if sender.send(sendable).await.is_err() {
            let _ = sender.close().await;
            return;
        }
    }
}

/// Answers the requests of one request link (`$cbs` put-token, `$management` READ).
async fn requests(mut receiver: Receiver, node: Node, peer: Peer, replies: Replies) {
    loop {
        let delivery = match receiver.recv::<Body<Value>>().await {
            Ok(delivery) => delivery,
            Err(err) => {
                tracing::debug!(?err, ?node, "request link ended");
                let _ = receiver.close().await;
                return;
            }
        };
        let _ = receiver.accept(&delivery).await;
        let message = delivery.message();
        let properties = message.application_properties.as_ref();
        let text = |key: &str| match properties.and_then(|p| p.0.get(key)) {
            Some(SimpleValue::String(s)) => Some(s.clone()),
            Some(SimpleValue::Symbol(s)) => Some(s.0.clone()),
            _ => None,
        };
        let (status, description, body) = match node {
            // Any token is accepted: the endpoint is local and anonymous.
            Node::Cbs => (202, "Accepted".to_owned(), None),
            Node::Management => management(&peer, text("type"), text("name"), text("partition")),
        };
        let message_id = message
            .properties
            .as_ref()
            .and_then(|p| p.message_id.clone());
        let reply_to = message
            .properties
            .as_ref()
            .and_then(|p| p.reply_to.clone())
            .unwrap_or_default();
        let reply = reply_message(status, &description, message_id, body);
        // The reply link was attached before the client sent (it waits for both attaches).
        match reply_queue(&replies, node, &reply_to) {
            Some(queue) => {
                let _ = queue.send(reply).await;
            }
            None => tracing::warn!(reply_to, "a request without a reply link"),
        }
    }
}

fn reply_message(
    status: i32,
    description: &str,
    correlation_id: Option<MessageId>,
    body: Option<OrderedMap<Value, Value>>,
) -> Message<AmqpValue<Value>> {
    let mut properties = ApplicationProperties::default();
    properties
        .0
        .insert("status-code".into(), SimpleValue::Int(status));
    properties.0.insert(
        "status-description".into(),
        SimpleValue::String(description.to_owned()),
    );
    Message::builder()
        .properties(Properties {
            correlation_id,
            ..Default::default()
        })
        .application_properties(properties)
        .value(body.map_or(Value::Null, Value::Map))
        .build()
}

fn string(key: &str) -> Value {
    Value::String(key.to_owned())
}

/// The answer to a management READ of `kind` (`com.microsoft:eventhub` or
/// `com.microsoft:partition`): (status, description, attributes).
fn management(
    peer: &Peer,
    kind: Option<String>,
    name: Option<String>,
    partition: Option<String>,
) -> (i32, String, Option<OrderedMap<Value, Value>>) {
    let Some(hub) = name.as_deref().and_then(|n| peer.hub(n)) else {
        return (
            404,
            format!(
                "The messaging entity '{}' could not be found.",
                name.unwrap_or_default()
            ),
            None,
        );
    };
    let mut map = OrderedMap::new();
    match kind.as_deref() {
        Some("com.microsoft:eventhub") => {
            map.insert(string("name"), string(&hub.name));
            map.insert(string("type"), string("com.microsoft:eventhub"));
            map.insert(
                string("created_at"),
                Value::Timestamp(Timestamp::from(hub.created_ms)),
            );
            map.insert(
                string("partition_count"),
                Value::Int(hub.partitions.len() as i32),
            );
            map.insert(
                string("partition_ids"),
                Value::Array(Array::from(
                    hub.partitions
                        .iter()
                        .map(|p| string(&p.id))
                        .collect::<Vec<_>>(),
                )),
            );
        }
        Some("com.microsoft:partition") => {
            let Some(p) = partition.as_deref().and_then(|id| hub.partition(id)) else {
                return (
                    404,
                    format!(
                        "Partition '{}' of event hub '{}' could not be found.",
                        partition.unwrap_or_default(),
                        hub.name
                    ),
                    None,
                );
            };
            let last = p.last();
            map.insert(string("name"), string(&hub.name));
            map.insert(string("type"), string("com.microsoft:partition"));
            map.insert(string("partition"), string(&p.id));
            map.insert(
                string("begin_sequence_number"),
                Value::Long(p.begin_sequence_number()),
            );
            map.insert(
                string("last_enqueued_sequence_number"),
                Value::Long(last.as_ref().map_or(-1, |e| e.sequence_number)),
            );
            map.insert(
                string("last_enqueued_offset"),
                string(
                    &last
                        .as_ref()
                        .map_or("-1".to_owned(), |e| e.offset.to_string()),
                ),
            );
            map.insert(
                string("last_enqueued_time_utc"),
                Value::Timestamp(Timestamp::from(last.as_ref().map_or(0, |e| e.enqueued_ms))),
            );
            map.insert(string("is_partition_empty"), Value::Bool(p.is_empty()));
            map.insert(
                string("last_enqueued_sequence_number_epoch"),
                Value::Long(0),
            );
        }
        other => return (400, format!("unknown entity type {other:?}"), None),
    }
    (200, "OK".into(), Some(map))
}

/// `amqps://<namespace>/<hub>/ConsumerGroups/<group>/Partitions/<id>`, or without the scheme and
/// namespace: (hub, group, partition).
fn partition_address(address: &str) -> Option<(String, String, String)> {
    let path = match address.split_once("://") {
        Some((_, rest)) => rest.split_once('/')?.1,
        None => address.trim_start_matches('/'),
    };
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        [hub, consumer_groups, group, partitions, id]
            if consumer_groups.eq_ignore_ascii_case("consumergroups")
                && partitions.eq_ignore_ascii_case("partitions") =>
        {
            Some((hub.to_string(), group.to_string(), id.to_string()))
        }
        _ => None,
    }
}

/// The selector filter's expression, if the source has one.
fn selector(source: &Source) -> Option<Result<String, String>> {
    let filters = source.filter.as_ref()?;
    let (_, value) = filters.iter().find(|(key, _)| key.0 == SELECTOR_FILTER)?;
    use serde_amqp::descriptor::Descriptor;
    Some(match value {
        Value::Described(described) => match (&described.descriptor, &described.value) {
            (Descriptor::Code(SELECTOR_FILTER_CODE), Value::String(expression)) => {
                Ok(expression.clone())
            }
            (Descriptor::Name(name), Value::String(expression)) if name.0 == SELECTOR_FILTER => {
                Ok(expression.clone())
            }
            _ => Err("the selector filter is not a described string".to_owned()),
        },
        _ => Err("the selector filter is not a described value".to_owned()),
    })
}

/// A partition receiver: checked (hub, partition, filter, epoch), then fed events as they come,
/// until the client detaches or another receiver takes the partition.
async fn partition_link(sender: Sender, peer: Peer, epoch: Option<i64>) {
    let address = sender
        .source()
        .as_ref()
        .and_then(|s| s.address.clone())
        .unwrap_or_default();
    let Some((hub_name, group, partition_id)) = partition_address(&address) else {
        return refuse(
            LinkEndpoint::Sender(sender),
            ErrorCondition::AmqpError(AmqpError::NotFound),
            format!("'{address}' is not a partition address"),
        )
        .await;
    };
    let Some(hub) = peer.hub(&hub_name) else {
        return refuse(
            LinkEndpoint::Sender(sender),
            ErrorCondition::AmqpError(AmqpError::NotFound),
            format!("The messaging entity '{hub_name}' could not be found."),
        )
        .await;
    };
    let Some(partition) = hub.partition(&partition_id).cloned() else {
        return refuse(
            LinkEndpoint::Sender(sender),
            ErrorCondition::AmqpError(AmqpError::NotFound),
            format!("Partition '{partition_id}' of event hub '{hub_name}' could not be found."),
        )
        .await;
    };
    let position = match sender.source().as_ref().and_then(selector) {
        None => Ok(Position::End),
        Some(Ok(expression)) => filter::parse(&expression),
        Some(Err(err)) => Err(err),
    };
    let position = match position {
        Ok(position) => position,
        Err(err) => {
            return refuse(
                LinkEndpoint::Sender(sender),
                ErrorCondition::AmqpError(AmqpError::InvalidField),
                err,
            )
            .await
        }
    };
    if let Some(refusal) = partition.refusal() {
        return refuse(
            LinkEndpoint::Sender(sender),
            condition(&refusal.condition),
            format!(
                "Partition '{partition_id}' of event hub '{hub_name}' is not available now. Retry later."
            ),
        )
        .await;
    }
    let start = match partition.start(&position) {
        Ok(start) => start,
        Err((refused, description)) => {
            return refuse(
                LinkEndpoint::Sender(sender),
                condition(refused),
                description,
            )
            .await
        }
    };
    let registration = match epoch::register(&partition, &group, epoch) {
        Ok(registration) => registration,
        Err(reason) => {
            return refuse(
                LinkEndpoint::Sender(sender),
                ErrorCondition::LinkError(LinkError::Stolen),
                reason,
            )
            .await
        }
    };
    tracing::debug!(
        hub = hub_name,
        group,
        partition_id,
        ?position,
        ?epoch,
        "receiver attached"
    );
    stream(sender, partition, &hub.name, start, registration).await;
}

fn event_message(event: &Event) -> Message<Data> {
    let mut annotations = MessageAnnotations::default();
    annotations.0.insert(
        Symbol::from("x-opt-sequence-number").into(),
        Value::Long(event.sequence_number),
    );
    annotations.0.insert(
        Symbol::from("x-opt-offset").into(),
        Value::String(event.offset.to_string()),
    );
    annotations.0.insert(
        Symbol::from("x-opt-enqueued-time").into(),
        Value::Timestamp(Timestamp::from(event.enqueued_ms)),
    );
    if let Some(key) = &event.partition_key {
        annotations.0.insert(
            Symbol::from("x-opt-partition-key").into(),
            Value::String(key.clone()),
        );
    }
    Message::builder()
        .message_annotations(annotations)
        .data(Data(event.body.clone().into()))
        .build()
}

/// How a receiver's stream ended.
enum End {
    /// The client detached (or closed) the link, or it broke.
    Detached,
    /// Another receiver took the partition, or a fault detached it.
    Kicked(Kick),
}

/// Feeds `partition`'s events from `next` on to the receiver, while delivery is not paused.
async fn stream(
    mut sender: Sender,
    partition: Arc<Partition>,
    hub: &str,
    mut next: usize,
    mut registration: epoch::Registration,
) {
    let mut appended = partition.watch();
    let mut paused = partition.paused();
    let end = loop {
        let event = if *paused.borrow_and_update() {
            None
        } else {
            partition.next_from(next)
        };
        if let Some(event) = event {
            let sendable = Sendable::builder()
                .message(event_message(&event))
                .settled(true)
                .build();
            // Event Hubs does not wait for a receiver to settle an event (Python's client never
            // does, on a link it asked to be unsettled): send, and drop the outcome's future.
            tokio::select! {
                sent = sender.send_batchable(sendable) => if let Err(err) = sent {
                    tracing::debug!(?err, hub, partition = partition.id, "receiver gone");
                    break End::Detached;
                },
                kick = &mut registration.kicked => break kicked(kick),
            }
            next = event.sequence_number as usize + 1;
            continue;
        }
        tokio::select! {
            changed = appended.changed() => if changed.is_err() {
                break End::Detached;
            },
            changed = paused.changed() => if changed.is_err() {
                break End::Detached;
            },
            detached = sender.on_detach() => {
                tracing::debug!(?detached, hub, partition = partition.id, "receiver detached");
                break End::Detached;
            }
            kick = &mut registration.kicked => break kicked(kick),
        }
    };
    match end {
        // Clients close a receiver by detaching it, and wait for the answer.
        End::Detached => {
            let _ = sender.close().await;
        }
        End::Kicked(kick) => {
            tracing::info!(
                ?kick,
                hub,
                partition = partition.id,
                "receiver detached with an error"
            );
            let _ = sender.close_with_error(error(&kick)).await;
        }
    }
}

/// A kick received, or (its sender gone, which does not happen while registered) a plain end.
fn kicked(kick: Result<Kick, oneshot::error::RecvError>) -> End {
    kick.map_or(End::Detached, End::Kicked)
}
