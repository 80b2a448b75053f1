//! Partition ownership for consumers that do not use the official processor (custom AMQP or
//! Kafka-protocol consumers, batch jobs): a [`PartitionBalancer`] over any [`CheckpointStore`]
//! spreads an event hub's partitions fairly over the live consumers of a consumer group.
//!
//! Each cycle lists ownership, renews what this consumer owns, claims unowned or expired
//! partitions up to its fair share, and, when none are left, steals one from an owner above its
//! fair share. Every claim is conditional on the version it listed, so two consumers never both
//! win the same version of a partition. A consumer that loses a partition to a steal learns it at
//! its next cycle (its renewal loses): until then both may believe they own it, for at most one
//! interval, as with every Event Hubs processor. Relinquishing on shutdown hands partitions over
//! at once, without waiting for them to expire.
//!
//! # Cooperative handover
//!
//! Every Event Hubs processor moves a partition between live consumers by stealing: the consumer
//! below its share claims it, and the old owner learns at its next cycle. Both process it
//! meanwhile, and the new owner starts from the last checkpoint, so every planned move (a deploy,
//! a scale-out) reprocesses events. This balancer hands over instead, with no protocol beyond the
//! ownership records every processor already shares:
//!
//! - **The taker holds.** A partition won from a live owner (a steal, decided exactly as above)
//!   is owned at once, and renewed, but [`ready`](PartitionBalancer::ready) leaves it out for
//!   `handover_intervals` intervals and a half ([`BalancerOptions::handover_intervals`]).
//! - **The giver stops, then writes.** The old owner's next cycle finds its renewal lost and drops
//!   the partition from `ready`; the application, which checks `ready` before each batch (at
//!   least every quarter interval), stops processing it. A quarter interval later
//!   [`run`](PartitionBalancer::run) writes the partition's last position through the
//!   [checkpointer](PartitionBalancer::with_checkpointer) (with `cycle` called by hand, at the
//!   next cycle): within about 1.4 intervals of the steal, with `run`'s ±10% jitter, well before
//!   the taker's hold of 2.5 ends.
//! - **The taker resumes** from that checkpoint when the hold ends: where the old owner stopped.
//!
//! Without a checkpointer, the application writes a partition's last position itself when the
//! partition leaves `ready`; the hold gives it the same time.
//!
//! Why nobody processes twice and nobody takes twice: a partition has one winner per version
//! (claims are conditional), so exactly one taker holds it; the giver processes it only while its
//! renewal keeps winning, and stops one cycle after the first loss, before it writes; the taker
//! starts after that write. Nothing else changes hands: a consumer never gives a partition away
//! on its own, so two consumers cannot both give up one, and relinquishing on shutdown is the
//! same handover without the wait (the position is written first, then the partition released).
//!
//! The cost is a pause: a moved partition is processed by nobody for about two intervals. A
//! partition that expired (its owner died) or was relinquished is ready at once: nobody is left
//! to wait for. Fleets mixed with the other languages' processors still converge: they steal and
//! start at once (their old owners reprocess as always), and they never wait for anything.
//! `handover_intervals = 0` gives this balancer their behaviour, and then a partition taken from
//! this consumer has its unwritten position discarded, since its taker has already resumed.
//!
//! Expiry is judged by the service's clock. A claim's `last_modified` is stamped by the storage
//! service, so comparing it with this host's wall clock lets a host whose clock runs minutes ahead
//! take partitions that are still live, and one that runs behind keep waiting for dead owners
//! (and keep its own expired claims when the store is unreachable). Stores that report the time
//! of their listing ([`CheckpointStore::list_ownership_with_service_time`]; this crate's do) are
//! judged by that time, carried forward on this host's monotonic clock; for other stores the
//! balancer falls back to the wall clock ([`PartitionBalancer::with_local_clock`]).
//!
//! ```no_run
//! use eventhub_checkpointstore::{
//!     balancer::{BalancerOptions, PartitionBalancer},
//!     BlobCheckpointStore,
//! };
//! use std::sync::Arc;
//!
//! # async fn demo() -> eventhub_checkpointstore::Result<()> {
//! let store = Arc::new(BlobCheckpointStore::from_connection_string("UseDevelopmentStorage=true", "checkpoints", None)?);
//! let partitions: Vec<String> = (0..32).map(|p| p.to_string()).collect();
//! let balancer = PartitionBalancer::new(
//!     store,
//!     "myns.servicebus.windows.net", "telemetry", "$Default",
//!     "consumer-1", partitions, BalancerOptions::default(),
//! )?;
//! let owned = balancer.cycle().await?; // call every `options.interval`, or use `run`
//! println!("processing {owned:?}");
//! balancer.relinquish().await?;        // on shutdown
//! # Ok(()) }
//! ```

