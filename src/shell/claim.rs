//! The claim rules every store follows (`docs/wire-format.md`): all claims checked before the
//! first request, requests concurrent up to a bound, a lost race left out of the result, and an
//! error only when nothing was won and something failed for another reason.

use super::{Version, Written};
use crate::error::{Error, Result};
use crate::model::Ownership;
use futures::{Future, StreamExt};

/// The result of one claim request.
pub(crate) enum ClaimOutcome {
    Won(Ownership),
    /// Someone else wrote the record first: a normal outcome. Why, for the log.
    Lost(String),
    /// Anything else: never reported as won.
    Failed(Error),
}

impl ClaimOutcome {
    /// The outcome of the write that claimed `requested`: when applied, the claim with its new
    /// version (an empty owner reads back as none, as a listing would report it), or a failure
    /// when the response lacks the version or its time.
    pub(crate) fn of_write(requested: &Ownership, written: Result<Written>) -> Self {
        match written {
            Ok(Written::Applied(Version {
                etag: Some(etag),
                last_modified: Some(last_modified),
            })) => ClaimOutcome::Won(Ownership {
                owner_id: requested.owner_id.clone().filter(|o| !o.is_empty()),
                etag: Some(etag),
                last_modified: Some(last_modified),
                ..requested.clone()
            }),
            // A claim without a version cannot be renewed conditionally, and one without a time
            // cannot be expired: reporting it as won would hand the caller a claim it cannot keep.
            Ok(Written::Applied(Version {
                etag,
                last_modified,
            })) => ClaimOutcome::Failed(Error::UnexpectedResponse {
                message: format!(
                    "the service accepted the claim of partition {} but its response has no {}; \
                     the claim is not reported as won",
                    requested.partition_id,
                    match (etag.is_none(), last_modified.is_none()) {
                        (true, true) => "ETag and no Last-Modified",
                        (true, false) => "ETag",
                        _ => "Last-Modified",
                    }
                ),
            }),
            Ok(Written::Lost(reason)) => ClaimOutcome::Lost(reason),
            Err(err) => ClaimOutcome::Failed(err),
        }
    }
}

/// Claims `ownership`: each is turned into a request by `prepare` (all before the first is sent,
/// so bad input fails the call as a whole) and sent by `claim_one`, at most `concurrency` at once.
/// Returns the claims won, in input order.
pub(crate) async fn claim_all<'a, C, F, Fut>(
    ownership: &'a [Ownership],
    concurrency: usize,
    prepare: impl Fn(&Ownership) -> Result<C>,
    claim_one: F,
) -> Result<Vec<Ownership>>
where
    F: Fn(&'a Ownership, C) -> Fut,
    Fut: Future<Output = ClaimOutcome> + 'a,
{
    let claims = ownership.iter().map(prepare).collect::<Result<Vec<_>>>()?;
    // Unordered, so one slow request does not hold back the others (an ordered buffer counts
    // finished requests against the bound until the ones before them finish); the input order is
    // restored afterwards.
    let claim_one = &claim_one;
    let mut outcomes: Vec<(usize, ClaimOutcome)> =
        futures::stream::iter(claims.into_iter().enumerate())
            .map(|(i, claim)| async move { (i, claim_one(&ownership[i], claim).await) })
            .buffer_unordered(concurrency)
            .collect()
            .await;
    outcomes.sort_unstable_by_key(|(i, _)| *i);

    let mut won = Vec::with_capacity(ownership.len());
    let mut first_failure = None;
    let (mut lost, mut failed) = (0, 0);
    for ((_, outcome), requested) in outcomes.into_iter().zip(ownership) {
        match outcome {
            ClaimOutcome::Won(o) => won.push(o),
            ClaimOutcome::Lost(reason) => {
                lost += 1;
                tracing::debug!(
                    partition_id = %requested.partition_id,
                    %reason,
                    "ownership claim lost to another owner"
                )
            }
            ClaimOutcome::Failed(err) => {
                failed += 1;
                tracing::warn!(
                    partition_id = %requested.partition_id,
                    error = %err,
                    "ownership claim failed"
                );
                first_failure.get_or_insert(err);
            }
        }
    }
    crate::metrics::claims(
        ownership.first().map(|o| &o.scope),
        won.len() as u64,
        lost,
        failed,
    );
    match first_failure {
        Some(err) if won.is_empty() => Err(err),
        _ => {
            tracing::debug!(claimed = won.len(), "claimed ownership");
            Ok(won)
        }
    }
}
