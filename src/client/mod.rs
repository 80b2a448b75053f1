//! How the service-backed stores reach Azure Storage: the account (its URL, credential and
//! authorization policies), connection strings, the service version, the operation timeout's
//! bookkeeping, and [`Rest`], the one place a request is sent. Both REST clients (`blob::client`,
//! `table::client`) build on it; nothing here knows about records.

pub(crate) mod account;
pub(crate) mod auth;
pub(crate) mod connection_string;
pub(crate) mod credential;
pub(crate) mod headers;
pub(crate) mod timeout;

use crate::error::{Error, Result};
use azure_core::{
    error::CheckSuccessOptions,
    http::{
        headers::HeaderValue, ClientOptions, Context, Method, Pipeline, PipelineSendOptions,
        RawResponse, Request, Url,
    },
};

/// The storage services this crate talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Service {
    Blob,
    Table,
}

impl Service {
    /// The service's name in its endpoint's host (`{account}.{name}.core.windows.net`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Service::Blob => "blob",
            Service::Table => "table",
        }
    }
}

/// Accepts `YYYY-MM-DD` service versions from `oldest` on; dates compare as strings.
pub(crate) fn check_api_version(version: &str, oldest: &str) -> Result<()> {
    let shape_ok = version.len() == 10
        && version.char_indices().all(|(i, c)| match i {
            4 | 7 => c == '-',
            _ => c.is_ascii_digit(),
        });
    if !shape_ok {
        return Err(Error::invalid_input(format!(
            "api_version '{version}' is not a service version of the form YYYY-MM-DD"
        )));
    }
    if version < oldest {
        return Err(Error::invalid_input(format!(
            "api_version '{version}' is older than the oldest supported, {oldest}"
        )));
    }
    Ok(())
}

/// One service reached through one `azure_core` pipeline (retries, transport, authorization),
/// with the service version on every request.
pub(crate) struct Rest {
    pipeline: Pipeline,
    version: HeaderValue,
}

impl Rest {
    /// `client_options` must already carry the transport and the authorization policy
    /// ([`account::Account`]).
    pub(crate) fn new(client_options: ClientOptions, version: &str) -> Self {
        Self {
            pipeline: Pipeline::new(
                Some(env!("CARGO_PKG_NAME")),
                Some(env!("CARGO_PKG_VERSION")),
                client_options,
                Vec::new(),
                Vec::new(),
                None,
            ),
            version: HeaderValue::from(version.to_owned()),
        }
    }

    /// A request to `url` with the service version.
    pub(crate) fn request(&self, url: Url, method: Method) -> Request {
        let mut request = Request::new(url, method);
        request.insert_header("x-ms-version", self.version.clone());
        request
    }

    /// Sends `request` through the pipeline; a status outside `success` is an error.
    pub(crate) async fn send(
        &self,
        request: &mut Request,
        success: &'static [u16],
    ) -> Result<RawResponse> {
        // azure_core's client request id policy adds this header when it is missing, but asks
        // with `get_optional_str`, which builds an error to say so, capturing a backtrace when
        // RUST_BACKTRACE is set (some 80,000 instructions, a third of an update's client CPU).
        // Set here, as the policy would set it, the header is found.
        request.insert_header(
            azure_core::http::headers::CLIENT_REQUEST_ID,
            String::from(azure_core::Uuid::new_v4()),
        );
        let options = PipelineSendOptions {
            // `..Default::default()`: the SDK's options grow in minor releases.
            #[allow(clippy::needless_update)]
            check_success: CheckSuccessOptions {
                success_codes: success,
                ..Default::default()
            },
            ..Default::default()
        };
        Ok(self
            .pipeline
            .send(&Context::new(), request, Some(options))
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions() {
        let oldest = "2015-02-21";
        for ok in ["2019-07-07", "2017-11-09", "2015-02-21", "2026-06-06"] {
            assert!(check_api_version(ok, oldest).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "2019-7-7",
            "2019/07/07",
            "latest",
            "2014-02-14",
            "２０１９-07-07",
        ] {
            assert!(check_api_version(bad, oldest).is_err(), "{bad}");
        }
    }
}
