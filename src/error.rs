//! The crate's one error type.
//!
//! Every message is built from redacted text: an account key, a SAS signature or an access token
//! never reaches `Display` or `Debug` (see [`crate::redact::redact`]).

use crate::redact::redact;

/// The result type of every fallible operation in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong.
///
/// Losing an ownership race is *not* an error: [`CheckpointStore::claim_ownership`] simply leaves
/// that partition out of its result.
///
/// [`CheckpointStore::claim_ownership`]: crate::CheckpointStore::claim_ownership
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An argument is not acceptable (empty name, bad ETag, unsupported character, a connection
    /// string with an unknown key or no usable credential, …). Raised before any request is sent;
    /// the message names the argument or key, never a key's or signature's value.
    #[error("invalid input: {message}")]
    InvalidInput {
        /// What is wrong, naming the argument.
        message: String,
    },

    /// The storage service answered with an error status (after the pipeline's retries).
    #[error("storage service returned {status}{}: {message}", .error_code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Service {
        /// The HTTP status code, e.g. `403`.
        status: u16,
        /// The service's `x-ms-error-code`, e.g. `ContainerNotFound`, when it sent one.
        error_code: Option<String>,
        /// The service's explanation (first line only), or the status's reason phrase.
        message: String,
    },

    /// The request did not get an HTTP answer: connection refused or reset, DNS, TLS, I/O, timeout.
    #[error("could not reach the storage service: {message}")]
    Transport {
        /// What the HTTP stack reported, with secrets redacted.
        message: String,
    },

    /// The operation did not finish within the store's `operation_timeout` (retries included).
    /// A write still in flight when the bound struck may or may not have been applied.
    #[error("{operation} did not finish within {timeout:?}{}", .last_failure.as_deref().map(|f| format!("; last failure: {f}")).unwrap_or_default())]
    Timeout {
        /// The operation, e.g. `"claim_ownership"`.
        operation: &'static str,
        /// The bound that struck.
        timeout: std::time::Duration,
        /// The last failure the operation's requests met (redacted), if any: e.g. "connection
        /// refused" behind the pipeline's retries.
        last_failure: Option<String>,
    },

    /// A credential could not produce an access token.
    #[error("could not authenticate: {message}")]
    Authentication {
        /// What the credential reported, with secrets redacted.
        message: String,
    },

    /// An operation was polled outside a Tokio runtime (e.g. by `futures::executor::block_on`).
    /// The HTTP client underneath (`reqwest`, through `azure_core`) and the operation timeout need
    /// one: run the store inside a Tokio runtime, or use the blocking store (feature `blocking`),
    /// which brings its own. Nothing was sent.
    #[error("{operation} was called outside a Tokio runtime; the store's HTTP client needs one (run it inside a Tokio runtime, or use the blocking store of feature `blocking`)")]
    NoRuntime {
        /// The operation, e.g. `"list_ownership"`.
        operation: &'static str,
    },

    /// The blocking store (feature `blocking`) could not start the runtime it runs its
    /// operations on (e.g. the process may not create more threads or file descriptors).
    #[cfg(feature = "blocking")]
    #[cfg_attr(docsrs, doc(cfg(feature = "blocking")))]
    #[error("could not start the blocking store's runtime: {message}")]
    BlockingRuntime {
        /// What the operating system reported.
        message: String,
    },

    /// A blocking store (feature `blocking`) was called from inside an async runtime, where
    /// blocking would stall the runtime. Use the async store there.
    #[cfg(feature = "blocking")]
    #[cfg_attr(docsrs, doc(cfg(feature = "blocking")))]
    #[error("the blocking store was called from inside an async runtime; use the async BlobCheckpointStore there (or call it from tokio::task::spawn_blocking)")]
    BlockingInAsyncContext,

    /// A conditional write kept losing to other writers of the same record and gave up: another
    /// process writes this partition's checkpoint as fast as this one retries.
    #[error("conflict: {message}")]
    Conflict {
        /// Which record, and how often it was tried.
        message: String,
    },

    /// Event Hubs could not be reached or read (feature `eventhubs`): a consumer client could
    /// not be opened, the hub's partitions could not be read, or the
    /// [`Processor`](crate::processor::Processor) has stopped.
    #[cfg(feature = "eventhubs")]
    #[cfg_attr(docsrs, doc(cfg(feature = "eventhubs")))]
    #[error("Event Hubs: {message}")]
    EventHubs {
        /// What failed, with secrets redacted.
        message: String,
    },

    /// The service answered with something this crate could not understand.
    #[error("unexpected response from the storage service: {message}")]
    UnexpectedResponse {
        /// What could not be understood.
        message: String,
    },
}

