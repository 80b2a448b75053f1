//! Event Hubs, for `lag`: a consumer client from an Event Hubs connection string (a shared access
//! signature made from its key) or from the namespace with an Entra ID credential, and what the
//! lag needs from it: the partitions' properties and the enqueued time of a partition's oldest
//! unprocessed event.

use crate::{Auth, Failure};
use azure_messaging_eventhubs::{
    ConsumerClient, OpenReceiverOptions, StartLocation, StartPosition,
};
use eventhub_checkpointstore::azure_core::{
    self,
    credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions},
    time::{Duration, OffsetDateTime},
};
use futures::StreamExt;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::{fmt, sync::Arc};

pub(crate) const CONNECTION_STRING_VAR: &str = "EVENTHUBS_CONNECTION_STRING";

/// The port an Event Hubs emulator listens on when a connection string says
/// `UseDevelopmentEmulator=true` (as every SDK assumes).
const EMULATOR_PORT: u16 = 5672;

/// How long a signature made from a shared access key is valid; the client renews it before.
const SAS_VALIDITY: Duration = Duration::hours(1);

/// An Event Hubs connection string: `Endpoint=sb://NAMESPACE/;SharedAccessKeyName=…;
/// SharedAccessKey=…` (or `SharedAccessSignature=…`), optionally `EntityPath=HUB` and
/// `UseDevelopmentEmulator=true`.
pub(crate) struct ConnectionString {
    namespace: String,
    entity_path: Option<String>,
    emulator: bool,
    auth: SharedAccess,
}

enum SharedAccess {
    Key { name: String, key: Secret },
    Signature(Secret),
}

impl fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionString")
            .field("namespace", &self.namespace)
            .field("entity_path", &self.entity_path)
            .field("emulator", &self.emulator)
            .finish_non_exhaustive()
    }
}

impl ConnectionString {
    /// Parses `text`; an unknown key, a missing endpoint or a missing key is an error naming it
    /// (and never quoting a secret).
    pub(crate) fn parse(text: &str) -> Result<Self, Failure> {
        let bad = |why: String| Failure::Refused(format!("the Event Hubs connection string {why}"));
        let (mut endpoint, mut key_name, mut key, mut signature) = (None, None, None, None);
        let (mut entity_path, mut emulator) = (None, false);
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((name, value)) = part.split_once('=') else {
                return Err(bad(
                    "has a part without '=' (expected Key=Value pairs)".into()
                ));
            };
            let value = value.trim().to_owned();
            match name.trim().to_ascii_lowercase().as_str() {
                "endpoint" => endpoint = Some(value),
                "sharedaccesskeyname" => key_name = Some(value),
                "sharedaccesskey" => key = Some(Secret::new(value)),
                "sharedaccesssignature" => signature = Some(Secret::new(value)),
                "entitypath" => entity_path = Some(value).filter(|v| !v.is_empty()),
                "usedevelopmentemulator" => emulator = value.eq_ignore_ascii_case("true"),
                _ => return Err(bad(format!("has an unknown key `{}`", name.trim()))),
            }
        }
        let endpoint = endpoint.ok_or_else(|| bad("has no Endpoint".into()))?;
        let namespace = endpoint
            .strip_prefix("sb://")
            .map(|rest| rest.trim_end_matches('/'))
            .filter(|host| !host.is_empty() && !host.contains('/'))
            .ok_or_else(|| bad("has an Endpoint that is not sb://NAMESPACE/".into()))?
            .to_owned();
        let auth = match (key_name, key, signature) {
            (_, _, Some(signature)) => SharedAccess::Signature(signature),
            (Some(name), Some(key), None) => SharedAccess::Key { name, key },
            _ => {
                return Err(bad(
                    "needs SharedAccessKeyName and SharedAccessKey, or SharedAccessSignature"
                        .into(),
                ))
            }
        };
        Ok(Self {
            namespace,
            entity_path,
            emulator,
            auth,
        })
    }
}

/// How to reach Event Hubs: from a connection string, or the namespace with Entra ID.
pub(crate) struct Connection {
    namespace: String,
    endpoint: Option<String>,
    credential: Arc<dyn TokenCredential>,
    /// How long one call to Event Hubs may take, its retries included (`--timeout`).
    timeout: std::time::Duration,
}

