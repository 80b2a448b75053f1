//! Where a [`Processor`](super::Processor) reads from, and how it opens a consumer client there
//! (again, when the last one's connection died): a namespace with any token credential, an Event
//! Hubs connection string, or a function of the caller's.

use crate::azure_core::{
    self,
    credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions},
    time::{Duration, OffsetDateTime},
};
use crate::error::{Error, Result};
use crate::scope::Scope;
use azure_messaging_eventhubs::ConsumerClient;
use futures::future::BoxFuture;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::{fmt, sync::Arc};

/// The port an Event Hubs emulator listens on when a connection string says
/// `UseDevelopmentEmulator=true` (as every SDK assumes).
const EMULATOR_PORT: u16 = 5672;

/// How long a signature made from a shared access key is valid; the client renews it before.
const SAS_VALIDITY: Duration = Duration::hours(1);

/// A function that opens a consumer client (see [`Connection::from_fn`]).
type Open =
    dyn Fn() -> BoxFuture<'static, azure_messaging_eventhubs::Result<ConsumerClient>> + Send + Sync;

/// One consumer group of one event hub, and how to open consumer clients on it.
///
/// ```
/// use eventhub_checkpointstore::processor::Connection;
///
/// // The local emulator's connection string (any key): plain AMQP on localhost:5672.
/// let connection = Connection::from_connection_string(
///     "Endpoint=sb://localhost;SharedAccessKeyName=k;SharedAccessKey=k;UseDevelopmentEmulator=true",
///     Some("telemetry"),
/// )?
/// .with_consumer_group("analytics");
/// assert_eq!(connection.scope().fully_qualified_namespace, "localhost");
/// assert_eq!(connection.scope().eventhub_name, "telemetry");
/// # Ok::<(), eventhub_checkpointstore::Error>(())
/// ```
#[derive(Clone)]
pub struct Connection {
    namespace: String,
    eventhub: String,
    consumer_group: String,
    endpoint: Option<String>,
    opener: Opener,
}

#[derive(Clone)]
enum Opener {
    Credential(Arc<dyn TokenCredential>),
    Custom(Arc<Open>),
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("namespace", &self.namespace)
            .field("eventhub", &self.eventhub)
            .field("consumer_group", &self.consumer_group)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// `eventhub` in the namespace `fully_qualified_namespace` (e.g.
    /// `myns.servicebus.windows.net`), authenticated by `credential` (Entra ID through
    /// `azure_identity`, or any token credential), consumer group `$Default`.
    pub fn new(
        fully_qualified_namespace: impl Into<String>,
        eventhub: impl Into<String>,
        credential: Arc<dyn TokenCredential>,
    ) -> Self {
        Self::opened_by(
            fully_qualified_namespace.into(),
            eventhub.into(),
            Opener::Credential(credential),
        )
    }

    /// Consumer group `$Default`, the namespace's own endpoint.
    fn opened_by(namespace: String, eventhub: String, opener: Opener) -> Self {
        Self {
            namespace,
            eventhub,
            consumer_group: "$Default".into(),
            endpoint: None,
            opener,
        }
    }

    /// From an Event Hubs connection string, `Endpoint=sb://NAMESPACE/;SharedAccessKeyName=…;
    /// SharedAccessKey=…` (or `SharedAccessSignature=…`), with `EntityPath=HUB` or `eventhub`
    /// (both: they must agree), and `UseDevelopmentEmulator=true` for an emulator on the
    /// endpoint's host and port (`sb://localhost:PORT`; port 5672 when it gives none), whose
    /// records are named after the host alone. Consumer group `$Default`. An unknown key, a missing endpoint, key or
    /// hub is an [`Error::InvalidInput`] naming it (never quoting a secret).
    pub fn from_connection_string(text: &str, eventhub: Option<&str>) -> Result<Self> {
        let parsed = ConnectionString::parse(text)?;
        let eventhub = match (parsed.entity_path.as_deref(), eventhub) {
            (Some(path), Some(hub)) if path != hub => {
                return Err(bad(format!("is for event hub {path}, not {hub}")))
            }
            (Some(hub), _) | (None, Some(hub)) => hub.to_owned(),
            (None, None) => {
                return Err(bad(
                    "names no event hub (EntityPath): name it in the call".into()
                ))
            }
        };
        let endpoint = parsed.emulator.then(|| {
            let port = parsed.port.unwrap_or(EMULATOR_PORT);
            format!("amqp://{}:{port}", parsed.namespace)
        });
        let resource = format!("sb://{}/{eventhub}", parsed.namespace);
        let opener = Opener::Credential(Arc::new(SharedAccessCredential {
            resource,
            auth: parsed.auth,
        }));
        Ok(Self {
            endpoint,
            ..Self::opened_by(parsed.namespace, eventhub, opener)
        })
    }

