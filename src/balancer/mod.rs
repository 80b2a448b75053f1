//! Partition ownership for consumers that do not use the official processor (custom AMQP or
//! Kafka-protocol consumers, batch jobs): a [`PartitionBalancer`] over any [`CheckpointStore`]
//! spreads an event hub's partitions fairly over the live consumers of a consumer group.
//!
//! Each cycle lists ownership, renews what this consumer owns, claims unowned or expired
//! partitions up to its fair share, and, when none are left, steals from owners above their fair
//! share (one a cycle, or, with [`Strategy::Greedy`], its whole deficit, and it lists again soon
//! after: see [`Strategy`]). Every claim is conditional on the version it listed, so two
//! consumers never both win the same version of a partition. A consumer that loses a partition
//! to a steal learns it at its next cycle (its renewal loses, or its listing shows it taken):
//! until then both may believe they own it, for at most one interval, as with every Event Hubs
//! processor. Relinquishing on shutdown hands partitions over at once, without waiting for them
//! to expire.
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
//!   is owned at once, and renewed, but [`ready`](PartitionBalancer::ready) leaves it out until
//!   the old owner is seen to have handed it over.
//! - **The giver stops, then writes.** The old owner's next cycle finds its renewal lost and drops
//!   the partition from `ready`; the application, which checks `ready` before each batch (at
//!   least every quarter interval), stops processing it. A quarter interval later
//!   [`run`](PartitionBalancer::run) writes the partition's last position through the
//!   [checkpointer](PartitionBalancer::with_checkpointer) (with `cycle` called by hand, at the
//!   start of the next cycle): in either case before the giver renews its other claims again.
//! - **The taker watches the giver's other claims.** Their renewals are the evidence: once it has
//!   seen one of them at three new versions since the steal (three cycles of the giver), the
//!   giver has found the loss and written the last position. (The first cycle may have been under
//!   way before the steal; the second began after it ended, so its renewal of the partition came
//!   after the steal and lost; the giver writes before the third. Versions of one claim are
//!   counted, not changes across claims: a cycle's renewals go out over some time, and a listing
//!   may see them half done.) While it holds a partition, `run` lists three
//!   times an interval instead of once, so a hold ends about a third of an interval after the
//!   evidence: about 2.5 intervals after the steal when every consumer keeps time, longer when the
//!   giver runs late (a loaded machine, a slow store), never shorter. If the giver's claims expire
//!   meanwhile, it is gone and writes nothing more: the hold ends. A giver that owns nothing else
//!   cannot be watched: then the hold ends after `handover_intervals` intervals and a half
//!   ([`BalancerOptions::handover_intervals`]), as a timer.
//! - **The taker resumes** from that checkpoint when the hold ends: where the old owner stopped.
//!
//! Without a checkpointer, the application writes a partition's last position itself when the
//! partition leaves `ready`, before the next cycle.
//!
//! Why nobody processes twice and nobody takes twice: a partition has one winner per version
//! (claims are conditional), so exactly one taker holds it; the giver processes it only while its
//! renewal keeps winning, and stops one cycle after the first loss, before it writes; the taker
//! starts after that write. Nothing else changes hands: a consumer never gives a partition away
//! on its own, so two consumers cannot both give up one, and relinquishing on shutdown is the
//! same handover without the wait (the position is written first, then the partition released).
//!
//! The cost is a pause, and listings: a moved partition is processed by nobody for about 2.5
//! intervals, and its taker lists ownership two more times per interval meanwhile (nothing more
//! in steady state). A partition that expired (its owner died) or was relinquished is ready at
//! once: nobody is left to wait for. Fleets mixed with the other languages' processors still
//! converge: they steal and start at once (their old owners reprocess as always), and they never
//! wait for anything. `handover_intervals = 0` gives this balancer their behaviour, and then a
//! partition taken from this consumer has its unwritten position discarded, since its taker has
//! already resumed.
//!
//! Expiry is judged by the service's clock. A claim's `last_modified` is stamped by the storage
//! service, so comparing it with this host's wall clock lets a host whose clock runs minutes ahead
//! take partitions that are still live, and one that runs behind keep waiting for dead owners
//! (and keep its own expired claims when the store is unreachable). Stores that report the time
//! of their listing ([`CheckpointStore::list_ownership_with_service_time`]; this crate's do) are
//! judged by that time, carried forward on this host's monotonic clock; for other stores the
//! balancer falls back to the wall clock ([`PartitionBalancer::with_local_clock`]).
//!
//! The code is in rooms: `options` (timing and strategy), `plan` (the pure rules: fair share,
//! what is free, what to take), `handover` (the holds and the last writes), and this module,
//! whose [`cycle`](PartitionBalancer::cycle) runs four named steps: list, plan, claim, settle.
//!
//! ```
//! use eventhub_checkpointstore::{
//!     balancer::{BalancerOptions, PartitionBalancer},
//!     BlobCheckpointStore, Scope,
//! };
//! use std::sync::Arc;
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let connection = std::env::var("AZURE_STORAGE_CONNECTION_STRING")?;
//! let store = Arc::new(BlobCheckpointStore::from_connection_string(&connection, "checkpoints", None)?);
//! store.create_container_if_missing().await?;
//! let scope = Scope::new("myns.servicebus.windows.net", "telemetry", "$Default");
//! let partitions: Vec<String> = (0..32).map(|p| p.to_string()).collect();
//! let balancer = PartitionBalancer::new(
//!     store, scope, "consumer-1", partitions, BalancerOptions::default(),
//! )?;
//! let owned = balancer.cycle().await?; // call every `options.interval`, or use `run`
//! println!("processing {owned:?}");
//! balancer.relinquish().await?;        // on shutdown
//! # Ok(()) }
//! ```

