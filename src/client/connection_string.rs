//! Azure Storage connection strings: `Key=Value` pairs separated by `;`.
//!
//! Keys are case-insensitive and values may contain `=` (base64 keys end with it). Errors name the
//! offending key and never echo a key or signature.

use crate::client::credential::{SasToken, SharedKeyCredential, StorageCredential};
use crate::client::Service;
use crate::error::{Error, Result};
use azure_core::http::Url;
use std::{fmt, str::FromStr};

/// The account of the Azurite emulator and of the legacy Storage Emulator: a published, well-known
/// development key, not a secret.
pub const DEVELOPMENT_ACCOUNT_NAME: &str = "devstoreaccount1";
/// The well-known key of [`DEVELOPMENT_ACCOUNT_NAME`].
pub const DEVELOPMENT_ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const DEVELOPMENT_BLOB_PORT: u16 = 10000;
const DEVELOPMENT_TABLE_PORT: u16 = 10002;

/// A parsed connection string: the blob and table endpoints and the credential to use with them.
///
/// ```
/// use eventhub_checkpointstore::ConnectionString;
///
/// let conn: ConnectionString = "UseDevelopmentStorage=true".parse()?;
/// assert_eq!(conn.blob_endpoint().unwrap().as_str(), "http://127.0.0.1:10000/devstoreaccount1");
/// assert_eq!(conn.table_endpoint().unwrap().as_str(), "http://127.0.0.1:10002/devstoreaccount1");
///
/// let conn: ConnectionString =
///     "DefaultEndpointsProtocol=https;AccountName=myaccount;AccountKey=a2V5;EndpointSuffix=core.windows.net"
///         .parse()?;
/// assert_eq!(conn.blob_endpoint().unwrap().as_str(), "https://myaccount.blob.core.windows.net/");
/// assert_eq!(conn.table_endpoint().unwrap().as_str(), "https://myaccount.table.core.windows.net/");
///
/// // A table-only connection string has no blob endpoint.
/// let conn: ConnectionString = "TableEndpoint=https://myaccount.table.core.windows.net;SharedAccessSignature=sv=2019-02-02&sig=c2ln".parse()?;
/// assert!(conn.blob_endpoint().is_none());
///
/// let err = "AccountName=myaccount;AccountKey=not-base64!".parse::<ConnectionString>().unwrap_err();
/// assert!(!err.to_string().contains("not-base64!"));
/// # Ok::<(), eventhub_checkpointstore::Error>(())
/// ```
#[derive(Clone)]
pub struct ConnectionString {
    blob_endpoint: Option<Url>,
    table_endpoint: Option<Url>,
    credential: StorageCredential,
}

impl ConnectionString {
    /// Parses `text`; see the module docs for the accepted keys.
    pub fn parse(text: &str) -> Result<Self> {
        Fields::parse(text)?.resolve()
    }

    /// The blob service endpoint (account URL): `BlobEndpoint`, or derived from `AccountName`.
    pub fn blob_endpoint(&self) -> Option<&Url> {
        self.blob_endpoint.as_ref()
    }

    /// The table service endpoint (account URL): `TableEndpoint`, or derived from `AccountName`.
    pub fn table_endpoint(&self) -> Option<&Url> {
        self.table_endpoint.as_ref()
    }

    /// The credential the connection string carries ([`StorageCredential::Anonymous`] if none).
    pub fn credential(&self) -> &StorageCredential {
        &self.credential
    }

    /// The endpoint of `service` and the credential, or an error naming the key that is missing.
    pub(crate) fn for_service(self, service: Service) -> Result<(Url, StorageCredential)> {
        let endpoint = match service {
            Service::Blob => self.blob_endpoint,
            Service::Table => self.table_endpoint,
        };
        let endpoint = endpoint.ok_or_else(|| {
            Error::invalid_connection_string(format!(
                "no {} endpoint: give {}Endpoint or AccountName",
                service.name(),
                key_prefix(service)
            ))
        })?;
        Ok((endpoint, self.credential))
    }
}

impl FromStr for ConnectionString {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self> {
        Self::parse(text)
    }
}

impl fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionString")
            .field(
                "blob_endpoint",
                &self.blob_endpoint.as_ref().map(Url::as_str),
            )
            .field(
                "table_endpoint",
                &self.table_endpoint.as_ref().map(Url::as_str),
            )
            .field("credential", &self.credential)
            .finish()
    }
}

