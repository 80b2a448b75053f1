//! How the store authenticates to Azure Storage, and the redaction that keeps secrets out of
//! messages.

use crate::error::{Error, Result};
use crate::redact::redact;
use azure_core::credentials::{Secret, TokenCredential};
use std::{fmt, sync::Arc};

/// The credential a [`BlobCheckpointStore`](crate::BlobCheckpointStore) signs its requests with.
///
/// `Debug` never shows an account key or a SAS signature.
///
/// ```
/// use eventhub_checkpointstore::{SasToken, SharedKeyCredential, StorageCredential};
///
/// let key = SharedKeyCredential::new("devstoreaccount1", "a2V5")?;
/// let credential = StorageCredential::from(key);
/// assert!(!format!("{credential:?}").contains("a2V5"));
///
/// let sas = SasToken::new("?sv=2019-07-07&sp=rwl&sig=c2lnbmF0dXJl")?;
/// assert!(!format!("{:?}", StorageCredential::from(sas)).contains("c2lnbmF0dXJl"));
/// # Ok::<(), eventhub_checkpointstore::Error>(())
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub enum StorageCredential {
    /// Microsoft Entra ID: any `azure_core` [`TokenCredential`](https://docs.rs/azure_core/1/azure_core/credentials/trait.TokenCredential.html), e.g. from `azure_identity`.
    /// Requires an `https` endpoint.
    Token(Arc<dyn TokenCredential>),
    /// The storage account's name and key ("Shared Key" authorization).
    SharedKey(SharedKeyCredential),
    /// A shared access signature, appended to every request.
    Sas(SasToken),
    /// No credential: only for public containers or a URL that already authorizes requests.
    Anonymous,
}

impl StorageCredential {
    /// Wraps a concrete token credential, e.g. `azure_identity::DeveloperToolsCredential::new(None)?`.
    pub fn token<T: TokenCredential + 'static>(credential: Arc<T>) -> Self {
        StorageCredential::Token(credential)
    }
}

impl fmt::Debug for StorageCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageCredential::Token(_) => f.write_str("Token(..)"),
            StorageCredential::SharedKey(key) => f.debug_tuple("SharedKey").field(key).finish(),
            StorageCredential::Sas(sas) => f.debug_tuple("Sas").field(sas).finish(),
            StorageCredential::Anonymous => f.write_str("Anonymous"),
        }
    }
}

impl From<SharedKeyCredential> for StorageCredential {
    fn from(key: SharedKeyCredential) -> Self {
        StorageCredential::SharedKey(key)
    }
}

impl From<SasToken> for StorageCredential {
    fn from(sas: SasToken) -> Self {
        StorageCredential::Sas(sas)
    }
}

impl From<Arc<dyn TokenCredential>> for StorageCredential {
    fn from(credential: Arc<dyn TokenCredential>) -> Self {
        StorageCredential::Token(credential)
    }
}

/// A storage account name and its base64 account key.
#[derive(Clone)]
pub struct SharedKeyCredential {
    account: String,
    key: Secret,
}

impl SharedKeyCredential {
    /// Checks that the account name is present and the key is base64; neither is echoed on error.
    pub fn new(account: impl Into<String>, key: impl Into<String>) -> Result<Self> {
        let account = account.into();
        let key = key.into();
        if account.is_empty() {
            return Err(Error::invalid_input("the account name is empty"));
        }
        match azure_core::base64::decode(&key) {
            Ok(bytes) if !bytes.is_empty() => Ok(Self {
                account,
                key: Secret::new(key),
            }),
            _ => Err(Error::invalid_input(format!(
                "the account key for account '{account}' is not valid base64"
            ))),
        }
    }

    /// The storage account name.
    pub fn account(&self) -> &str {
        &self.account
    }

    pub(crate) fn key(&self) -> &Secret {
        &self.key
    }
}

impl fmt::Debug for SharedKeyCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedKeyCredential")
            .field("account", &self.account)
            .field("key", &"REDACTED")
            .finish()
    }
}

/// A shared access signature (the query string of a SAS URL, with or without the leading `?`).
#[derive(Clone)]
pub struct SasToken {
    /// The query string without `?`, exactly as the issuer produced it (already percent-encoded).
    query: String,
}

impl SasToken {
    /// Validates that `sas` looks like a SAS query string with a signature.
    pub fn new(sas: impl AsRef<str>) -> Result<Self> {
        let query = sas.as_ref().trim().trim_start_matches('?');
        if query.is_empty() {
            return Err(Error::invalid_input("the shared access signature is empty"));
        }
        let has_signature = url::form_urlencoded::parse(query.as_bytes())
            .any(|(name, value)| name == "sig" && !value.is_empty());
        if !has_signature {
            return Err(Error::invalid_input(
                "the shared access signature has no 'sig' parameter",
            ));
        }
        Ok(Self {
            query: query.to_owned(),
        })
    }

    /// The SAS's query pairs, percent-decoded.
    pub(crate) fn pairs(&self) -> impl Iterator<Item = (String, String)> + '_ {
        url::form_urlencoded::parse(self.query.as_bytes())
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
    }
}

impl fmt::Debug for SasToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SasToken")
            .field(&redact(&self.query))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_key_rejects_bad_key_without_echoing_it() {
        let err = SharedKeyCredential::new("acct", "not base64!!").unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }));
        assert!(!err.to_string().contains("not base64!!"));
        assert!(SharedKeyCredential::new("", "a2V5").is_err());
        let ok = SharedKeyCredential::new("acct", "a2V5").unwrap();
        assert!(!format!("{ok:?}").contains("a2V5"));
    }

    #[test]
    fn sas_requires_a_signature() {
        assert!(SasToken::new("").is_err());
        assert!(SasToken::new("?sv=2019-07-07").is_err());
        let sas = SasToken::new("?sv=2019-07-07&sig=a%2Bb").unwrap();
        assert!(sas.pairs().any(|(k, v)| k == "sig" && v == "a+b"));
        assert!(!format!("{sas:?}").contains("a%2Bb"));
    }
}