impl Connection {
    /// From a connection string (its namespace must be the scope's, its entity path, if any, the
    /// scope's event hub), or from `namespace` with the Entra ID credential `auth`. `endpoint`
    /// overrides where the client connects (an emulator, a proxy).
    pub(crate) fn new(
        connection_string: Option<&str>,
        namespace: &str,
        eventhub: &str,
        auth: Auth,
        endpoint: Option<String>,
        timeout: std::time::Duration,
    ) -> Result<Self, Failure> {
        let Some(text) = connection_string else {
            return Ok(Self {
                namespace: namespace.to_owned(),
                endpoint,
                credential: crate::connect::token_credential(auth)?,
                timeout,
            });
        };
        let parsed = ConnectionString::parse(text)?;
        if let Some(path) = parsed.entity_path.as_deref().filter(|p| *p != eventhub) {
            return Err(Failure::Refused(format!(
                "the Event Hubs connection string is for event hub {path}, not {eventhub} (--eventhub)"
            )));
        }
        let endpoint = endpoint.or_else(|| {
            parsed
                .emulator
                .then(|| format!("amqp://{}:{EMULATOR_PORT}", parsed.namespace))
        });
        let resource = format!("sb://{}/{eventhub}", parsed.namespace);
        Ok(Self {
            namespace: parsed.namespace,
            endpoint,
            credential: Arc::new(SharedAccessCredential {
                resource,
                auth: parsed.auth,
            }),
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
            Ok(Err(err)) => Err(unreachable_hub(&self.namespace, err)),
            Err(_) => Err(unreachable_hub(
                &self.namespace,
                format!(
                    "no answer within {} (--timeout)",
                    humantime::format_duration(self.timeout)
                ),
            )),
        }
    }

    /// A consumer client on `eventhub`'s `consumer_group`.
    pub(crate) async fn open(
        &self,
        eventhub: &str,
        consumer_group: &str,
    ) -> Result<ConsumerClient, Failure> {
        let mut builder = ConsumerClient::builder().with_consumer_group(consumer_group.to_owned());
        if let Some(endpoint) = &self.endpoint {
            builder = builder.with_custom_endpoint(endpoint.clone());
        }
        self.bounded(builder.open(
            &self.namespace,
            eventhub.to_owned(),
            self.credential.clone(),
        ))
        .await
    }
}

/// A failure to reach Event Hubs: exit 1, as a store that cannot be reached.
fn unreachable_hub(namespace: &str, err: impl fmt::Display) -> Failure {
    Failure::EventHubs(format!("Event Hubs namespace {namespace}: {err}"))
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

/// A shared access signature for the hub, made from the connection string's key (or given in it).
struct SharedAccessCredential {
    /// `sb://NAMESPACE/HUB`: what the signature grants.
    resource: String,
    auth: SharedAccess,
}

impl fmt::Debug for SharedAccessCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedAccessCredential")
            .field("resource", &self.resource)
            .finish_non_exhaustive()
    }
}

/// What a resource URI keeps unescaped in a signature (as the other SDKs sign).
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

#[async_trait::async_trait]
impl TokenCredential for SharedAccessCredential {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        match &self.auth {
            SharedAccess::Signature(signature) => Ok(AccessToken::new(
                signature.secret().to_owned(),
                // Its own `se=` bounds it; the service refuses it once expired.
                OffsetDateTime::now_utc() + SAS_VALIDITY,
            )),
            SharedAccess::Key { name, key } => {
                let expires_on = OffsetDateTime::now_utc() + SAS_VALIDITY;
                let token = sign(&self.resource, name, key, expires_on.unix_timestamp())?;
                Ok(AccessToken::new(token, expires_on))
            }
        }
    }
}

/// `SharedAccessSignature sr=…&sig=…&se=…&skn=…`: the resource granted until `expiry` (Unix
/// seconds), signed with the key named `name`.
fn sign(resource: &str, name: &str, key: &Secret, expiry: i64) -> azure_core::Result<String> {
    let resource = utf8_percent_encode(resource, URI_COMPONENT).to_string();
    // The key signs as its text's bytes, not base64-decoded (unlike Storage's); azure_core's
    // HMAC decodes its key, so hand it the bytes encoded.
    let key = Secret::new(azure_core::base64::encode(key.secret().as_bytes()));
    let signature = azure_core::hmac::hmac_sha256(&format!("{resource}\n{expiry}"), &key)?;
    let signature = utf8_percent_encode(&signature, URI_COMPONENT);
    Ok(format!(
        "SharedAccessSignature sr={resource}&sig={signature}&se={expiry}&skn={name}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(text: &str) -> String {
        match ConnectionString::parse(text) {
            Err(Failure::Refused(message)) => message,
            Err(_) => panic!("not a refusal"),
            Ok(parsed) => panic!("parsed: {parsed:?}"),
        }
    }

    #[test]
    fn connection_strings_parse_and_refuse_with_the_reason() {
        let parsed = ConnectionString::parse(
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=c2VjcmV0;EntityPath=hub",
        )
        .unwrap();
        assert_eq!(parsed.namespace, "ns.servicebus.windows.net");
        assert_eq!(parsed.entity_path.as_deref(), Some("hub"));
        assert!(!parsed.emulator);
        let debug = format!("{parsed:?}");
        assert!(!debug.contains("c2VjcmV0"), "{debug}");

        let emulator = ConnectionString::parse(
            "Endpoint=sb://localhost;SharedAccessKeyName=k;SharedAccessKey=k;UseDevelopmentEmulator=true",
        )
        .unwrap();
        assert!(emulator.emulator);
        assert_eq!(emulator.namespace, "localhost");

        assert!(refusal("SharedAccessKeyName=k;SharedAccessKey=k").contains("no Endpoint"));
        assert!(
            refusal("Endpoint=https://ns/;SharedAccessKeyName=k;SharedAccessKey=k")
                .contains("sb://NAMESPACE/")
        );
        let unknown = refusal("Endpoint=sb://ns/;SharedAccesKey=secretvalue;SharedAccessKeyName=k");
        assert!(
            unknown.contains("unknown key `SharedAccesKey`"),
            "{unknown}"
        );
        assert!(!unknown.contains("secretvalue"), "{unknown}");
        assert!(refusal("Endpoint=sb://ns/;SharedAccessKeyName=k").contains("SharedAccessKey"));
        assert!(refusal("Endpoint=sb://ns/;garbage").contains("without '='"));
    }

    #[test]
    fn a_key_signs_the_hub_as_the_other_sdks_do() {
        // The vector: Python's hmac, base64 and urllib.parse.quote_plus over the same input.
        let token = sign(
            "sb://ns.servicebus.windows.net/hub",
            "listen",
            &Secret::new("key"),
            1_700_000_000,
        )
        .unwrap();
        assert_eq!(
            token,
            "SharedAccessSignature sr=sb%3A%2F%2Fns.servicebus.windows.net%2Fhub\
             &sig=rDiwY2uU7ul4Lt2mKDkjbHdrxF8ZAmzqn9iAG5Epa6M%3D&se=1700000000&skn=listen"
        );
    }
}
