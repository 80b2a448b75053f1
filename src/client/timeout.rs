//! The bound on each store operation (`operation_timeout` in the stores' options), and what a
//! timed-out operation reports.
//!
//! The pipeline retries transport failures and 5xx answers for up to a minute, so without a
//! bound a wrong endpoint or a dead emulator holds a caller that long, and a connection that
//! never answers holds it forever. When the bound strikes, the error names the last failure the
//! operation's requests met ("connection refused", "503 ServerBusy"), which the retries would
//! otherwise hide.

use crate::error::{error_chain, Error, Result};
use crate::redact::redact;
use async_trait::async_trait;
use azure_core::http::{
    headers::ERROR_CODE,
    policies::{Policy, PolicyResult},
    Context, Request,
};
use std::{cell::RefCell, future::Future, sync::Arc, time::Duration};

tokio::task_local! {
    /// The last failed try of the operation running in this task.
    static LAST_FAILURE: RefCell<Option<String>>;
}

/// A store's bound on each of its operations: `None` for none.
#[derive(Clone, Copy)]
pub(crate) struct OperationTimeout(Option<Duration>);

impl std::fmt::Debug for OperationTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl OperationTimeout {
    /// Rejects a zero bound, which would fail every operation before its first request.
    pub(crate) fn new(timeout: Option<Duration>) -> Result<Self> {
        match timeout {
            Some(t) if t.is_zero() => Err(Error::invalid_input(
                "operation_timeout must be greater than zero (use None for no bound)",
            )),
            _ => Ok(Self(timeout)),
        }
    }
}

/// Runs `operation`, failing with [`Error::Timeout`] if it has not finished within `timeout`.
/// Requests still in flight are dropped; a write among them may or may not have been applied.
///
/// The bound is a Tokio timer: outside a Tokio runtime a bounded operation fails at once with
/// [`Error::NoRuntime`] instead of panicking in it.
pub(crate) async fn bounded<T>(
    timeout: OperationTimeout,
    operation: &'static str,
    future: impl Future<Output = Result<T>>,
) -> Result<T> {
    let Some(limit) = timeout.0 else {
        return future.await;
    };
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(Error::NoRuntime { operation });
    }
    LAST_FAILURE
        .scope(RefCell::new(None), async move {
            match tokio::time::timeout(limit, future).await {
                Ok(result) => result,
                Err(_) => Err(Error::Timeout {
                    operation,
                    timeout: limit,
                    last_failure: LAST_FAILURE.with(|last| last.borrow_mut().take()),
                }),
            }
        })
        .await
}

/// A per-try policy that notes each try of a bounded operation that will be retried (a transport
/// failure or a retried status), for its timeout error. Lost races (409, 412) are not noted: they
/// are common, and they end their request at once.
#[derive(Debug)]
pub(crate) struct RecordFailures;

#[async_trait]
impl Policy for RecordFailures {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let result = next[0].send(ctx, request, &next[1..]).await;
        let failure = match &result {
            Err(err) => Some(redact(&error_chain(err))),
            // What the retry policy retries; any other answer ends the try's request at once.
            Ok(response) if is_retried(u16::from(response.status())) => {
                let code = crate::client::headers::get(response.headers(), &ERROR_CODE)
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default();
                Some(format!(
                    "storage service returned {}{code}",
                    u16::from(response.status())
                ))
            }
            Ok(_) => None,
        };
        if let Some(failure) = failure {
            // Outside a bounded operation there is nobody to tell.
            let _ = LAST_FAILURE.try_with(|last| *last.borrow_mut() = Some(failure));
        }
        result
    }
}

/// The statuses azure_core's retry policy retries by default.
fn is_retried(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounds_an_operation_and_reports_its_last_failure() {
        let timeout = |t| OperationTimeout::new(t).unwrap();
        let err = bounded(
            timeout(Some(Duration::from_millis(20))),
            "list_ownership",
            async {
                let _ =
                    LAST_FAILURE.try_with(|l| *l.borrow_mut() = Some("connection refused".into()));
                std::future::pending::<Result<()>>().await
            },
        )
        .await
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "list_ownership did not finish within 20ms; last failure: connection refused"
        );
        assert!(matches!(err, Error::Timeout { .. }));

        let ok = bounded(timeout(Some(Duration::from_secs(5))), "x", async { Ok(7) }).await;
        assert_eq!(ok.unwrap(), 7);
        let unbounded = bounded(timeout(None), "x", async { Ok(8) }).await;
        assert_eq!(unbounded.unwrap(), 8);
    }

    #[test]
    fn outside_a_tokio_runtime_a_bound_is_an_error_not_a_panic() {
        let err = futures::executor::block_on(bounded(
            OperationTimeout::new(Some(Duration::from_secs(1))).unwrap(),
            "list_ownership",
            async { Ok(()) },
        ))
        .unwrap_err();
        assert!(
            matches!(
                err,
                Error::NoRuntime {
                    operation: "list_ownership"
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("outside a Tokio runtime"), "{err}");
        // Without a bound there is no timer: nothing here needs Tokio.
        let unbounded = futures::executor::block_on(bounded(
            OperationTimeout::new(None).unwrap(),
            "list_ownership",
            async { Ok(7) },
        ));
        assert_eq!(unbounded.unwrap(), 7);
    }

    #[test]
    fn zero_is_rejected() {
        assert!(OperationTimeout::new(Some(Duration::ZERO)).is_err());
        assert!(OperationTimeout::new(Some(Duration::from_millis(1))).is_ok());
        assert!(OperationTimeout::new(None).is_ok());
    }
}