use crate::{
    checkpointer::Checkpointer, sync::lock, CheckpointStore, Error, Ownership, Result, ServiceTime,
};
use futures::future::{self, Either};
use std::{
    collections::{hash_map::RandomState, BTreeMap, BTreeSet, HashMap},
    future::Future,
    hash::BuildHasher,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};
use time::OffsetDateTime;

/// How fast a consumer takes partitions it may take.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Strategy {
    /// One partition per cycle: fewer ownership changes when many consumers start together; the
    /// default of the Python and .NET processors.
    #[default]
    Balanced,
    /// Its whole fair share of unowned partitions in one cycle: quickest to start processing
    /// everything.
    Greedy,
}

/// Timing and strategy of a [`PartitionBalancer`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BalancerOptions {
    /// Time between cycles in [`PartitionBalancer::run`]. Default 10 s.
    pub interval: Duration,
    /// A claim not renewed for this long is expired: any consumer may take it. Must exceed
    /// `interval`. Default 30 s.
    pub expiration: Duration,
    /// Default [`Strategy::Balanced`].
    pub strategy: Strategy,
    /// Cooperative handover: a partition this consumer takes from a live owner is held for this
    /// many intervals (and half one more) before [`PartitionBalancer::ready`] lists it, so the
    /// old owner can notice, stop, and write its last position first; the new owner then resumes
    /// where the old one stopped instead of reprocessing. `0` processes it at once, as the other
    /// languages' processors do. Default 2. See the [module docs](self).
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
    /// Checks the options as [`PartitionBalancer::new`] does: `0 < interval <= MAX_INTERVAL`,
    /// `interval < expiration <= MAX_EXPIRATION`, `handover_intervals <= MAX_HANDOVER_INTERVALS`. An expiration under twice the interval is
    /// accepted with a warning (as the .NET processor warns): one late cycle lets a live
    /// consumer's claims expire, and others take its partitions.
    ///
    /// ```
    /// use eventhub_checkpointstore::balancer::BalancerOptions;
    /// use std::time::Duration;
    ///
    /// assert!(BalancerOptions::new(Duration::from_secs(10), Duration::from_secs(30)).validate().is_ok());
    /// assert!(BalancerOptions::new(Duration::from_secs(30), Duration::from_secs(10)).validate().is_err());
    /// assert!(BalancerOptions::new(Duration::MAX, Duration::MAX).validate().is_err());
    /// assert!(BalancerOptions::default().with_handover_intervals(u32::MAX).validate().is_err());
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

    /// Options with this interval and expiration, and the default strategy.
    pub fn new(interval: Duration, expiration: Duration) -> Self {
        Self {
            interval,
            expiration,
            ..Self::default()
        }
    }

    /// The same options with `strategy`.
    pub fn with_strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// The same options with `handover_intervals`.
    pub fn with_handover_intervals(mut self, intervals: u32) -> Self {
        self.handover_intervals = intervals;
        self
    }

    /// How long a partition taken from a live owner is held before it is ready.
    fn handover(&self) -> Duration {
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

/// One consumer's share of an event hub's partitions. See the [module docs](self).
pub struct PartitionBalancer {
    store: Arc<dyn CheckpointStore>,
    namespace: String,
    eventhub: String,
    consumer_group: String,
    owner_id: String,
    partitions: BTreeSet<String>,
    options: BalancerOptions,
    /// What this consumer won, with the version it won: renewals are conditional on it.
    owned: Mutex<BTreeMap<String, Ownership>>,
    /// Random but fixed per consumer, so simultaneous starters pick different partitions.
    shuffle: RandomState,
    cycles: AtomicU64,
    /// The service's time at the last listing that reported it.
    service_time: Mutex<Option<ServiceTime>>,
    /// This host's wall clock, for stores that do not report the service's time.
    local_clock: fn() -> OffsetDateTime,
    /// Flushed for each partition this consumer gives up, discarded for each it loses.
    checkpointer: Option<Arc<Checkpointer>>,
    /// Partitions taken from a live owner, and when they are ready (cooperative handover).
    held: Mutex<HashMap<String, std::time::Instant>>,
    /// Partitions lost at the last cycle, whose last positions go out at the next.
    to_flush: Mutex<Vec<String>>,
}

impl PartitionBalancer {
    /// A balancer for `owner_id` over `partition_ids` of one consumer group. Checks its arguments
    /// (non-empty ids, no duplicate partitions, the options as [`BalancerOptions::validate`]
    /// does); sends nothing.
    pub fn new(
        store: Arc<dyn CheckpointStore>,
        fully_qualified_namespace: impl Into<String>,
        eventhub_name: impl Into<String>,
        consumer_group: impl Into<String>,
        owner_id: impl Into<String>,
        partition_ids: impl IntoIterator<Item = impl Into<String>>,
        options: BalancerOptions,
    ) -> Result<Self> {
        let owner_id = owner_id.into();
        if owner_id.is_empty() {
            return Err(Error::invalid_input(
                "owner_id must not be empty (an empty owner means \"unowned\")",
            ));
        }
        let ids: Vec<String> = partition_ids.into_iter().map(Into::into).collect();
        let partitions: BTreeSet<String> = ids.iter().cloned().collect();
        if partitions.is_empty() || partitions.len() != ids.len() || partitions.contains("") {
            return Err(Error::invalid_input(
                "partition_ids must be non-empty, distinct and not empty strings",
            ));
        }
        options.validate()?;
        Ok(Self {
            store,
            namespace: fully_qualified_namespace.into(),
            eventhub: eventhub_name.into(),
            consumer_group: consumer_group.into(),
            owner_id,
            partitions,
            options,
            owned: Mutex::new(BTreeMap::new()),
            shuffle: RandomState::new(),
            cycles: AtomicU64::new(0),
            service_time: Mutex::new(None),
            local_clock: OffsetDateTime::now_utc,
            checkpointer: None,
            held: Mutex::new(HashMap::new()),
            to_flush: Mutex::new(Vec::new()),
        })
    }

    /// The same balancer, flushing `checkpointer`'s pending position of every partition it
    /// relinquishes (before giving it up), so the next owner resumes from the newest position this
    /// consumer processed rather than its last periodic write; and discarding the pending position
    /// of every partition it finds taken by another consumer, which resumed from the stored
    /// checkpoint already (a late write could only move that consumer's checkpoint back).
    pub fn with_checkpointer(mut self, checkpointer: Arc<Checkpointer>) -> Self {
        self.checkpointer = Some(checkpointer);
        self
    }

    /// The same balancer with `clock` as this host's wall clock (default
    /// [`OffsetDateTime::now_utc`]). It is read only while the store has not reported the
    /// service's time (see the [module docs](self)); a simulation or a test can skew it.
    ///
    /// ```
    /// # use eventhub_checkpointstore::{balancer::{BalancerOptions, PartitionBalancer}, InMemoryCheckpointStore};
    /// # use std::sync::Arc;
    /// use time::{Duration, OffsetDateTime};
    ///
    /// fn five_minutes_ahead() -> OffsetDateTime {
    ///     OffsetDateTime::now_utc() + Duration::minutes(5)
    /// }
    /// let balancer = PartitionBalancer::new(
    ///     Arc::new(InMemoryCheckpointStore::new()), "ns", "eh", "$Default", "me", ["0"],
    ///     BalancerOptions::default(),
    /// )?
    /// .with_local_clock(five_minutes_ahead);
    /// # Ok::<(), eventhub_checkpointstore::Error>(())
    /// ```
    pub fn with_local_clock(mut self, clock: fn() -> OffsetDateTime) -> Self {
        self.local_clock = clock;
        self
    }

    /// The time claims are judged by: the service's, as of the last listing that reported it and
    /// carried forward on the monotonic clock, or else this host's wall clock.
    fn now(&self) -> OffsetDateTime {
        let service = *lock(&self.service_time);
        service.map_or_else(self.local_clock, |t| t.now())
    }

    /// This consumer's id.
    pub fn owner_id(&self) -> &str {
        &self.owner_id
    }

    /// The partitions this consumer owned after its last cycle (those held for a handover
    /// included).
    pub fn owned(&self) -> BTreeSet<String> {
        lock(&self.owned).keys().cloned().collect()
    }

    /// The owned partitions to process now: those taken from a live owner are left out until
    /// their handover time has passed (see the [module docs](self)).
    pub fn ready(&self) -> BTreeSet<String> {
        let owned = self.owned();
        let mut held = lock(&self.held);
        let now = std::time::Instant::now();
        held.retain(|p, until| owned.contains(p) && *until > now);
        owned
            .into_iter()
            .filter(|p| !held.contains_key(p))
            .collect()
    }

    /// The claims this consumer won at its last cycle, each with the version (etag) it holds:
    /// what it renews next, and what a caller can compare with a listing of the store.
    pub fn claims(&self) -> Vec<Ownership> {
        lock(&self.owned).values().cloned().collect()
    }

    /// One balancing cycle: list, renew, claim up to the fair share, steal at most one. Returns the
    /// partitions this consumer owns afterwards.
    ///
    /// Partitions whose renewal lost (stolen, or expired and taken) are no longer owned. If the
    /// store fails altogether, the error is returned and the owned set keeps only the claims that
    /// have not expired yet: nobody else can take those before they expire, except by stealing.
    pub async fn cycle(&self) -> Result<BTreeSet<String>> {
        let result = self.list_and_claim().await;
        if result.is_err() {
            self.drop_expired();
        }
        result
    }

    async fn list_and_claim(&self) -> Result<BTreeSet<String>> {
        // Lost at the last cycle: the application has stopped processing them since (it checks
        // `ready` more often than once per interval), so their last positions are final now, and
        // the consumer that took them holds them until these are written.
        self.flush_handed_over().await;
        let (listed, service_time) = self
            .store
            .list_ownership_with_service_time(&self.namespace, &self.eventhub, &self.consumer_group)
            .await?;
        if service_time.is_some() {
            *lock(&self.service_time) = service_time;
        }
        let view = View::new(
            listed,
            &self.partitions,
            &self.owner_id,
            self.now(),
            self.options.expiration,
        );
        let plan = self.plan(&view);

        let mut claims: Vec<Ownership> = view.owned_by(&self.owner_id).cloned().collect();
        claims.extend(plan.into_iter().map(|partition| {
            view.records.get(&partition).cloned().unwrap_or_else(|| {
                Ownership::new(
                    &self.namespace,
                    &self.eventhub,
                    &self.consumer_group,
                    partition,
                    "",
                )
            })
        }));
        for claim in &mut claims {
            claim.owner_id = Some(self.owner_id.clone());
        }

        // Taken from a live owner (stolen): held for the handover if won.
        let stolen: BTreeSet<String> = claims
            .iter()
            .filter(|c| {
                view.live
                    .get(&c.partition_id)
                    .is_some_and(|owner| owner != &self.owner_id)
            })
            .map(|c| c.partition_id.clone())
            .collect();
        let won = self.store.claim_ownership(&claims).await?;
        let handover = self.options.handover();
        if !handover.is_zero() {
            // Validated: at most 100.5 days, far from `Instant`'s limits.
            let until = std::time::Instant::now() + handover;
            let mut held = lock(&self.held);
            for claim in won.iter().filter(|o| stolen.contains(&o.partition_id)) {
                held.insert(claim.partition_id.clone(), until);
            }
        }
        let (now_owned, lost): (BTreeSet<String>, Vec<String>) = {
            let mut owned = lock(&self.owned);
            let before = std::mem::take(&mut *owned);
            *owned = won
                .into_iter()
                .map(|o| (o.partition_id.clone(), o))
                .collect();
            let lost: Vec<String> = before
                .into_keys()
                .filter(|p| !owned.contains_key(p))
                .collect();
            (owned.keys().cloned().collect(), lost)
        };
        if let Some(checkpointer) = &self.checkpointer {
            if self.options.handover_intervals > 0 {
                lock(&self.to_flush).extend(lost);
            } else {
                for partition in &lost {
                    if checkpointer.discard(partition) {
                        tracing::debug!(owner_id = %self.owner_id, partition, "partition taken by another consumer: its unwritten position is dropped");
                    }
                }
            }
        }
        Ok(now_owned)
    }

    /// Writes the last positions of the partitions found taken at the last cycle (cooperative
    /// handover); a failure is logged: the taker resumes from the last written position.
    async fn flush_handed_over(&self) {
        let handed_over = std::mem::take(&mut *lock(&self.to_flush));
        // Logged inside; the taker resumes from the last written position either way.
        let _ = self
            .write_last(handed_over.iter().map(String::as_str))
            .await;
    }

    /// Writes the checkpointer's pending position of each of `partitions`, logging each failure;
    /// the first failure is the error.
    async fn write_last<'a>(&self, partitions: impl Iterator<Item = &'a str>) -> Result<()> {
        let Some(checkpointer) = &self.checkpointer else {
            return Ok(());
        };
        let mut first_error = Ok(());
        for partition in partitions {
            if let Err(err) = checkpointer.flush(partition).await {
                tracing::warn!(owner_id = %self.owner_id, partition, error = %err, "could not write the last checkpoint of a partition this consumer gives up");
                if first_error.is_ok() {
                    first_error = Err(err);
                }
            }
        }
        first_error
    }

    /// Gives up every owned partition (`owner_id` `""`), so others can take them at their next
    /// cycle instead of waiting for expiry. Partitions lost to others meanwhile are skipped. With
    /// a [checkpointer](Self::with_checkpointer), writes each one's pending position first; a
    /// failed write is the error (after the partitions are given up all the same).
    pub async fn relinquish(&self) -> Result<()> {
        let releases: Vec<Ownership> = {
            let mut owned = lock(&self.owned);
            std::mem::take(&mut *owned)
                .into_values()
                .map(|o| Ownership {
                    owner_id: None,
                    ..o
                })
                .collect()
        };
        lock(&self.held).clear();
        // Partitions handed over at the last cycle: their last positions go out now.
        self.flush_handed_over().await;
        if releases.is_empty() {
            return Ok(());
        }
        // Checkpoint first: the next owner resumes from what is written when it claims.
        let flushed = self
            .write_last(releases.iter().map(|r| r.partition_id.as_str()))
            .await;
        self.store.claim_ownership(&releases).await?;
        flushed
    }

    /// Cycles now and then `interval` after each cycle ends, until `shutdown` completes; then
    /// relinquishes. `on_cycle` sees the result of each cycle; a failed cycle is logged and
    /// retried at the next one.
    pub async fn run(
        &self,
        shutdown: impl Future<Output = ()>,
        mut on_cycle: impl FnMut(&Result<BTreeSet<String>>),
    ) -> Result<()> {
        // Its pause is a Tokio timer, which would panic outside a runtime.
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::NoRuntime { operation: "run" });
        }
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let result = self.cycle().await;
            if let Err(err) = &result {
                tracing::warn!(owner_id = %self.owner_id, error = %err, "balancing cycle failed");
            }
            on_cycle(&result);
            let mut pause = self.jittered_interval();
            if !lock(&self.to_flush).is_empty() {
                // Partitions just found taken: a quarter interval for the application to see
                // them gone from `ready` and stop, then their last positions, well before the
                // takers' hold ends.
                let settle = std::pin::pin!(tokio::time::sleep(pause / 4));
                if let Either::Left(_) = future::select(shutdown.as_mut(), settle).await {
                    break;
                }
                self.flush_handed_over().await;
                pause -= pause / 4;
            }
            let pause = std::pin::pin!(tokio::time::sleep(pause));
            if let Either::Left(_) = future::select(shutdown.as_mut(), pause).await {
                break;
            }
        }
        self.relinquish().await
    }

    /// The interval ±10%, different each time: consumers started together with one interval
    /// would otherwise cycle in lockstep, where an owner's renewal and a stealer's claim always
    /// race for the same version and the owner tends to win.
    fn jittered_interval(&self) -> Duration {
        let cycle = self.cycles.fetch_add(1, Ordering::Relaxed);
        let permille = 900 + self.shuffle.hash_one(cycle) % 201;
        // Cannot overflow: the interval is at most MAX_INTERVAL (validated in `new`).
        self.options.interval * permille as u32 / 1000
    }

    /// The partitions to claim this cycle, beyond renewals.
    fn plan(&self, view: &View) -> Vec<String> {
        let owners = view.owner_counts(&self.owner_id);
        let mine = owners.get(self.owner_id.as_str()).copied().unwrap_or(0);
        let share = FairShare::new(self.partitions.len(), owners.len());
        // Owners other than us already holding a "+1" slot.
        let above_min = owners
            .iter()
            .filter(|(o, n)| **o != self.owner_id && **n > share.min)
            .count();
        let wanted = if mine < share.min {
            share.min - mine
        } else if mine == share.min && above_min < share.extra {
            1
        } else {
            0
        };
        if wanted == 0 {
            return Vec::new();
        }

        let mut free: Vec<&String> = view.free.iter().collect();
        free.sort_by_key(|p| self.shuffle.hash_one(p));
        let take = match self.options.strategy {
            Strategy::Greedy => wanted,
            Strategy::Balanced => 1,
        };
        if !free.is_empty() {
            return free.into_iter().take(take).cloned().collect();
        }

        // Nothing free: steal one from the busiest owner, if it holds more than its share allows.
        let limit = if mine < share.min {
            share.min
        } else {
            share.max()
        };
        let victim = owners
            .iter()
            .filter(|(o, n)| **o != self.owner_id && **n > limit)
            .max_by_key(|(o, n)| (**n, self.shuffle.hash_one(o)));
        let Some((victim, _)) = victim else {
            return Vec::new();
        };
        view.owned_by(victim)
            .map(|o| &o.partition_id)
            .min_by_key(|p| self.shuffle.hash_one(p))
            .into_iter()
            .cloned()
            .collect()
    }

    /// Without a listing, keep only the claims that have not expired yet.
    fn drop_expired(&self) {
        let now = self.now();
        // Without a date there is no evidence the claim still holds: drop it.
        lock(&self.owned).retain(|_, o| {
            o.last_modified
                .is_some_and(|t| unexpired(t, now, self.options.expiration))
        });
    }
}