    /// `eventhub` in `fully_qualified_namespace`, with consumer clients opened by `open`: for
    /// options this type does not carry (retry options, an application id). Its future is `Send`,
    /// so that [`open`](Self::open) is, wherever it is called; the clients it opens must be on
    /// this namespace, hub and [consumer group](Self::with_consumer_group).
    pub fn from_fn(
        fully_qualified_namespace: impl Into<String>,
        eventhub: impl Into<String>,
        open: impl Fn() -> BoxFuture<'static, azure_messaging_eventhubs::Result<ConsumerClient>>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        Self::opened_by(
            fully_qualified_namespace.into(),
            eventhub.into(),
            Opener::Custom(Arc::new(open)),
        )
    }

    /// The same connection on consumer group `consumer_group`.
    pub fn with_consumer_group(mut self, consumer_group: impl Into<String>) -> Self {
        self.consumer_group = consumer_group.into();
        self
    }

    /// The same connection through `url` (e.g. `amqp://127.0.0.1:5672` for an emulator, or a
    /// proxy); the namespace stays what the records are named after.
    pub fn with_custom_endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// The consumer group this connection reads, as the store names its records.
    pub fn scope(&self) -> Scope {
        Scope::new(
            self.namespace.clone(),
            self.eventhub.clone(),
            self.consumer_group.clone(),
        )
    }

    /// Opens a consumer client (one AMQP connection).
    pub async fn open(&self) -> azure_messaging_eventhubs::Result<ConsumerClient> {
        match &self.opener {
            Opener::Custom(open) => open().await,
            Opener::Credential(credential) => {
                let mut builder =
                    ConsumerClient::builder().with_consumer_group(self.consumer_group.clone());
                if let Some(endpoint) = &self.endpoint {
                    builder = builder.with_custom_endpoint(endpoint.clone());
                }
                builder
                    .open(&self.namespace, self.eventhub.clone(), credential.clone())
                    .await
            }
        }
    }
}

fn bad(why: String) -> Error {
    Error::invalid_input(format!("the Event Hubs connection string {why}"))
}

/// An Event Hubs connection string's parts.
struct ConnectionString {
    /// The endpoint's host, which the records are named after (an emulator's port left out, as
    /// the other SDKs leave it out).
    namespace: String,
    /// An emulator's port, when the endpoint gives one.
    port: Option<u16>,
    entity_path: Option<String>,
    emulator: bool,
    auth: SharedAccess,
}

enum SharedAccess {
    Key { name: String, key: Secret },
    Signature(Secret),
}

impl ConnectionString {
    fn parse(text: &str) -> Result<Self> {
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
            .ok_or_else(|| bad("has an Endpoint that is not sb://NAMESPACE/".into()))?;
        let (namespace, port) = match namespace.rsplit_once(':') {
            Some((host, port)) if emulator => {
                let port = port.parse().map_err(|_| {
                    bad(format!(
                        "has an Endpoint whose port `{port}` is not a number"
                    ))
                })?;
                (host.to_owned(), Some(port))
            }
            Some(_) => {
                return Err(bad(
                    "has a port in its Endpoint, which only an emulator's may have \
                     (UseDevelopmentEmulator=true)"
                        .into(),
                ))
            }
            None => (namespace.to_owned(), None),
        };
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
            port,
            entity_path,
            emulator,
            auth,
        })
    }
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
        match Connection::from_connection_string(text, Some("hub")) {
            Err(Error::InvalidInput { message }) => message,
            Err(err) => panic!("not a refusal: {err}"),
            Ok(parsed) => panic!("parsed: {parsed:?}"),
        }
    }

    #[test]
    fn connection_strings_parse_and_refuse_with_the_reason() {
        let parsed = Connection::from_connection_string(
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=c2VjcmV0;EntityPath=hub",
            None,
        )
        .unwrap();
        assert_eq!(parsed.namespace, "ns.servicebus.windows.net");
        assert_eq!(parsed.eventhub, "hub");
        assert_eq!(parsed.endpoint, None);
        let debug = format!("{parsed:?}");
        assert!(!debug.contains("c2VjcmV0"), "{debug}");

        let emulator = Connection::from_connection_string(
            "Endpoint=sb://localhost;SharedAccessKeyName=k;SharedAccessKey=k;UseDevelopmentEmulator=true",
            Some("hub"),
        )
        .unwrap();
        assert_eq!(emulator.endpoint.as_deref(), Some("amqp://localhost:5672"));
        assert_eq!(emulator.namespace, "localhost");
        // The port of an emulator that is not on 5672 (JavaScript's SDK reads it the same way).
        let elsewhere = Connection::from_connection_string(
            "Endpoint=sb://localhost:40123;SharedAccessKeyName=k;SharedAccessKey=k;UseDevelopmentEmulator=true",
            Some("hub"),
        )
        .unwrap();
        assert_eq!(
            elsewhere.endpoint.as_deref(),
            Some("amqp://localhost:40123")
        );
        assert_eq!(elsewhere.namespace, "localhost");
        assert!(refusal(
            "Endpoint=sb://localhost:x;SharedAccessKeyName=k;SharedAccessKey=k;UseDevelopmentEmulator=true"
        )
        .contains("port `x` is not a number"));
        assert!(
            refusal("Endpoint=sb://ns:5671/;SharedAccessKeyName=k;SharedAccessKey=k")
                .contains("only an emulator's")
        );

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
        assert!(refusal(
            "Endpoint=sb://ns/;SharedAccessKeyName=k;SharedAccessKey=k;EntityPath=other"
        )
        .contains("is for event hub other, not hub"));
        assert!(matches!(
            Connection::from_connection_string("Endpoint=sb://ns/;SharedAccessKeyName=k;SharedAccessKey=k", None),
            Err(Error::InvalidInput { message }) if message.contains("names no event hub")
        ));
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