/// The prefix of a service's endpoint key (`BlobEndpoint`, `TableEndpoint`).
fn key_prefix(service: Service) -> &'static str {
    match service {
        Service::Blob => "Blob",
        Service::Table => "Table",
    }
}

/// The service's port on the development storage emulator.
fn development_port(service: Service) -> u16 {
    match service {
        Service::Blob => DEVELOPMENT_BLOB_PORT,
        Service::Table => DEVELOPMENT_TABLE_PORT,
    }
}

/// Keys of Azure Storage connection strings that this crate does not use but accepts: portal
/// connection strings carry them.
const OTHER_SERVICE_KEYS: [&str; 7] = [
    "QueueEndpoint",
    "FileEndpoint",
    "BlobSecondaryEndpoint",
    "QueueSecondaryEndpoint",
    "TableSecondaryEndpoint",
    "FileSecondaryEndpoint",
    "DfsEndpoint",
];

/// The keys this crate reads, as documented.
const KNOWN_KEYS: [&str; 9] = [
    "AccountName",
    "AccountKey",
    "DefaultEndpointsProtocol",
    "EndpointSuffix",
    "BlobEndpoint",
    "TableEndpoint",
    "SharedAccessSignature",
    "UseDevelopmentStorage",
    "DevelopmentStorageProxyUri",
];

/// The recognised keys, before they are combined. A key no Azure Storage connection string has
/// (a typo such as `AcountKey`) is refused, as the .NET and Java SDKs refuse it: ignoring it would
/// turn a misspelled credential into anonymous access that fails later with a misleading 403.
#[derive(Default)]
struct Fields<'a> {
    account_name: Option<&'a str>,
    account_key: Option<&'a str>,
    protocol: Option<&'a str>,
    endpoint_suffix: Option<&'a str>,
    blob_endpoint: Option<&'a str>,
    table_endpoint: Option<&'a str>,
    sas: Option<&'a str>,
    use_development_storage: Option<&'a str>,
    development_proxy: Option<&'a str>,
}

impl<'a> Fields<'a> {
    fn parse(text: &'a str) -> Result<Self> {
        let mut fields = Fields::default();
        let mut any = false;
        for (index, segment) in text.split(';').enumerate() {
            let segment = segment.trim();
            if segment.is_empty() {
                continue;
            }
            let Some((key, value)) = segment.split_once('=') else {
                // The segment may be a fragment of a key: say where it is, not what it is.
                return Err(Error::invalid_connection_string(format!(
                    "segment {} is not of the form Key=Value",
                    index + 1
                )));
            };
            let (key, value) = (key.trim(), value.trim());
            let slot = match key.to_ascii_lowercase().as_str() {
                "accountname" => &mut fields.account_name,
                "accountkey" => &mut fields.account_key,
                "defaultendpointsprotocol" => &mut fields.protocol,
                "endpointsuffix" => &mut fields.endpoint_suffix,
                "blobendpoint" => &mut fields.blob_endpoint,
                "tableendpoint" => &mut fields.table_endpoint,
                "sharedaccesssignature" => &mut fields.sas,
                "usedevelopmentstorage" => &mut fields.use_development_storage,
                "developmentstorageproxyuri" => &mut fields.development_proxy,
                _ if OTHER_SERVICE_KEYS
                    .iter()
                    .any(|k| k.eq_ignore_ascii_case(key)) =>
                {
                    continue
                }
                _ => return Err(unknown_key(key)),
            };
            if slot.is_some() {
                return Err(Error::invalid_connection_string(format!(
                    "{key} is given more than once"
                )));
            }
            if value.is_empty() {
                return Err(Error::invalid_connection_string(format!("{key} is empty")));
            }
            *slot = Some(value);
            any = true;
        }
        if !any {
            return Err(Error::invalid_connection_string(
                "no recognised key (expected AccountName, AccountKey, BlobEndpoint, TableEndpoint, SharedAccessSignature or UseDevelopmentStorage)",
            ));
        }
        Ok(fields)
    }