impl std::fmt::Debug for PartitionBalancer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionBalancer")
            .field("owner_id", &self.owner_id)
            .field("consumer_group", &self.consumer_group)
            .field("partitions", &self.partitions.len())
            .field("owned", &self.owned())
            .field("options", &self.options)
            .finish()
    }
}

/// Whether a claim written at `written` still holds at `now`.
fn unexpired(written: OffsetDateTime, now: OffsetDateTime, expiration: Duration) -> bool {
    now - written < expiration
}

/// `partitions` over `owners`: everyone gets `min`, and `extra` of them one more.
struct FairShare {
    min: usize,
    extra: usize,
}

impl FairShare {
    fn new(partitions: usize, owners: usize) -> Self {
        let owners = owners.max(1);
        Self {
            min: partitions / owners,
            extra: partitions % owners,
        }
    }

    fn max(&self) -> usize {
        self.min + usize::from(self.extra > 0)
    }
}

/// One listing, read for balancing.
struct View {
    /// The record of each of our partitions that has one.
    records: HashMap<String, Ownership>,
    /// Records with a live owner, by partition. Our own records count as live even when expired
    /// (after a pause, say): nobody has taken them, and renewing them is conditional anyway.
    live: BTreeMap<String, String>,
    /// Partitions without a live owner: never claimed, relinquished, or expired.
    free: BTreeSet<String>,
}

