//! How a [`PartitionBalancer`](super::PartitionBalancer) times its cycles and takes partitions.

use crate::error::{Error, Result};
use std::time::Duration;

/// How fast a consumer takes partitions it may take.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Strategy {
    /// One partition per cycle: fewer ownership changes when many consumers start together; the
    /// default of the Python and .NET processors.
    #[default]
    Balanced,
    /// Its whole fair share in one cycle: unowned partitions first (32 claims a round, until one
    /// is lost to another consumer: then it is not alone), else its whole deficit stolen from
    /// owners above their share (consumers short at once divide the excess the same way from the
    /// same listing, so they do not take the same owner below its share). After a cycle that
    /// claimed, [`run`](super::PartitionBalancer::run) lists again an eighth of an interval later
    /// (renewing nothing then), since others may have claimed too: a fleet started together
    /// evens out within one to three intervals, where one partition a cycle takes about as many
    /// cycles as a consumer's share. Quickest to start processing everything, at the price of
    /// some moves.
    Greedy,
}

/// Timing and strategy of a [`PartitionBalancer`](super::PartitionBalancer).
///
/// ```
/// use eventhub_checkpointstore::balancer::{BalancerOptions, Strategy};
/// use std::time::Duration;
///
/// let options = BalancerOptions {
///     interval: Duration::from_secs(5),
///     expiration: Duration::from_secs(20),
///     strategy: Strategy::Greedy,
///     ..Default::default()
/// };
/// assert!(options.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BalancerOptions {
    /// Time between cycles in [`PartitionBalancer::run`](super::PartitionBalancer::run).
    /// Default 10 s.
    pub interval: Duration,
    /// A claim not renewed for this long is expired: any consumer may take it. Must exceed
    /// `interval`. Default 30 s.
    pub expiration: Duration,
    /// Default [`Strategy::Balanced`].
    pub strategy: Strategy,
    /// Cooperative handover: a partition this consumer takes from a live owner is held back from
    /// [`PartitionBalancer::ready`](super::PartitionBalancer::ready) until the old owner is seen
    /// to have noticed, stopped, and written its last position (one of its other claims seen at
    /// three new versions since); the new owner then resumes where the old one stopped instead of
    /// reprocessing. When the old owner owns nothing else to watch, the hold lasts this many
    /// intervals and a half. `0` turns holds off: a stolen partition is processed at once, as
    /// the other languages' processors do. Default 2. See the [module docs](super).
    pub handover_intervals: u32,
}

impl Default for BalancerOptions {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            expiration: Duration::from_secs(30),
            strategy: Strategy::Balanced,
            handover_intervals: 2,
        }
    }
}

/// The longest balancing interval [`BalancerOptions::validate`] accepts.
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// The most [`BalancerOptions::handover_intervals`] [`BalancerOptions::validate`] accepts.
pub const MAX_HANDOVER_INTERVALS: u32 = 100;

/// The longest ownership expiration [`BalancerOptions::validate`] accepts.
pub const MAX_EXPIRATION: Duration = Duration::from_secs(7 * 24 * 60 * 60);

impl BalancerOptions {
    /// Checks the options as [`PartitionBalancer::new`](super::PartitionBalancer::new) does:
    /// `0 < interval <= MAX_INTERVAL`, `interval < expiration <= MAX_EXPIRATION`,
    /// `handover_intervals <= MAX_HANDOVER_INTERVALS`. An expiration under twice the interval is
    /// accepted with a warning (as the .NET processor warns): one late cycle lets a live
    /// consumer's claims expire, and others take its partitions.
    ///
    /// ```
    /// use eventhub_checkpointstore::balancer::BalancerOptions;
    /// use std::time::Duration;
    ///
    /// let secs = Duration::from_secs;
    /// assert!(BalancerOptions { interval: secs(10), expiration: secs(30), ..Default::default() }.validate().is_ok());
    /// assert!(BalancerOptions { interval: secs(30), expiration: secs(10), ..Default::default() }.validate().is_err());
    /// assert!(BalancerOptions { interval: Duration::MAX, expiration: Duration::MAX, ..Default::default() }.validate().is_err());
    /// assert!(BalancerOptions { handover_intervals: u32::MAX, ..Default::default() }.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<()> {
        let (interval, expiration) = (self.interval, self.expiration);
        if interval.is_zero() || interval > MAX_INTERVAL {
            return Err(Error::invalid_input(format!(
                "the balancing interval ({interval:?}) must be greater than zero and at most {MAX_INTERVAL:?}"
            )));
        }
        if expiration <= interval || expiration > MAX_EXPIRATION {
            return Err(Error::invalid_input(format!(
                "the ownership expiration ({expiration:?}) must exceed the balancing interval ({interval:?}) and be at most {MAX_EXPIRATION:?}"
            )));
        }
        if self.handover_intervals > MAX_HANDOVER_INTERVALS {
            return Err(Error::invalid_input(format!(
                "handover_intervals ({}) must be at most {MAX_HANDOVER_INTERVALS}",
                self.handover_intervals
            )));
        }
        if expiration < interval * 2 {
            tracing::warn!(
                ?interval,
                ?expiration,
                "the ownership expiration is less than twice the balancing interval: one late cycle lets this consumer's claims expire"
            );
        }
        Ok(())
    }

    /// How long a partition taken from an owner that cannot be watched is held; zero when holds
    /// are off.
    pub(super) fn handover(&self) -> Duration {
        if self.handover_intervals == 0 {
            Duration::ZERO
        } else {
            // Saturates rather than overflows: the interval is at most MAX_INTERVAL.
            self.interval
                .saturating_mul(self.handover_intervals)
                .saturating_add(self.interval / 2)
        }
    }
}