    fn resolve(self) -> Result<ConnectionString> {
        if let Some(flag) = self.use_development_storage {
            return self.resolve_development(flag);
        }
        let blob_endpoint = self.endpoint(Service::Blob, self.blob_endpoint)?;
        let table_endpoint = self.endpoint(Service::Table, self.table_endpoint)?;
        if blob_endpoint.is_none() && table_endpoint.is_none() {
            return Err(Error::invalid_connection_string(
                "neither BlobEndpoint, TableEndpoint nor AccountName is given",
            ));
        }
        let credential = match (self.account_key, self.sas) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid_connection_string(
                    "both AccountKey and SharedAccessSignature are given; use one",
                ))
            }
            (Some(key), None) => {
                let account = self.account_name.ok_or_else(|| {
                    Error::invalid_connection_string("AccountKey is given without AccountName")
                })?;
                SharedKeyCredential::new(account, key)
                    .map_err(|_| {
                        Error::invalid_connection_string("AccountKey is not valid base64")
                    })?
                    .into()
            }
            (None, Some(sas)) => SasToken::new(sas)
                .map_err(|_| {
                    Error::invalid_connection_string(
                        "SharedAccessSignature is not a SAS query string with a 'sig' parameter",
                    )
                })?
                .into(),
            // An account name says which account's key or SAS to use: without either, every
            // request would go out anonymously and fail with a 403 far from the cause.
            (None, None) if self.account_name.is_some() => {
                return Err(Error::invalid_connection_string(
                    "AccountName is given without AccountKey or SharedAccessSignature: no credential to use",
                ))
            }
            (None, None) => StorageCredential::Anonymous,
        };
        Ok(ConnectionString {
            blob_endpoint,
            table_endpoint,
            credential,
        })
    }

    /// The explicit endpoint of `service`, or the one derived from the account name.
    fn endpoint(&self, service: Service, explicit: Option<&str>) -> Result<Option<Url>> {
        let key = format!("{}Endpoint", key_prefix(service));
        match (explicit, self.account_name) {
            (Some(endpoint), _) => parse_endpoint(&key, endpoint).map(Some),
            (None, Some(account)) => {
                let protocol = self.protocol.unwrap_or("https").to_ascii_lowercase();
                if protocol != "https" && protocol != "http" {
                    return Err(Error::invalid_connection_string(
                        "DefaultEndpointsProtocol must be http or https",
                    ));
                }
                let suffix = self.endpoint_suffix.unwrap_or("core.windows.net");
                parse_endpoint(
                    "AccountName/EndpointSuffix",
                    &format!("{protocol}://{account}.{}.{suffix}", service.name()),
                )
                .map(Some)
            }
            (None, None) => Ok(None),
        }
    }

    fn resolve_development(&self, flag: &str) -> Result<ConnectionString> {
        if !flag.eq_ignore_ascii_case("true") {
            return Err(Error::invalid_connection_string(
                "UseDevelopmentStorage must be 'true'",
            ));
        }
        if self.account_name.is_some()
            || self.account_key.is_some()
            || self.blob_endpoint.is_some()
            || self.table_endpoint.is_some()
            || self.sas.is_some()
        {
            return Err(Error::invalid_connection_string(
                "UseDevelopmentStorage cannot be combined with AccountName, AccountKey, BlobEndpoint, TableEndpoint or SharedAccessSignature",
            ));
        }
        let base = match self.development_proxy {
            Some(proxy) => parse_endpoint("DevelopmentStorageProxyUri", proxy)?,
            None => Url::parse("http://127.0.0.1").expect("a valid literal URL"),
        };
        let endpoint = |service: Service| -> Result<Url> {
            let mut endpoint = base.clone();
            endpoint
                .set_port(Some(development_port(service)))
                .map_err(|()| {
                    Error::invalid_connection_string("DevelopmentStorageProxyUri has no host")
                })?;
            endpoint.set_path(DEVELOPMENT_ACCOUNT_NAME);
            Ok(endpoint)
        };
        Ok(ConnectionString {
            blob_endpoint: Some(endpoint(Service::Blob)?),
            table_endpoint: Some(endpoint(Service::Table)?),
            credential: SharedKeyCredential::new(
                DEVELOPMENT_ACCOUNT_NAME,
                DEVELOPMENT_ACCOUNT_KEY,
            )?
            .into(),
        })
    }
}