mod handover;
mod options;
mod plan;

pub use options::{
    BalancerOptions, Strategy, MAX_EXPIRATION, MAX_HANDOVER_INTERVALS, MAX_INTERVAL,
};

use crate::checkpointer::Checkpointer;
use crate::error::{Error, Result};
use crate::metrics::{self, Change};
use crate::model::Ownership;
use crate::scope::Scope;
use crate::store::{CheckpointStore, ServiceTime};
use crate::sync::lock;
use futures::future::{self, Either};
use handover::Handover;
use plan::{unexpired, View};
use std::{
    collections::{hash_map::RandomState, BTreeMap, BTreeSet},
    future::Future,
    hash::BuildHasher,
    sync::{
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};
use time::OffsetDateTime;

/// One consumer's share of an event hub's partitions. See the [module docs](self).
pub struct PartitionBalancer {
    store: Arc<dyn CheckpointStore>,
    scope: Scope,
    owner_id: String,
    partitions: BTreeSet<String>,
    options: BalancerOptions,
    /// What this consumer won, with the version it won: renewals are conditional on it.
    owned: Mutex<BTreeMap<String, Ownership>>,
    /// Random but fixed per consumer, so simultaneous starters pick different partitions.
    shuffle: RandomState,
    cycles: AtomicU64,
    /// Whether the last cycle planned claims beyond renewals (greedy then looks again soon).
    planned: AtomicBool,
    /// Quick cycles left before whole intervals again (see [`plan::QUICK_CYCLES`]).
    quick_left: AtomicU32,
    /// The service's time at the last listing that reported it.
    service_time: Mutex<Option<ServiceTime>>,
    /// This host's wall clock, for stores that do not report the service's time.
    local_clock: fn() -> OffsetDateTime,
    /// Flushed for each partition this consumer gives up, discarded for each it loses.
    checkpointer: Option<Arc<Checkpointer>>,
    handover: Handover,
    /// Until when this consumer takes nothing new, having given up partitions it could not
    /// read (see [`release`](PartitionBalancer::release)).
    take_nothing_until: Mutex<Option<tokio::time::Instant>>,
    /// Whom each partition this consumer stole was taken from (see
    /// [`give_back`](PartitionBalancer::give_back)).
    taken_from: Mutex<BTreeMap<String, String>>,
    /// Owners this consumer takes nothing from, and until when: they kept reading a partition
    /// taken from them.
    unmovable: Mutex<BTreeMap<String, tokio::time::Instant>>,
}

/// What one cycle asks the store for: renewals of what this consumer owns, and the partitions
/// it plans to take, each as a claim for this consumer.
struct Claims {
    /// Renewals and steals.
    requests: Vec<Ownership>,
    /// Free partitions, in the order planned (this consumer's shuffle).
    free: Vec<Ownership>,
    /// The planned partitions that have a live owner: taking them is a steal, held if won.
    stolen: BTreeSet<String>,
}

/// Whether a cycle renews what the consumer owns: every cycle `cycle` and `run` start at the
/// interval does; a quick cycle between them does not.
#[derive(Clone, Copy)]
enum Renewals {
    Due,
    NotDue,
}

impl PartitionBalancer {
    /// A balancer for `owner_id` over `partition_ids` of one consumer group. Checks its arguments
    /// (non-empty ids, no duplicate partitions, the options as [`BalancerOptions::validate`]
    /// does); sends nothing.
    pub fn new(
        store: Arc<dyn CheckpointStore>,
        scope: impl Into<Scope>,
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
            scope: scope.into(),
            owner_id,
            partitions,
            options,
            owned: Mutex::new(BTreeMap::new()),
            shuffle: RandomState::new(),
            cycles: AtomicU64::new(0),
            planned: AtomicBool::new(false),
            quick_left: AtomicU32::new(plan::QUICK_CYCLES),
            service_time: Mutex::new(None),
            local_clock: OffsetDateTime::now_utc,
            checkpointer: None,
            handover: Handover::default(),
            take_nothing_until: Mutex::new(None),
            taken_from: Mutex::new(BTreeMap::new()),
            unmovable: Mutex::new(BTreeMap::new()),
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
    /// `OffsetDateTime::now_utc`). It is read only while the store has not reported the
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
    ///     Arc::new(InMemoryCheckpointStore::new()), ("ns", "eh", "$Default"), "me", ["0"],
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

    /// The consumer group this balancer works in.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The partitions this consumer owned after its last cycle (those held for a handover
    /// included).
    pub fn owned(&self) -> BTreeSet<String> {
        lock(&self.owned).keys().cloned().collect()
    }

    /// The owned partitions to process now: those taken from a live owner are left out until
    /// the owner is seen to have handed them over (see the [module docs](self)). Holds end at
    /// listings: this changes only during [`cycle`](Self::cycle) and [`run`](Self::run).
    pub fn ready(&self) -> BTreeSet<String> {
        self.handover.ready(self.owned())
    }

    /// Whether `partition_id` is among the partitions to process now: `ready().contains(..)`
    /// without building the set, for a check before each event or batch.
    pub fn is_ready(&self, partition_id: &str) -> bool {
        lock(&self.owned).contains_key(partition_id) && !self.handover.holds(partition_id)
    }

    /// The claims this consumer won at its last cycle, each with the version (etag) it holds:
    /// what it renews next, and what a caller can compare with a listing of the store.
    pub fn claims(&self) -> Vec<Ownership> {
        lock(&self.owned).values().cloned().collect()
    }

    /// One balancing cycle: list, plan (renew, claim up to the fair share, steal: see
    /// [`Strategy`]), claim, settle. Returns the partitions this consumer owns afterwards.
    ///
    /// Partitions whose renewal lost (stolen, or expired and taken) are no longer owned. If the
    /// store fails altogether, the error is returned and the owned set keeps only the claims that
    /// have not expired yet: nobody else can take those before they expire, except by stealing.
    pub async fn cycle(&self) -> Result<BTreeSet<String>> {
        // Lost at the last cycle: the application has stopped processing them since (it checks
        // `ready` more often than once per interval), so their last positions are final now, and
        // the consumer that took them holds them until these are written.
        self.write_handed_over().await;
        self.cycle_with(Renewals::Due).await
    }

    /// A quick cycle (see [`quick_pause`](Self::quick_pause)): a cycle without renewals, which
    /// went out less than an interval ago, so the claims a handover watches still change version
    /// once a whole cycle of their owner. What its listing shows taken is dropped, and handed over
    /// as after a whole cycle.
    async fn top_up(&self) -> Result<BTreeSet<String>> {
        self.cycle_with(Renewals::NotDue).await
    }

    async fn cycle_with(&self, renewals: Renewals) -> Result<BTreeSet<String>> {
        self.planned.store(false, Ordering::Relaxed);
        let result = async {
            let view = self.list().await?;
            self.handover.observe(&view);
            let Claims {
                requests,
                free,
                stolen,
            } = self.plan(&view, renewals);
            let planned = !stolen.is_empty() || !free.is_empty();
            self.planned.store(planned, Ordering::Relaxed);
            let won = self.claim(requests, free).await?;
            Ok(self.settle(won, &stolen, &view, renewals))
        }
        .await;
        if result.is_err() {
            self.drop_expired();
        }
        result
    }

    /// Step 1: the store's ownership records, judged by the service's clock.
    async fn list(&self) -> Result<View> {
        let (listed, service_time) = self
            .store
            .list_ownership_with_service_time(&self.scope)
            .await?;
        if service_time.is_some() {
            *lock(&self.service_time) = service_time;
        }
        Ok(View::new(
            listed,
            &self.partitions,
            &self.owner_id,
            self.now(),
            self.options.expiration,
        ))
    }

    /// Step 2: renewals of what this consumer owns (when due), and what it takes beyond them.
    fn plan(&self, view: &View, renewals: Renewals) -> Claims {
        // A consumer that just gave partitions up because it could not read them takes nothing
        // new meanwhile: it would take them (or others) back and stall on them again.
        let planned = if self.setting_aside() {
            Vec::new()
        } else {
            let unmovable = self.unmovable();
            plan::plan(
                view,
                &unmovable,
                &self.owner_id,
                self.partitions.len(),
                self.options.strategy,
                &self.shuffle,
            )
        };
        let (stolen, free): (Vec<String>, Vec<String>) = planned
            .into_iter()
            .partition(|p| view.owned_by_other(p, &self.owner_id));
        let mine = |partition: &String| Ownership {
            owner_id: Some(self.owner_id.clone()),
            ..view
                .records
                .get(partition)
                .cloned()
                .unwrap_or_else(|| self.scope.ownership(partition.clone(), ""))
        };
        // Renewals are this consumer's own records already.
        let mut requests: Vec<Ownership> = match renewals {
            Renewals::Due => view.owned_by(&self.owner_id).cloned().collect(),
            Renewals::NotDue => Vec::new(),
        };
        requests.extend(stolen.iter().map(mine));
        Claims {
            requests,
            free: free.iter().map(mine).collect(),
            stolen: stolen.into_iter().collect(),
        }
    }

    /// Step 3: the claims. Renewals, steals and a first round of free partitions go out at once;
    /// further free partitions (a greedy consumer that sees no other plans them all) go out a
    /// round at a time, until a round loses one: a consumer that loses a free partition is not
    /// alone, and claiming on would mostly send requests that lose too (64 consumers started
    /// together over 1,024 partitions would send 65,536 claims, 1,024 of them winning). Its next
    /// listing (soon after, for a greedy consumer) shows how many others there are. A lone
    /// consumer claims everything in one cycle, a round after another, as the store would. A
    /// failure after the first round keeps what was won.
    async fn claim(
        &self,
        mut requests: Vec<Ownership>,
        free: Vec<Ownership>,
    ) -> Result<Vec<Ownership>> {
        let mut free = free.into_iter();
        let sure = requests.len();
        requests.extend(free.by_ref().take(plan::FREE_CLAIMS_PER_ROUND));
        let free_sent = requests.len() - sure;
        let mut won = self.store.claim_ownership(&requests).await?;
        let free_won = won
            .iter()
            .filter(|o| {
                requests[sure..]
                    .iter()
                    .any(|r| r.partition_id == o.partition_id)
            })
            .count();
        let mut lost_one = free_won < free_sent;
        while !lost_one {
            let round: Vec<Ownership> = free.by_ref().take(plan::FREE_CLAIMS_PER_ROUND).collect();
            if round.is_empty() {
                break;
            }
            match self.store.claim_ownership(&round).await {
                Ok(round_won) => {
                    lost_one = round_won.len() < round.len();
                    won.extend(round_won);
                }
                Err(err) => {
                    tracing::debug!(owner_id = %self.owner_id, error = %err, "claims of free partitions failed; the next cycle tries again");
                    break;
                }
            }
        }
        Ok(won)
    }

    /// Step 4: what was won is what this consumer owns now (added to what it owned and the
    /// listing does not show taken, when nothing was renewed); steals are held for the handover,
    /// and what was lost has its pending position written later (handover) or dropped.
    fn settle(
        &self,
        won: Vec<Ownership>,
        stolen: &BTreeSet<String>,
        view: &View,
        renewals: Renewals,
    ) -> BTreeSet<String> {
        self.handover.hold(
            won.iter()
                .filter(|o| stolen.contains(&o.partition_id))
                .map(|o| o.partition_id.clone()),
            view,
            self.options.handover(),
        );
        let handover = self.options.handover_intervals > 0;
        let (now_owned, lost): (BTreeSet<String>, Vec<String>) = {
            let mut owned = lock(&self.owned);
            let before = std::mem::take(&mut *owned);
            // New to this consumer: taken from a live owner (held for its handover), or free.
            let (stolen_now, taken): (Vec<&Ownership>, Vec<&Ownership>) = won
                .iter()
                .filter(|o| !before.contains_key(&o.partition_id))
                .partition(|o| stolen.contains(&o.partition_id));
            // Stolen back from the consumer that had just taken them: they left `ready` (held
            // now), so they were handed over in between and their last positions are due.
            let taken_back: BTreeSet<String> = won
                .iter()
                .filter(|o| before.contains_key(&o.partition_id))
                .filter(|o| handover && stolen.contains(&o.partition_id))
                .map(|o| o.partition_id.clone())
                .collect();
            {
                let mut taken_from = lock(&self.taken_from);
                for o in &taken {
                    taken_from.remove(&o.partition_id);
                }
                for o in &stolen_now {
                    if let Some(giver) = view.live.get(&o.partition_id) {
                        taken_from.insert(o.partition_id.clone(), giver.clone());
                    }
                }
            }
            let held = stolen_now.len() + taken_back.len();
            metrics::ownership_changes(&self.scope, &self.owner_id, Change::Stolen, held);
            metrics::ownership_changes(&self.scope, &self.owner_id, Change::Taken, taken.len());
            if handover {
                metrics::handover_holds(&self.scope, &self.owner_id, held);
            }
            *owned = match renewals {
                Renewals::Due => BTreeMap::new(),
                // Nothing renewed: what it owned stays, but what the listing shows taken.
                Renewals::NotDue => before
                    .iter()
                    .filter(|(p, _)| !view.owned_by_other(p, &self.owner_id))
                    .map(|(p, o)| (p.clone(), o.clone()))
                    .collect(),
            };
            owned.extend(won.into_iter().map(|o| (o.partition_id.clone(), o)));
            let lost = before
                .into_keys()
                .filter(|p| !owned.contains_key(p) || taken_back.contains(p))
                .collect();
            (owned.keys().cloned().collect(), lost)
        };
        metrics::ownership_changes(&self.scope, &self.owner_id, Change::Lost, lost.len());
        metrics::owned(&self.scope, &self.owner_id, now_owned.len());
        if let Some(checkpointer) = &self.checkpointer {
            if handover {
                self.handover.lost(lost);
            } else {
                for partition in &lost {
                    if checkpointer.discard(partition) {
                        tracing::debug!(owner_id = %self.owner_id, partition, "partition taken by another consumer: its unwritten position is dropped");
                    }
                }
            }
        }
        now_owned
    }

    /// Writes the last positions of the partitions found taken at the last cycle (cooperative
    /// handover); a failure is logged: the taker resumes from the last written position.
    async fn write_handed_over(&self) {
        let handed_over = self.handover.take_lost();
        if let Some(checkpointer) = &self.checkpointer {
            // Logged inside; the taker resumes from the last written position either way.
            let _ = handover::write_last(
                checkpointer,
                &self.owner_id,
                handed_over.iter().map(String::as_str),
            )
            .await;
        }
    }

    /// Gives up every owned partition (`owner_id` `""`), so others can take them at their next
    /// cycle instead of waiting for expiry. Partitions lost to others meanwhile are skipped. With
    /// a [checkpointer](Self::with_checkpointer), writes each one's pending position first; a
    /// failed write is the error (after the partitions are given up all the same).
    pub async fn relinquish(&self) -> Result<()> {
        let claims: Vec<Ownership> = std::mem::take(&mut *lock(&self.owned))
            .into_values()
            .collect();
        self.handover.release_all();
        // Partitions handed over at the last cycle: their last positions go out now.
        self.write_handed_over().await;
        if claims.is_empty() {
            return Ok(());
        }
        let (_, written) = self.give_up(claims, None).await?;
        written
    }

    /// Writes the pending positions of `claims` (no longer in `owned`), then gives them up:
    /// the next owner resumes from what is written when it claims. How many were given up
    /// (a claim lost meanwhile is not), and the first failed write; a failed release is the
    /// error.
    async fn give_up(
        &self,
        claims: Vec<Ownership>,
        to: Option<String>,
    ) -> Result<(usize, Result<()>)> {
        let written = match &self.checkpointer {
            Some(checkpointer) => {
                handover::write_last(
                    checkpointer,
                    &self.owner_id,
                    claims.iter().map(|c| c.partition_id.as_str()),
                )
                .await
            }
            None => Ok(()),
        };
        let releases: Vec<Ownership> = claims
            .into_iter()
            .map(|o| Ownership {
                owner_id: to.clone(),
                ..o
            })
            .collect();
        let released = self.store.claim_ownership(&releases).await?;
        metrics::ownership_changes(
            &self.scope,
            &self.owner_id,
            Change::Relinquished,
            released.len(),
        );
        metrics::owned(&self.scope, &self.owner_id, lock(&self.owned).len());
        Ok((released.len(), written))
    }

    /// Gives up one owned partition now (`owner_id` `""`), so that another consumer takes it at
    /// its next cycle, and takes nothing new for `set_aside` (renewing what it still owns): for
    /// a consumer that cannot read the partition (its connection to Event Hubs is gone) and
    /// would otherwise keep it claimed and unread until it stops. With a
    /// [checkpointer](Self::with_checkpointer), the partition's pending position is written first;
    /// a failed write is the error (after the partition is given up all the same). Whether the
    /// partition was owned and given up; a partition lost to another consumer meanwhile is not.
    ///
    /// ```
    /// # use eventhub_checkpointstore::{balancer::{BalancerOptions, PartitionBalancer}, CheckpointStore, InMemoryCheckpointStore};
    /// # use std::{sync::Arc, time::Duration};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> eventhub_checkpointstore::Result<()> {
    /// let store = Arc::new(InMemoryCheckpointStore::new());
    /// let balancer = PartitionBalancer::new(
    ///     store.clone(), ("ns", "eh", "$Default"), "me", ["0", "1"], BalancerOptions::default(),
    /// )?;
    /// balancer.cycle().await?; // alone: takes one partition a cycle (the default strategy)
    /// let mine = balancer.owned().into_iter().next().unwrap();
    /// assert!(balancer.is_ready(&mine));
    /// assert!(balancer.release(&mine, Duration::from_secs(60)).await?);
    /// assert!(!balancer.is_ready(&mine));
    /// assert!(balancer.owned().is_empty());
    /// balancer.cycle().await?; // set aside: takes nothing for a minute
    /// assert!(balancer.owned().is_empty());
    /// # Ok(()) }
    /// ```
    pub async fn release(&self, partition_id: &str, set_aside: Duration) -> Result<bool> {
        let until = tokio::time::Instant::now() + set_aside;
        {
            let mut taking_nothing = lock(&self.take_nothing_until);
            *taking_nothing = (*taking_nothing).max(Some(until));
        }
        let Some(claim) = lock(&self.owned).remove(partition_id) else {
            return Ok(false);
        };
        self.handover.release(partition_id);
        lock(&self.taken_from).remove(partition_id);
        let (released, written) = self.give_up(vec![claim], None).await?;
        written.map(|()| released > 0)
    }

    /// Gives a partition this consumer took from a live owner back to that owner, and takes
    /// nothing from it for `for_`: for a consumer that could not read what it took because its
    /// old owner still reads it. (JavaScript's processor stops reading a partition only when a
    /// receiver with an owner level displaces its own, and the 0.15 client's receivers carry
    /// none, so they are refused; taking from it again would only repeat that.) The claim is
    /// written in the old owner's name, conditional on this consumer's version, so the records
    /// say who reads the partition. A partition not taken from a live owner is
    /// [released](Self::release) instead, with `set_aside`. Whether the partition was owned and
    /// given.
    #[cfg(any(test, feature = "eventhubs"))]
    pub(crate) async fn give_back(
        &self,
        partition_id: &str,
        set_aside: Duration,
        for_: Duration,
    ) -> Result<bool> {
        let Some(giver) = lock(&self.taken_from).remove(partition_id) else {
            return self.release(partition_id, set_aside).await;
        };
        lock(&self.unmovable).insert(giver.clone(), tokio::time::Instant::now() + for_);
        let Some(claim) = lock(&self.owned).remove(partition_id) else {
            return Ok(false);
        };
        self.handover.release(partition_id);
        tracing::info!(owner_id = %self.owner_id, partition = partition_id, to = %giver, "giving the partition back to the owner it was taken from, which still reads it");
        let (given, written) = self.give_up(vec![claim], Some(giver)).await?;
        written.map(|()| given > 0)
    }

    /// The owners nothing is taken from now (see [`give_back`](Self::give_back)).
    fn unmovable(&self) -> BTreeSet<String> {
        let now = tokio::time::Instant::now();
        let mut unmovable = lock(&self.unmovable);
        unmovable.retain(|_, until| *until > now);
        unmovable.keys().cloned().collect()
    }

    /// Whether a partition given up by [`release`](Self::release) is still set aside.
    fn setting_aside(&self) -> bool {
        lock(&self.take_nothing_until).is_some_and(|until| tokio::time::Instant::now() < until)
    }

    /// Cycles now and then `interval` after each cycle ends, until `shutdown` completes; then
    /// relinquishes. A [greedy](Strategy::Greedy) consumer whose cycle planned claims lists
    /// again an eighth of an interval later and claims what it still lacks (a quick cycle,
    /// which renews nothing), until a cycle plans nothing (eight in a row at most). `on_cycle`
    /// sees the result of each cycle, quick ones included; a failed cycle is logged and retried
    /// at the next one.
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
        'cycles: loop {
            let result = self.cycle().await;
            if let Err(err) = &result {
                tracing::warn!(owner_id = %self.owner_id, error = %err, "balancing cycle failed");
            }
            on_cycle(&result);
            let interval = self.jittered_interval();
            let next_cycle = tokio::time::Instant::now() + interval;
            if self.hand_over_lost(shutdown.as_mut(), interval).await {
                break;
            }
            // Until the next cycle: quick cycles of a greedy consumer still short of its share,
            // and, while partitions are held for a handover, looks at their givers more often
            // than once a cycle, so a hold ends soon after the evidence.
            let mut quick = self
                .quick_pause(interval)
                .map(|p| tokio::time::Instant::now() + p);
            loop {
                let look = self
                    .handover
                    .holding()
                    .then(|| tokio::time::Instant::now() + self.options.interval / WATCHES);
                let at = [quick, look]
                    .into_iter()
                    .flatten()
                    .fold(next_cycle, tokio::time::Instant::min);
                if stopped(shutdown.as_mut(), at).await {
                    break 'cycles;
                }
                if at >= next_cycle {
                    break;
                }
                if quick == Some(at) {
                    let result = self.top_up().await;
                    if let Err(err) = &result {
                        tracing::debug!(owner_id = %self.owner_id, error = %err, "quick balancing cycle failed");
                    }
                    on_cycle(&result);
                    if self.hand_over_lost(shutdown.as_mut(), interval).await {
                        break 'cycles;
                    }
                    quick = self
                        .quick_pause(interval)
                        .map(|p| tokio::time::Instant::now() + p);
                } else {
                    self.watch_givers().await;
                }
            }
        }
        self.relinquish().await
    }

    /// After a cycle that found partitions taken: a quarter interval for the application to see
    /// them gone from `ready` and stop, then their last positions, before this consumer's next
    /// renewal, which their takers wait to see. Whether `shutdown` completed first.
    async fn hand_over_lost(
        &self,
        shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
        interval: Duration,
    ) -> bool {
        if !self.handover.any_lost() {
            return false;
        }
        if stopped(shutdown, tokio::time::Instant::now() + interval / 4).await {
            return true;
        }
        self.write_handed_over().await;
        false
    }

    /// Lists ownership between cycles, for evidence that givers handed held partitions over.
    async fn watch_givers(&self) {
        match self.list().await {
            Ok(view) => self.handover.observe(&view),
            // The next look, or the next cycle, tries again.
            Err(err) => {
                tracing::debug!(owner_id = %self.owner_id, error = %err, "could not list ownership to watch a handover")
            }
        }
    }

    /// After a greedy cycle that planned claims, the pause before a quick cycle: what it planned
    /// from may have changed under it (consumers started together all claim everything free at
    /// first, and stealers each take their part of the excess), and the next listing shows what
    /// it still lacks, an eighth of an interval later rather than a whole one. At most
    /// [`plan::QUICK_CYCLES`] in a row; a cycle that plans nothing resets the count. `None`:
    /// wait for the next cycle.
    fn quick_pause(&self, interval: Duration) -> Option<Duration> {
        if !self.planned.load(Ordering::Relaxed) {
            self.quick_left.store(plan::QUICK_CYCLES, Ordering::Relaxed);
            return None;
        }
        let quick = self.options.strategy == Strategy::Greedy
            && self
                .quick_left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok();
        quick.then(|| interval / plan::QUICK_PAUSE_DIVISOR)
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

/// Listings per interval that watch the givers of held partitions, the cycle's own included.
const WATCHES: u32 = 3;

/// Waits until `at`; whether `shutdown` completed first.
async fn stopped(
    shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
    at: tokio::time::Instant,
) -> bool {
    let wait = std::pin::pin!(tokio::time::sleep_until(at));
    matches!(future::select(shutdown, wait).await, Either::Left(_))
}

impl std::fmt::Debug for PartitionBalancer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionBalancer")
            .field("owner_id", &self.owner_id)
            .field("scope", &self.scope)
            .field("partitions", &self.partitions.len())
            .field("owned", &self.owned())
            .field("options", &self.options)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        struct NoStore;
        #[async_trait::async_trait]
        impl CheckpointStore for NoStore {
            async fn list_ownership(&self, _: &Scope) -> Result<Vec<Ownership>> {
                unreachable!()
            }
            async fn claim_ownership(&self, _: &[Ownership]) -> Result<Vec<Ownership>> {
                unreachable!()
            }
            async fn update_checkpoint(&self, _: &crate::Checkpoint) -> Result<()> {
                unreachable!()
            }
            async fn list_checkpoints(&self, _: &Scope) -> Result<Vec<crate::Checkpoint>> {
                unreachable!()
            }
        }
        let make = |owner: &str, partitions: &[&str], options: BalancerOptions| {
            PartitionBalancer::new(
                Arc::new(NoStore),
                ("ns", "eh", "cg"),
                owner,
                partitions.iter().copied(),
                options,
            )
        };
        let secs = Duration::from_secs;
        let timing = |interval, expiration| BalancerOptions {
            interval,
            expiration,
            ..Default::default()
        };
        assert!(make("a", &["0", "1"], BalancerOptions::default()).is_ok());
        assert!(make("a", &["0"], timing(MAX_INTERVAL, MAX_EXPIRATION)).is_ok());
        for (owner, partitions, options) in [
            ("", &["0"][..], BalancerOptions::default()),
            ("a", &[][..], BalancerOptions::default()),
            ("a", &["0", "0"][..], BalancerOptions::default()),
            ("a", &["0"][..], timing(secs(10), secs(10))),
            ("a", &["0"][..], timing(secs(0), secs(10))),
            // Would overflow the jittered interval (`interval * 1100`).
            ("a", &["0"][..], timing(Duration::MAX / 2, Duration::MAX)),
            (
                "a",
                &["0"][..],
                timing(MAX_INTERVAL + secs(1), MAX_EXPIRATION),
            ),
            ("a", &["0"][..], timing(secs(10), MAX_EXPIRATION + secs(1))),
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

    fn greedy(
        store: &Arc<impl CheckpointStore + 'static>,
        owner: &str,
        partitions: usize,
    ) -> Arc<PartitionBalancer> {
        let store: Arc<dyn CheckpointStore> = store.clone();
        Arc::new(
            PartitionBalancer::new(
                store,
                ("ns", "eh", "cg"),
                owner,
                (0..partitions).map(|p| p.to_string()),
                BalancerOptions {
                    strategy: Strategy::Greedy,
                    ..Default::default()
                },
            )
            .unwrap(),
        )
    }

    /// A quick cycle claims without renewing, so the versions a handover counts change once a
    /// whole cycle; it drops what its listing shows taken (handed over as after a whole cycle).
    #[tokio::test]
    async fn a_quick_cycle_claims_without_renewing() {
        let store = Arc::new(crate::InMemoryCheckpointStore::new());
        let versions = || async {
            listed(&store)
                .await
                .into_iter()
                .map(|o| (o.partition_id, (o.owner_id, o.etag)))
                .collect::<BTreeMap<_, _>>()
        };
        let (a, b) = (greedy(&store, "a", 4), greedy(&store, "b", 4));
        assert_eq!(a.cycle().await.unwrap().len(), 4);
        assert!(a.planned.load(Ordering::Relaxed));
        // b, short of its share with nothing free, steals its deficit at once.
        assert_eq!(b.cycle().await.unwrap().len(), 2);
        let before = versions().await;
        // a's quick cycle plans nothing (2 of 4 each), renews nothing, and drops the 2 its
        // listing shows b took.
        assert_eq!(a.top_up().await.unwrap().len(), 2);
        assert!(!a.planned.load(Ordering::Relaxed));
        assert_eq!(versions().await, before);
        assert_eq!(a.cycle().await.unwrap().len(), 2);
        let after = versions().await;
        for (partition, (owner, etag)) in &after {
            let renewed = etag != &before[partition].1;
            assert_eq!(renewed, owner.as_deref() == Some("a"), "{partition}");
        }
    }

    /// A partition taken from a live owner and given back is written in that owner's name, and
    /// nothing is taken from that owner until the mark ends; then it is stolen from again. A
    /// partition that was free when taken is released instead (empty owner), with its set-aside.
    #[tokio::test(start_paused = true)]
    async fn a_partition_given_back_goes_to_its_old_owner_which_is_left_alone_meanwhile() {
        let store = Arc::new(crate::InMemoryCheckpointStore::new());
        let (a, b) = (greedy(&store, "a", 4), greedy(&store, "b", 4));
        assert_eq!(a.cycle().await.unwrap().len(), 4);
        let stolen = b.cycle().await.unwrap();
        assert_eq!(stolen.len(), 2);
        let given = stolen.iter().next().unwrap().clone();
        let (set_aside, unmovable_for) = (Duration::from_secs(1), Duration::from_secs(60));
        assert!(b.give_back(&given, set_aside, unmovable_for).await.unwrap());
        assert_eq!(owner_of(&store, &given).await.as_deref(), Some("a"));
        assert!(!b.owned().contains(&given));
        // a holds 3 of 4 and b 1: b is short, but takes nothing from a while it is marked.
        a.cycle().await.unwrap();
        for _ in 0..3 {
            assert_eq!(b.cycle().await.unwrap().len(), 1);
        }
        tokio::time::advance(unmovable_for).await;
        a.cycle().await.unwrap();
        assert_eq!(b.cycle().await.unwrap().len(), 2, "stolen from again");
        // A partition b took free is released, not given to anybody.
        let c = greedy(&store, "c", 5);
        let free = c.cycle().await.unwrap();
        assert_eq!(free, BTreeSet::from(["4".to_owned()]));
        assert!(c.give_back("4", set_aside, unmovable_for).await.unwrap());
        assert_eq!(owner_of(&store, "4").await, None);
    }

    /// The tests' ownership records.
    async fn listed(store: &Arc<crate::InMemoryCheckpointStore>) -> Vec<Ownership> {
        store
            .list_ownership(&Scope::new("ns", "eh", "cg"))
            .await
            .unwrap()
    }

    /// The owner a partition's record names (`None`: none, or relinquished).
    async fn owner_of(
        store: &Arc<crate::InMemoryCheckpointStore>,
        partition: &str,
    ) -> Option<String> {
        listed(store)
            .await
            .into_iter()
            .find(|o| o.partition_id == partition)
            .and_then(|o| o.owner_id)
            .filter(|o| !o.is_empty())
    }

    /// Greedy consumers started together reach their share by quick cycles, before any of them
    /// cycles again at its interval (the store in memory, time Tokio's, paused, so the verdict
    /// does not depend on the machine's speed).
    #[tokio::test(start_paused = true)]
    async fn greedy_consumers_started_together_even_out_within_their_first_interval() {
        let store = Arc::new(crate::InMemoryCheckpointStore::new());
        let fleet: Vec<Arc<PartitionBalancer>> = (0..4)
            .map(|c| greedy(&store, &format!("c{c}"), 32))
            .collect();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let started = tokio::time::Instant::now();
        let runs: Vec<_> = fleet
            .iter()
            .map(|consumer| {
                let (consumer, mut stopped) = (consumer.clone(), stopped.clone());
                tokio::spawn(async move {
                    let shutdown = async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    };
                    consumer.run(shutdown, |_| {}).await
                })
            })
            .collect();
        loop {
            let owned: Vec<usize> = fleet.iter().map(|c| c.owned().len()).collect();
            let everything: BTreeSet<String> = fleet.iter().flat_map(|c| c.owned()).collect();
            if everything.len() == 32 && owned.iter().all(|&n| n == 8) {
                break;
            }
            assert!(
                started.elapsed() < BalancerOptions::default().interval * 9 / 10,
                "not even by quick cycles: {owned:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stop.send(true).unwrap();
        for run in runs {
            run.await.unwrap().unwrap();
        }
    }

    /// A store whose listings are always empty, as taken before anybody claimed, counting the
    /// claims sent through it.
    struct ListedBeforeAnyClaim {
        store: Arc<crate::InMemoryCheckpointStore>,
        claims_sent: std::sync::atomic::AtomicUsize,
    }

    #[async_trait::async_trait]
    impl CheckpointStore for ListedBeforeAnyClaim {
        async fn list_ownership(&self, _: &Scope) -> Result<Vec<Ownership>> {
            Ok(Vec::new())
        }
        async fn claim_ownership(&self, claims: &[Ownership]) -> Result<Vec<Ownership>> {
            self.claims_sent.fetch_add(claims.len(), Ordering::Relaxed);
            self.store.claim_ownership(claims).await
        }
        async fn update_checkpoint(&self, checkpoint: &crate::Checkpoint) -> Result<()> {
            self.store.update_checkpoint(checkpoint).await
        }
        async fn list_checkpoints(&self, scope: &Scope) -> Result<Vec<crate::Checkpoint>> {
            self.store.list_checkpoints(scope).await
        }
    }

    /// A greedy consumer that sees nobody claims every free partition in one cycle, a round
    /// after another; one that loses a free partition to another consumer stops after that round.
    #[tokio::test]
    async fn free_partitions_go_out_a_round_at_a_time_until_one_is_lost() {
        let alone = Arc::new(crate::InMemoryCheckpointStore::new());
        assert_eq!(greedy(&alone, "a", 100).cycle().await.unwrap().len(), 100);

        // x owns 50 of 100; b listed before x claimed, so it plans all 100 in its own order.
        // Its first round of 32 all among the 50 free ones: about 1 in 2,000,000,000.
        let store = Arc::new(crate::InMemoryCheckpointStore::new());
        assert_eq!(greedy(&store, "x", 50).cycle().await.unwrap().len(), 50);
        let late = Arc::new(ListedBeforeAnyClaim {
            store: store.clone(),
            claims_sent: Default::default(),
        });
        let owned = greedy(&late, "b", 100).cycle().await.unwrap();
        assert!(owned.len() < plan::FREE_CLAIMS_PER_ROUND, "{owned:?}");
        assert!(owned.iter().all(|p| p.parse::<usize>().unwrap() >= 50));
        assert_eq!(
            late.claims_sent.load(Ordering::Relaxed),
            plan::FREE_CLAIMS_PER_ROUND
        );
    }
}
