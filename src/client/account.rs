//! A storage account as both stores reach it: its URL (with a SAS in the query taken as the
//! credential) and the pipeline options that carry the shared transport and the authorization.

use super::credential::{SasToken, StorageCredential};
use super::Service;
use crate::error::{Error, Result};
use azure_core::http::{new_http_client, ClientOptions, HttpClientOptions, Transport, Url};

/// An account as a store reaches it: its URL (without a query), the credential, and the
/// pipeline options that authorize every request with it.
pub(crate) struct Account {
    pub(crate) url: Url,
    pub(crate) credential: StorageCredential,
    /// The service version every request carries, checked.
    pub(crate) api_version: String,
    pub(crate) client_options: ClientOptions,
}

/// What a service-backed store is opened with: where, as whom, and how.
pub(crate) struct Open<'a> {
    pub(crate) service: Service,
    pub(crate) account_url: &'a str,
    pub(crate) credential: StorageCredential,
    /// `None` for `default_version`.
    pub(crate) api_version: Option<String>,
    pub(crate) default_version: &'static str,
    pub(crate) oldest_version: &'static str,
    pub(crate) client_options: ClientOptions,
}

impl Account {
    /// The account `open` names, with its service version checked and its client options
    /// completed by [`client_options`].
    pub(crate) fn new(open: Open<'_>) -> Result<Self> {
        let (url, credential) = parse_url(open.account_url, open.credential)?;
        let api_version = open
            .api_version
            .unwrap_or_else(|| open.default_version.to_owned());
        super::check_api_version(&api_version, open.oldest_version)?;
        let client_options =
            self::client_options(open.client_options, &credential, &url, open.service)?;
        Ok(Self {
            url,
            credential,
            api_version,
            client_options,
        })
    }
}

/// Parses `account_url`; a SAS in its query string becomes the credential (given only one way).
fn parse_url(account_url: &str, credential: StorageCredential) -> Result<(Url, StorageCredential)> {
    let mut credential = credential;
    let mut url = Url::parse(account_url.trim())
        .map_err(|e| Error::invalid_input(format!("account_url is not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(Error::invalid_input(
            "account_url must be an http or https URL with a host",
        ));
    }
    if let Some(query) = url.query().filter(|q| !q.is_empty()) {
        if !matches!(credential, StorageCredential::Anonymous) {
            return Err(Error::invalid_input(
                "account_url carries a SAS query string and a credential is given too; use one",
            ));
        }
        credential = SasToken::new(query)
            .map_err(|_| Error::invalid_input("account_url has a query string that is not a SAS"))?
            .into();
    }
    url.set_query(None);
    url.set_fragment(None);
    Ok((url, credential))
}

/// `options` with one HTTP client for the store and all its clones (clients built per operation
/// would otherwise each open their own connection pool) and the credential's authorization
/// policy, which runs after every other per-try policy since Shared Key signs their headers. Each
/// failed try is noted for a timed-out operation's error.
pub(crate) fn client_options(
    mut options: ClientOptions,
    credential: &StorageCredential,
    url: &Url,
    service: Service,
) -> Result<ClientOptions> {
    // `..Default::default()` below is needless today; HttpClientOptions gains fields across
    // azure_core releases.
    #[allow(clippy::needless_update)]
    if options.transport.is_none() {
        // Decompression stays off, as the blob crate's own default.
        options.transport = Some(Transport::new(new_http_client(Some(HttpClientOptions {
            automatic_decompression: false,
            ..Default::default()
        }))));
    }
    options
        .per_try_policies
        .push(std::sync::Arc::new(super::timeout::RecordFailures));
    if let Some(policy) = super::auth::policy_for(credential, url, service)? {
        options.per_try_policies.push(policy);
    }
    Ok(options)
}