impl Error {
    pub(crate) fn invalid_input(message: impl Into<String>) -> Self {
        Error::InvalidInput {
            message: message.into(),
        }
    }

    #[cfg(feature = "eventhubs")]
    pub(crate) fn event_hubs(message: impl std::fmt::Display) -> Self {
        Error::EventHubs {
            message: redact(&message.to_string()),
        }
    }

    /// A connection string that cannot be used: [`Error::InvalidInput`], naming the offending key,
    /// never its value.
    pub(crate) fn invalid_connection_string(message: impl std::fmt::Display) -> Self {
        Error::InvalidInput {
            message: format!("connection string: {message}"),
        }
    }

    /// The HTTP status of a [`Error::Service`] error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Service { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The service's `x-ms-error-code` of a [`Error::Service`] error, e.g. `"ContainerNotFound"`.
    pub fn error_code(&self) -> Option<&str> {
        match self {
            Error::Service { error_code, .. } => error_code.as_deref(),
            _ => None,
        }
    }
}

impl From<azure_core::Error> for Error {
    fn from(err: azure_core::Error) -> Self {
        use azure_core::error::ErrorKind;
        match err.kind() {
            ErrorKind::HttpResponse {
                status,
                error_code,
                raw_response,
            } => {
                let body = raw_response.as_deref().map(|r| r.body().as_ref());
                let table_error = body.and_then(table_error);
                let message = body
                    .and_then(service_message)
                    .or_else(|| table_error.as_ref().and_then(|e| e.1.clone()))
                    .unwrap_or_else(|| status.canonical_reason().into_owned());
                // azure_core reads `x-ms-error-code`, or puts the bare status there when it cannot
                // parse the body (the Table service's JSON errors): then the body's code wins.
                let numeric = error_code.as_deref() == Some(&u16::from(*status).to_string());
                let error_code = match (error_code, table_error) {
                    (Some(code), _) if !numeric => Some(code.clone()),
                    (_, Some((code, _))) => Some(code),
                    (code, None) => code.clone().filter(|_| !numeric),
                };
                Error::Service {
                    status: u16::from(*status),
                    error_code,
                    message: redact(&message),
                }
            }
            ErrorKind::Connection | ErrorKind::Io => Error::Transport {
                message: redact(&error_chain(&err)),
            },
            ErrorKind::Credential => Error::Authentication {
                message: redact(&error_chain(&err)),
            },
            // A deserialization error quotes the whole response body: keep the start only.
            _ => Error::UnexpectedResponse {
                message: truncated(redact(&error_chain(&err)), 512),
            },
        }
    }
}

/// For code built on `azure_core` (the Event Hubs processor, other SDK clients): the status and
/// `x-ms-error-code` of a service error survive as `ErrorKind::HttpResponse`; the message is this
/// error's redacted `Display`, and this error stays reachable as the source.
impl From<Error> for azure_core::Error {
    fn from(err: Error) -> Self {
        use azure_core::error::ErrorKind;
        let kind = match &err {
            Error::Service {
                status, error_code, ..
            } => ErrorKind::HttpResponse {
                status: (*status).into(),
                error_code: error_code.clone(),
                raw_response: None,
            },
            Error::Transport { .. } => ErrorKind::Connection,
            Error::Timeout { .. } => ErrorKind::Io,
            Error::Authentication { .. } => ErrorKind::Credential,
            Error::UnexpectedResponse { .. } => ErrorKind::DataConversion,
            Error::Conflict { .. } => ErrorKind::Other,
            Error::InvalidInput { .. } | Error::NoRuntime { .. } => ErrorKind::Other,
            #[cfg(feature = "eventhubs")]
            Error::EventHubs { .. } => ErrorKind::Other,
            #[cfg(feature = "blocking")]
            Error::BlockingInAsyncContext | Error::BlockingRuntime { .. } => ErrorKind::Other,
        };
        azure_core::Error::new(kind, err)
    }
}