/// The error for a key no connection string has: it names the key (a key name, not a secret) and
/// the known key it most resembles, never the value.
fn unknown_key(key: &str) -> Error {
    let lower = key.to_ascii_lowercase();
    let nearest = KNOWN_KEYS
        .iter()
        .chain(&OTHER_SERVICE_KEYS)
        .map(|known| (edit_distance(&lower, &known.to_ascii_lowercase()), *known))
        .min()
        .filter(|(distance, _)| *distance <= 2);
    let key = key.chars().take(64).collect::<String>();
    Error::invalid_connection_string(match nearest {
        Some((_, known)) => format!("unknown key '{key}' (did you mean {known}?)"),
        None => format!(
            "unknown key '{key}' (known keys: {})",
            KNOWN_KEYS.join(", ")
        ),
    })
}

/// Levenshtein distance, for "did you mean": keys are short.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

fn parse_endpoint(key: &str, value: &str) -> Result<Url> {
    let url = Url::parse(value.trim_end_matches('/'))
        .map_err(|e| Error::invalid_connection_string(format!("{key} is not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(Error::invalid_connection_string(format!(
            "{key} must be an http or https URL with a host"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::invalid_connection_string(format!(
            "{key} must not have a query or fragment (put a SAS in SharedAccessSignature)"
        )));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "a2V5LXdpdGgtcGFkZGluZw==";

    fn shared_key_account(conn: &ConnectionString) -> &str {
        match conn.credential() {
            StorageCredential::SharedKey(k) => k.account(),
            other => panic!("expected a shared key, got {other:?}"),
        }
    }

    #[test]
    fn development_storage_shorthand() {
        let conn = ConnectionString::parse("UseDevelopmentStorage=true;").unwrap();
        assert_eq!(
            conn.blob_endpoint().unwrap().as_str(),
            "http://127.0.0.1:10000/devstoreaccount1"
        );
        assert_eq!(shared_key_account(&conn), "devstoreaccount1");

        let conn = ConnectionString::parse(
            "usedevelopmentstorage=TRUE;DevelopmentStorageProxyUri=http://myproxy",
        )
        .unwrap();
        assert_eq!(
            conn.blob_endpoint().unwrap().as_str(),
            "http://myproxy:10000/devstoreaccount1"
        );
    }

    #[test]
    fn explicit_key_with_derived_endpoint_and_values_containing_equals() {
        let conn = ConnectionString::parse(&format!(
            " AccountName = acct ; AccountKey={KEY};EndpointSuffix=core.chinacloudapi.cn;"
        ))
        .unwrap();
        assert_eq!(
            conn.blob_endpoint().unwrap().as_str(),
            "https://acct.blob.core.chinacloudapi.cn/"
        );
        assert_eq!(shared_key_account(&conn), "acct");
    }

    #[test]
    fn blob_endpoint_overrides_derived_one() {
        let conn = ConnectionString::parse(&format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={KEY};BlobEndpoint=http://127.0.0.1:12345/devstoreaccount1/;QueueEndpoint=http://127.0.0.1:1/x"
        ))
        .unwrap();
        assert_eq!(
            conn.blob_endpoint().unwrap().as_str(),
            "http://127.0.0.1:12345/devstoreaccount1"
        );
    }

    #[test]
    fn table_endpoints_explicit_derived_and_development() {
        let conn = ConnectionString::parse(&format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={KEY};BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;TableEndpoint=http://127.0.0.1:2/devstoreaccount1"
        ))
        .unwrap();
        assert_eq!(
            conn.table_endpoint().unwrap().as_str(),
            "http://127.0.0.1:2/devstoreaccount1"
        );
        let conn = ConnectionString::parse(&format!("AccountName=acct;AccountKey={KEY}")).unwrap();
        assert_eq!(
            conn.table_endpoint().unwrap().as_str(),
            "https://acct.table.core.windows.net/"
        );
        let conn = ConnectionString::parse("UseDevelopmentStorage=true").unwrap();
        assert_eq!(
            conn.table_endpoint().unwrap().as_str(),
            "http://127.0.0.1:10002/devstoreaccount1"
        );
        // Table only: the blob store says what is missing.
        let conn = ConnectionString::parse(
            "TableEndpoint=https://acct.table.core.windows.net;SharedAccessSignature=sv=2019-02-02&sig=abc",
        )
        .unwrap();
        let err = conn.for_service(Service::Blob).unwrap_err();
        assert!(
            err.to_string().contains("BlobEndpoint or AccountName"),
            "{err}"
        );
    }

    #[test]
    fn other_services_keys_are_accepted_and_an_endpoint_alone_is_anonymous() {
        let conn = ConnectionString::parse(&format!(
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={KEY};\
             QueueEndpoint=https://acct.queue.core.windows.net;\
             fileendpoint=https://acct.file.core.windows.net;\
             BlobSecondaryEndpoint=https://acct-secondary.blob.core.windows.net"
        ))
        .unwrap();
        assert_eq!(shared_key_account(&conn), "acct");
        // A public container: an endpoint with no account and no credential.
        let conn =
            ConnectionString::parse("BlobEndpoint=https://acct.blob.core.windows.net").unwrap();
        assert!(matches!(conn.credential(), StorageCredential::Anonymous));
    }

    #[test]
    fn sas_connection_string() {
        let conn = ConnectionString::parse(
            "BlobEndpoint=https://acct.blob.core.windows.net;SharedAccessSignature=sv=2019-07-07&sig=abc%3D",
        )
        .unwrap();
        assert!(matches!(conn.credential(), StorageCredential::Sas(_)));
        assert!(!format!("{conn:?}").contains("abc%3D"));
    }

    #[test]
    fn bad_connection_strings_name_the_problem_and_hide_secrets() {
        let cases: &[(&str, &str)] = &[
            ("", "no recognised key"),
            ("Foo=bar", "unknown key 'Foo'"),
            (
                "AccountName=a;AcountKey=topsecretsig",
                "unknown key 'AcountKey' (did you mean AccountKey?)",
            ),
            (
                "AccountName=a;AccountKey=a2V5;BlobEndPont=https://x",
                "did you mean BlobEndpoint?",
            ),
            (
                "AccountName=a;SharedAccesSignature=sv=1&sig=topsecretsig",
                "did you mean SharedAccessSignature?",
            ),
            (
                "UseDevelopmentStorage=true;Colour=topsecretsig",
                "unknown key 'Colour' (known keys: AccountName",
            ),
            (
                "AccountName=a;EndpointSuffix=core.windows.net",
                "AccountName is given without AccountKey or SharedAccessSignature",
            ),
            ("AccountName=a;justsecretstuff", "segment 2"),
            (
                "AccountName=a;AccountKey=%%%notbase64secret",
                "AccountKey is not valid base64",
            ),
            (
                "AccountKey=a2V5",
                "neither BlobEndpoint, TableEndpoint nor AccountName",
            ),
            (
                "BlobEndpoint=https://x;AccountKey=a2V5",
                "without AccountName",
            ),
            ("AccountName=a;AccountName=b", "more than once"),
            ("AccountName=", "AccountName is empty"),
            (
                "AccountName=a;DefaultEndpointsProtocol=ftp",
                "http or https",
            ),
            ("BlobEndpoint=not a url", "BlobEndpoint is not a valid URL"),
            ("BlobEndpoint=ftp://x", "http or https"),
            (
                "BlobEndpoint=https://x/?sig=topsecretsig",
                "must not have a query",
            ),
            ("UseDevelopmentStorage=yes", "must be 'true'"),
            (
                "UseDevelopmentStorage=true;AccountName=a",
                "cannot be combined",
            ),
            (
                "AccountName=a;AccountKey=a2V5;SharedAccessSignature=sig=topsecretsig",
                "both AccountKey and SharedAccessSignature",
            ),
            (
                "AccountName=a;SharedAccessSignature=sv=1&topsecretsig",
                "'sig' parameter",
            ),
        ];
        for (text, expected) in cases {
            let err = ConnectionString::parse(text).unwrap_err();
            assert!(matches!(err, Error::InvalidInput { .. }), "{text}: {err:?}");
            let shown = format!("{err} {err:?}");
            assert!(shown.contains(expected), "{text}: {shown}");
            for secret in ["%%%notbase64secret", "topsecretsig", "justsecretstuff"] {
                assert!(!shown.contains(secret), "{text} leaked: {shown}");
            }
        }
    }
}