impl View {
    fn new(
        listed: Vec<Ownership>,
        partitions: &BTreeSet<String>,
        me: &str,
        now: OffsetDateTime,
        expiration: Duration,
    ) -> Self {
        let records: HashMap<String, Ownership> = listed
            .into_iter()
            .filter(|o| partitions.contains(&o.partition_id))
            .map(|o| (o.partition_id.clone(), o))
            .collect();
        let mut live = BTreeMap::new();
        let mut free = BTreeSet::new();
        for partition in partitions {
            let owner = records.get(partition).and_then(|o| {
                // Without a date there is no evidence of expiry: never take it on a guess.
                let fresh = o
                    .last_modified
                    .is_none_or(|t| unexpired(t, now, expiration));
                o.owner_id
                    .clone()
                    .filter(|id| !id.is_empty() && (fresh || id == me))
            });
            match owner {
                Some(owner) => {
                    live.insert(partition.clone(), owner);
                }
                None => {
                    free.insert(partition.clone());
                }
            }
        }
        Self {
            records,
            live,
            free,
        }
    }

    fn owned_by<'a>(&'a self, owner: &'a str) -> impl Iterator<Item = &'a Ownership> + 'a {
        self.live
            .iter()
            .filter(move |(_, o)| o.as_str() == owner)
            .filter_map(|(p, _)| self.records.get(p))
    }

    /// Partitions per live owner, including `me` (with 0 if it owns nothing yet).
    fn owner_counts<'a>(&'a self, me: &'a str) -> HashMap<&'a str, usize> {
        let mut counts = HashMap::from([(me, 0)]);
        for owner in self.live.values() {
            *counts.entry(owner.as_str()).or_default() += 1;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fair_share_splits_partitions_with_at_most_one_extra() {
        let share = FairShare::new(32, 3);
        assert_eq!((share.min, share.extra, share.max()), (10, 2, 11));
        let share = FairShare::new(32, 4);
        assert_eq!((share.min, share.extra, share.max()), (8, 0, 8));
        let share = FairShare::new(2, 5);
        assert_eq!((share.min, share.extra, share.max()), (0, 2, 1));
    }

    #[test]
    fn expired_relinquished_and_missing_records_are_free() {
        let now = OffsetDateTime::now_utc();
        let record = |p: &str, owner: Option<&str>, age_secs: i64| Ownership {
            owner_id: owner.map(str::to_owned),
            last_modified: Some(now - time::Duration::seconds(age_secs)),
            ..Ownership::new("ns", "eh", "cg", p, "")
        };
        let partitions: BTreeSet<String> = ["0", "1", "2", "3"].map(String::from).into();
        let view = View::new(
            vec![
                record("0", Some("a"), 5),
                record("1", Some("a"), 31),
                record("2", None, 1),
                record("3", Some("b"), 60), // b's own, expired: still b's to renew
                record("9", Some("a"), 1),  // not one of ours
            ],
            &partitions,
            "b",
            now,
            Duration::from_secs(30),
        );
        assert_eq!(view.live.keys().collect::<Vec<_>>(), ["0", "3"]);
        assert_eq!(view.free.iter().collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(view.owner_counts("b"), HashMap::from([("a", 1), ("b", 1)]));
        assert_eq!(
            view.owner_counts("c"),
            HashMap::from([("a", 1), ("b", 1), ("c", 0)])
        );
    }

    #[test]
    fn options_are_checked() {
        struct NoStore;
        #[async_trait::async_trait]
        impl CheckpointStore for NoStore {
            async fn list_ownership(&self, _: &str, _: &str, _: &str) -> Result<Vec<Ownership>> {
                unreachable!()
            }
            async fn claim_ownership(&self, _: &[Ownership]) -> Result<Vec<Ownership>> {
                unreachable!()
            }
            async fn update_checkpoint(&self, _: &crate::Checkpoint) -> Result<()> {
                unreachable!()
            }
            async fn list_checkpoints(
                &self,
                _: &str,
                _: &str,
                _: &str,
            ) -> Result<Vec<crate::Checkpoint>> {
                unreachable!()
            }
        }
        let make = |owner: &str, partitions: &[&str], options: BalancerOptions| {
            PartitionBalancer::new(
                Arc::new(NoStore),
                "ns",
                "eh",
                "cg",
                owner,
                partitions.iter().copied(),
                options,
            )
        };
        let secs = Duration::from_secs;
        assert!(make("a", &["0", "1"], BalancerOptions::default()).is_ok());
        assert!(make(
            "a",
            &["0"],
            BalancerOptions::new(MAX_INTERVAL, MAX_EXPIRATION)
        )
        .is_ok());
        for (owner, partitions, options) in [
            ("", &["0"][..], BalancerOptions::default()),
            ("a", &[][..], BalancerOptions::default()),
            ("a", &["0", "0"][..], BalancerOptions::default()),
            ("a", &["0"][..], BalancerOptions::new(secs(10), secs(10))),
            ("a", &["0"][..], BalancerOptions::new(secs(0), secs(10))),
            // Would overflow the jittered interval (`interval * 1100`).
            (
                "a",
                &["0"][..],
                BalancerOptions::new(Duration::MAX / 2, Duration::MAX),
            ),
            (
                "a",
                &["0"][..],
                BalancerOptions::new(MAX_INTERVAL + secs(1), MAX_EXPIRATION),
            ),
            (
                "a",
                &["0"][..],
                BalancerOptions::new(secs(10), MAX_EXPIRATION + secs(1)),
            ),
        ] {
            if !(owner.is_empty() || partitions.len() != 1) {
                assert!(options.validate().is_err(), "{options:?}");
            }
            match make(owner, partitions, options.clone()) {
                Err(Error::InvalidInput { .. }) => {}
                other => panic!("{owner:?} {partitions:?} {options:?}: {other:?}"),
            }
        }
    }
}