fn truncated(mut text: String, max_chars: usize) -> String {
    if let Some((cut, _)) = text.char_indices().nth(max_chars) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// The error and its sources on one line: reqwest hides the useful part ("connection refused")
/// in the source chain.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The first line of `<Message>` in a storage error body, and the first line of
/// `<AuthenticationErrorDetail>` when it names the cause of an authentication failure ("Invalid
/// token audience.", "Signature did not match", "Lifetime validation failed. The token is
/// expired."). Later lines carry request ids and, for Shared Key failures, the server's
/// string-to-sign: noise for a user, kept out.
fn service_message(body: &[u8]) -> Option<String> {
    let body = std::str::from_utf8(body).ok()?;
    let message = first_line_of(body, "Message")?;
    match first_line_of(body, "AuthenticationErrorDetail") {
        // A Shared Key detail quotes the request's signature and the string-to-sign.
        Some(detail) if !detail.contains('\'') && detail.len() <= 200 => {
            Some(format!("{message} {detail}"))
        }
        _ => Some(message),
    }
}

fn first_line_of(body: &str, element: &str) -> Option<String> {
    let open = format!("<{element}>");
    let start = body.find(&open)? + open.len();
    let end = start + body[start..].find(&format!("</{element}>"))?;
    let first_line = body[start..end].lines().next()?.trim();
    (!first_line.is_empty()).then(|| first_line.to_owned())
}

/// The code and first line of the message of a Table service error body
/// (`{"odata.error":{"code":…,"message":{"value":…}}}`).
fn table_error(body: &[u8]) -> Option<(String, Option<String>)> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let error = value.get("odata.error")?;
    let code = error.get("code")?.as_str()?.to_owned();
    let message = error
        .pointer("/message/value")
        .and_then(|m| m.as_str())
        .and_then(|m| m.lines().next())
        .map(|m| m.trim().to_owned());
    Some((code, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_service_errors_keep_code_and_first_line() {
        let body = br#"{"odata.error":{"code":"EntityAlreadyExists","message":{"lang":"en-US","value":"The specified entity already exists.\nRequestId:abc"}}}"#;
        assert_eq!(
            table_error(body),
            Some((
                "EntityAlreadyExists".into(),
                Some("The specified entity already exists.".into())
            ))
        );
        assert_eq!(table_error(b"<Error/>"), None);
    }

    #[test]
    fn service_message_takes_first_line_of_message() {
        let body = b"<?xml version=\"1.0\"?><Error><Code>AuthenticationFailed</Code><Message>Server failed to authenticate the request.\nRequestId:abc\nTime:2026</Message></Error>";
        assert_eq!(
            service_message(body).as_deref(),
            Some("Server failed to authenticate the request.")
        );
        assert_eq!(service_message(b""), None);
        let token = b"<Error><Code>AuthenticationFailed</Code><Message>Server failed to authenticate the request.\nRequestId:abc</Message><AuthenticationErrorDetail>Invalid token audience.</AuthenticationErrorDetail></Error>";
        assert_eq!(
            service_message(token).as_deref(),
            Some("Server failed to authenticate the request. Invalid token audience.")
        );
        let shared_key = b"<Error><Message>Server failed to authenticate the request.</Message><AuthenticationErrorDetail>The MAC signature found in the HTTP request 'c2ln' is not the same as any computed signature. Server used following string to sign: 'PUT'.</AuthenticationErrorDetail></Error>";
        assert_eq!(
            service_message(shared_key).as_deref(),
            Some("Server failed to authenticate the request.")
        );
        assert_eq!(service_message(b"<Message></Message>"), None);
    }

    #[test]
    fn unexpected_responses_are_truncated() {
        let body = "x".repeat(10_000);
        let err = Error::from(azure_core::Error::with_message(
            azure_core::error::ErrorKind::DataConversion,
            format!("failed to deserialize {body}"),
        ));
        assert!(matches!(err, Error::UnexpectedResponse { .. }));
        assert!(
            err.to_string().chars().count() < 600,
            "{}",
            err.to_string().len()
        );
        assert_eq!(truncated("äöü".into(), 2), "äö…");
        assert_eq!(truncated("ab".into(), 2), "ab");
    }

    #[test]
    fn converts_to_azure_core_keeping_status_and_code() {
        let err = azure_core::Error::from(Error::Service {
            status: 412,
            error_code: Some("ConditionNotMet".into()),
            message: "The condition specified using HTTP conditional header(s) is not met.".into(),
        });
        assert_eq!(err.http_status(), Some(412.into()));
        match err.kind() {
            azure_core::error::ErrorKind::HttpResponse { error_code, .. } => {
                assert_eq!(error_code.as_deref(), Some("ConditionNotMet"))
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("412 (ConditionNotMet)"), "{err}");
        let transport = azure_core::Error::from(Error::Transport {
            message: "connection refused".into(),
        });
        assert_eq!(transport.kind(), &azure_core::error::ErrorKind::Connection);
    }

    #[test]
    fn display_includes_status_and_code() {
        let err = Error::Service {
            status: 404,
            error_code: Some("ContainerNotFound".into()),
            message: "The specified container does not exist.".into(),
        };
        assert_eq!(
            err.to_string(),
            "storage service returned 404 (ContainerNotFound): The specified container does not exist."
        );
        assert_eq!(err.status(), Some(404));
        assert_eq!(err.error_code(), Some("ContainerNotFound"));
    }
}
