//! The pure part of balancing: what one listing says (who owns what, what is free) and which
//! partitions this consumer should claim next. No I/O, no clock: everything comes in as values,
//! so every rule here is tested without a store.

use super::options::Strategy;
use crate::model::Ownership;
use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    hash::BuildHasher,
    time::Duration,
};
use time::OffsetDateTime;

/// Whether a claim written at `written` still holds at `now`: up to and including `expiration`
/// after it, as Python's load balancer judges it, so a mixed fleet agrees on the second a claim
/// expires.
pub(super) fn unexpired(
    written: OffsetDateTime,
    now: OffsetDateTime,
    expiration: Duration,
) -> bool {
    now - written <= expiration
}

/// `partitions` over `owners`: everyone gets `min`, and `extra` of them one more.
pub(super) struct FairShare {
    pub(super) min: usize,
    pub(super) extra: usize,
}

impl FairShare {
    pub(super) fn new(partitions: usize, owners: usize) -> Self {
        let owners = owners.max(1);
        Self {
            min: partitions / owners,
            extra: partitions % owners,
        }
    }

    pub(super) fn max(&self) -> usize {
        self.min + usize::from(self.extra > 0)
    }
}

/// One listing, read for balancing.
pub(super) struct View {
    /// The record of each of our partitions that has one.
    pub(super) records: HashMap<String, Ownership>,
    /// Records with a live owner, by partition. Our own records count as live even when expired
    /// (after a pause, say): nobody has taken them, and renewing them is conditional anyway.
    pub(super) live: BTreeMap<String, String>,
    /// Partitions without a live owner: never claimed, relinquished, or expired.
    pub(super) free: BTreeSet<String>,
}

impl View {
    pub(super) fn new(
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

    pub(super) fn owned_by<'a>(
        &'a self,
        owner: &'a str,
    ) -> impl Iterator<Item = &'a Ownership> + 'a {
        self.live
            .iter()
            .filter(move |(_, o)| o.as_str() == owner)
            .filter_map(|(p, _)| self.records.get(p))
    }

    /// Partitions per live owner, including `me` (with 0 if it owns nothing yet).
    pub(super) fn owner_counts<'a>(&'a self, me: &'a str) -> HashMap<&'a str, usize> {
        let mut counts = HashMap::from([(me, 0)]);
        for owner in self.live.values() {
            *counts.entry(owner.as_str()).or_default() += 1;
        }
        counts
    }

    /// Whether `partition` has a live owner other than `me`: taking it is a steal.
    pub(super) fn owned_by_other(&self, partition: &str, me: &str) -> bool {
        self.live.get(partition).is_some_and(|owner| owner != me)
    }
}

/// A greedy consumer that planned claims looks again after this fraction of its interval rather
/// than a whole one: what it planned from may have changed under it (others claimed too), and its
/// next listing shows what it still lacks.
pub(super) const QUICK_PAUSE_DIVISOR: u32 = 8;

/// Quick cycles in a row at most; then whole intervals until a cycle plans nothing, so a claim
/// that keeps failing costs one listing an interval, not eight.
pub(super) const QUICK_CYCLES: u32 = 8;

/// Claims of free partitions per round, after the first (see `PartitionBalancer::claim`): the
/// stores' default `claim_concurrency`, so a round is one round trip.
pub(super) const FREE_CLAIMS_PER_ROUND: usize = 32;

/// The partitions `me` should claim this cycle, beyond renewals: up to its fair share of the free
/// ones (all at once with `Greedy`, one with `Balanced`), or, when none is free, steals from
/// owners above their share (`Greedy` below its minimum: its whole deficit, see
/// [`greedy_steals`]; otherwise one, from the busiest), never from an `unmovable` owner. `shuffle`
/// is fixed per consumer, so consumers that start together pick different partitions.
pub(super) fn plan(
    view: &View,
    unmovable: &BTreeSet<String>,
    me: &str,
    partitions: usize,
    strategy: Strategy,
    shuffle: &impl BuildHasher,
) -> Vec<String> {
    let owners = view.owner_counts(me);
    let mine = owners.get(me).copied().unwrap_or(0);
    let share = FairShare::new(partitions, owners.len());
    // Owners other than us already holding a "+1" slot.
    let above_min = owners
        .iter()
        .filter(|(o, n)| **o != me && **n > share.min)
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
    free.sort_by_key(|p| shuffle.hash_one(p));
    let take = match strategy {
        Strategy::Greedy => wanted,
        Strategy::Balanced => 1,
    };
    if !free.is_empty() {
        return free.into_iter().take(take).cloned().collect();
    }

    // Nothing free: steal from owners holding more than their share allows.
    if strategy == Strategy::Greedy && mine < share.min {
        return greedy_steals(view, unmovable, &owners, me, share.min);
    }
    // One partition a cycle, from the busiest (balanced, or a greedy consumer at its minimum
    // taking one of the "+1" slots).
    let limit = if mine < share.min {
        share.min
    } else {
        share.max()
    };
    let victim = owners
        .iter()
        .filter(|(o, n)| **o != me && **n > limit && !unmovable.contains(**o))
        .max_by_key(|(o, n)| (**n, shuffle.hash_one(o)));
    let Some((victim, _)) = victim else {
        return Vec::new();
    };
    view.owned_by(victim)
        .map(|o| &o.partition_id)
        .min_by_key(|p| shuffle.hash_one(p))
        .into_iter()
        .cloned()
        .collect()
}

/// A greedy consumer below its minimum with nothing free takes its whole deficit at once. A
/// fleet started together is where this happens: each consumer claims every free partition in its
/// first cycle (it knows no other yet), so the shares come out uneven, and one steal a cycle
/// would take a consumer a cycle per missing partition.
///
/// Stealing at once invites over-stealing: several consumers short of their share, each taking
/// from the same busy owner, could leave it short in turn. So each one works out, from its
/// listing, the same division of everybody's excess (deficits filled in owner order, the largest
/// excess first, each owner's partitions in id order) and claims only its own part. Consumers
/// whose listings agree claim disjoint parts that sum to the excess; one whose listing is behind
/// claims partitions another took meanwhile, and those claims fail on the version (the store's
/// conditional write) rather than taking more.
fn greedy_steals(
    view: &View,
    unmovable: &BTreeSet<String>,
    owners: &HashMap<&str, usize>,
    me: &str,
    min: usize,
) -> Vec<String> {
    // Deficits are filled one after another from the excess laid end to end: this consumer's
    // part starts after the deficits of the takers before it.
    let mut takers: Vec<(&str, usize)> = owners
        .iter()
        .filter(|(_, n)| **n < min)
        .map(|(o, n)| (*o, min - n))
        .collect();
    takers.sort_unstable();
    let before: usize = takers
        .iter()
        .take_while(|(taker, _)| *taker != me)
        .map(|(_, deficit)| deficit)
        .sum();
    let deficit = min.saturating_sub(owners.get(me).copied().unwrap_or(0));
    let mut victims: Vec<(&str, usize)> = owners
        .iter()
        .filter(|(o, n)| **n > min && !unmovable.contains(**o))
        .map(|(o, n)| (*o, n - min))
        .collect();
    victims.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    victims
        .into_iter()
        .flat_map(|(victim, excess)| {
            let mut theirs: Vec<&String> = view.owned_by(victim).map(|o| &o.partition_id).collect();
            theirs.sort_unstable();
            theirs.into_iter().take(excess)
        })
        .skip(before)
        .take(deficit)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::Scope;
    use std::collections::hash_map::RandomState;

    /// [`super::plan`] with no unmovable owner.
    fn plan(
        view: &View,
        me: &str,
        partitions: usize,
        strategy: Strategy,
        shuffle: &impl BuildHasher,
    ) -> Vec<String> {
        super::plan(view, &BTreeSet::new(), me, partitions, strategy, shuffle)
    }

    #[test]
    fn fair_share_splits_partitions_with_at_most_one_extra() {
        let share = FairShare::new(32, 3);
        assert_eq!((share.min, share.extra, share.max()), (10, 2, 11));
        let share = FairShare::new(32, 4);
        assert_eq!((share.min, share.extra, share.max()), (8, 0, 8));
        let share = FairShare::new(2, 5);
        assert_eq!((share.min, share.extra, share.max()), (0, 2, 1));
    }

    fn record(p: &str, owner: Option<&str>, age_secs: i64, now: OffsetDateTime) -> Ownership {
        Ownership {
            owner_id: owner.map(str::to_owned),
            last_modified: Some(now - time::Duration::seconds(age_secs)),
            ..Scope::new("ns", "eh", "cg").ownership(p, "")
        }
    }

    #[test]
    fn expired_relinquished_and_missing_records_are_free() {
        let now = OffsetDateTime::now_utc();
        let partitions: BTreeSet<String> = ["0", "1", "2", "3"].map(String::from).into();
        let view = View::new(
            vec![
                record("0", Some("a"), 5, now),
                record("1", Some("a"), 31, now),
                record("2", None, 1, now),
                record("3", Some("b"), 60, now), // b's own, expired: still b's to renew
                record("9", Some("a"), 1, now),  // not one of ours
            ],
            &partitions,
            "b",
            now,
            Duration::from_secs(30),
        );
        assert_eq!(view.live.keys().collect::<Vec<_>>(), ["0", "3"]);
        // Exactly the expiration old: still live, as the other languages judge it.
        let at_the_edge = View::new(
            vec![record("1", Some("a"), 30, now)],
            &partitions,
            "b",
            now,
            Duration::from_secs(30),
        );
        assert_eq!(at_the_edge.live.keys().collect::<Vec<_>>(), ["1"]);
        assert_eq!(view.free.iter().collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(view.owner_counts("b"), HashMap::from([("a", 1), ("b", 1)]));
        assert_eq!(
            view.owner_counts("c"),
            HashMap::from([("a", 1), ("b", 1), ("c", 0)])
        );
        assert!(view.owned_by_other("0", "b"));
        assert!(!view.owned_by_other("3", "b"));
        assert!(!view.owned_by_other("1", "b"));
    }

    /// The "+1" slots: 5 partitions over two consumers is 2 each and one extra. At 2 each with
    /// one partition free, each may take it (nobody holds the extra yet, and the claim decides);
    /// once the other holds 3, the extra is taken and a consumer at 2 takes nothing, not even a
    /// free partition; one at 1 is below its share and takes one.
    #[test]
    fn the_extra_slot_goes_to_one_consumer_at_its_minimum() {
        let now = OffsetDateTime::now_utc();
        let partitions: BTreeSet<String> = (0..5).map(|p| p.to_string()).collect();
        let expiration = Duration::from_secs(30);
        let shuffle = RandomState::new();
        let view = |owners: &[&str]| {
            let records = owners
                .iter()
                .enumerate()
                .map(|(p, o)| record(&p.to_string(), Some(o), 1, now))
                .collect();
            View::new(records, &partitions, "me", now, expiration)
        };
        for strategy in [Strategy::Balanced, Strategy::Greedy] {
            let two_each = view(&["a", "a", "me", "me"]);
            assert_eq!(
                plan(&two_each, "me", 5, strategy, &shuffle),
                ["4"],
                "{strategy:?}: the extra, free"
            );
            let a_has_the_extra = view(&["a", "a", "a", "me", "me"]);
            assert!(
                plan(&a_has_the_extra, "me", 5, strategy, &shuffle).is_empty(),
                "{strategy:?}"
            );
            let a_has_the_extra_and_one_is_free = view(&["a", "a", "a", "me"]);
            assert_eq!(
                plan(
                    &a_has_the_extra_and_one_is_free,
                    "me",
                    5,
                    strategy,
                    &shuffle
                ),
                ["4"],
                "{strategy:?}: below its minimum"
            );
            // At its maximum with one free: the free one is for "a", below its minimum.
            let me_at_the_maximum = view(&["me", "me", "me", "a"]);
            assert!(
                plan(&me_at_the_maximum, "me", 5, strategy, &shuffle).is_empty(),
                "{strategy:?}"
            );
        }
        // Greedy takes its deficit, not more: 6 partitions, "a" and "me" one each, 4 free:
        // 2 more for "me" (its share is 3), the others left to "a".
        let partitions: BTreeSet<String> = (0..6).map(|p| p.to_string()).collect();
        let records = vec![
            record("0", Some("a"), 1, now),
            record("1", Some("me"), 1, now),
        ];
        let sparse = View::new(records, &partitions, "me", now, expiration);
        assert_eq!(plan(&sparse, "me", 6, Strategy::Greedy, &shuffle).len(), 2);
        // Nothing free, "a" above the maximum (4 of 8 over three, whose maximum is 3), "b" and
        // "me" at the minimum: "me" takes one from "a" with either strategy.
        let partitions: BTreeSet<String> = (0..8).map(|p| p.to_string()).collect();
        let records = ["a", "a", "a", "a", "b", "b", "me", "me"]
            .iter()
            .enumerate()
            .map(|(p, o)| record(&p.to_string(), Some(o), 1, now))
            .collect();
        let crowded = View::new(records, &partitions, "me", now, expiration);
        for strategy in [Strategy::Balanced, Strategy::Greedy] {
            let taken = plan(&crowded, "me", 8, strategy, &shuffle);
            assert_eq!(taken.len(), 1, "{strategy:?}");
            assert!(
                crowded.owned_by_other(&taken[0], "me"),
                "{strategy:?}: from a"
            );
            assert_eq!(crowded.live[&taken[0]], "a", "{strategy:?}");
        }
        // Below its minimum, balanced, nothing free, the others at their maximum (3 and 3 of 7
        // over three): it takes one from them, which are above the minimum though not above
        // the maximum.
        let partitions: BTreeSet<String> = (0..7).map(|p| p.to_string()).collect();
        let records = ["a", "a", "a", "b", "b", "b", "me"]
            .iter()
            .enumerate()
            .map(|(p, o)| record(&p.to_string(), Some(o), 1, now))
            .collect();
        let short = View::new(records, &partitions, "me", now, expiration);
        let taken = plan(&short, "me", 7, Strategy::Balanced, &shuffle);
        assert_eq!(taken.len(), 1);
        assert!(short.owned_by_other(&taken[0], "me"));
    }

    #[test]
    fn plans_free_partitions_first_then_steals_from_the_busiest() {
        let now = OffsetDateTime::now_utc();
        let partitions: BTreeSet<String> = (0..4).map(|p| p.to_string()).collect();
        let expiration = Duration::from_secs(30);
        let shuffle = RandomState::new();
        // Nobody owns anything: greedy takes its whole share of the free ones, balanced one.
        let empty = View::new(Vec::new(), &partitions, "me", now, expiration);
        assert_eq!(plan(&empty, "me", 4, Strategy::Greedy, &shuffle).len(), 4);
        assert_eq!(plan(&empty, "me", 4, Strategy::Balanced, &shuffle).len(), 1);
        // "a" holds all four: balanced steals one, greedy its share.
        let full = View::new(
            (0..4)
                .map(|p| record(&p.to_string(), Some("a"), 1, now))
                .collect(),
            &partitions,
            "me",
            now,
            expiration,
        );
        for (strategy, steals) in [(Strategy::Balanced, 1), (Strategy::Greedy, 2)] {
            let stolen = plan(&full, "me", 4, strategy, &shuffle);
            assert_eq!(stolen.len(), steals, "{strategy:?}");
            assert!(stolen.iter().all(|p| full.owned_by_other(p, "me")));
        }
        // At its share (2 of 4 beside "a"'s 2): nothing to take.
        let even = View::new(
            (0..4)
                .map(|p| {
                    let owner = if p < 2 { "a" } else { "me" };
                    record(&p.to_string(), Some(owner), 1, now)
                })
                .collect(),
            &partitions,
            "me",
            now,
            expiration,
        );
        assert!(plan(&even, "me", 4, Strategy::Greedy, &shuffle).is_empty());
    }

    /// An unmovable owner (it kept reading what was taken from it) is never stolen from, by
    /// either strategy, even when it is the only one above its share; the others still are.
    #[test]
    fn nothing_is_stolen_from_an_unmovable_owner() {
        let now = OffsetDateTime::now_utc();
        let partitions: BTreeSet<String> = (0..8).map(|p| p.to_string()).collect();
        let shuffle = RandomState::new();
        // "js" holds 5, "py" 3, "me" none: both are above the share of 2 (8 over 3, +2 extra).
        let view = View::new(
            (0..8)
                .map(|p| {
                    let owner = if p < 5 { "js" } else { "py" };
                    record(&p.to_string(), Some(owner), 1, now)
                })
                .collect(),
            &partitions,
            "me",
            now,
            Duration::from_secs(30),
        );
        let js = BTreeSet::from(["js".to_owned()]);
        let both = BTreeSet::from(["js".to_owned(), "py".to_owned()]);
        for strategy in [Strategy::Balanced, Strategy::Greedy] {
            let stolen = super::plan(&view, &js, "me", 8, strategy, &shuffle);
            assert!(!stolen.is_empty(), "{strategy:?}");
            assert!(
                stolen.iter().all(|p| view.live[p] == "py"),
                "{strategy:?}: {stolen:?}"
            );
            assert!(super::plan(&view, &both, "me", 8, strategy, &shuffle).is_empty());
            // Without the mark, the busiest ("js") is stolen from.
            let stolen = plan(&view, "me", 8, strategy, &shuffle);
            assert!(stolen.iter().any(|p| view.live[p] == "js"), "{strategy:?}");
        }
    }

    /// Greedy consumers short of their minimum divide the others' excess the same way from the
    /// same listing: their parts do not overlap and sum to exactly the excess.
    #[test]
    fn greedy_stealers_divide_the_excess_without_overlap() {
        let now = OffsetDateTime::now_utc();
        let partitions: BTreeSet<String> = (0..12).map(|p| p.to_string()).collect();
        // "a" 7, "b" 3, "c" 2, "d" and "e" none yet (they own nothing, so nobody sees them):
        // the share of 12 over a, b, c is 4 each.
        let listed: Vec<Ownership> = (0..12)
            .map(|p| {
                let owner = match p {
                    0..=6 => "a",
                    7..=9 => "b",
                    _ => "c",
                };
                record(&p.to_string(), Some(owner), 1, now)
            })
            .collect();
        let shuffle = RandomState::new();
        let mut taken = Vec::new();
        for me in ["b", "c"] {
            let view = View::new(
                listed.clone(),
                &partitions,
                me,
                now,
                Duration::from_secs(30),
            );
            let stolen = plan(&view, me, 12, Strategy::Greedy, &shuffle);
            assert!(
                stolen.iter().all(|p| view.live[p] == "a"),
                "{me}: {stolen:?}"
            );
            taken.push(stolen);
        }
        assert_eq!((taken[0].len(), taken[1].len()), (1, 2));
        let all: BTreeSet<&String> = taken.iter().flatten().collect();
        assert_eq!(all.len(), 3, "overlapping parts: {taken:?}");
    }

    /// A shuffle (`plan`'s order of free partitions) that is the same in every run for a seed.
    struct Seeded(u64);

    impl BuildHasher for Seeded {
        type Hasher = std::hash::DefaultHasher;

        fn build_hasher(&self) -> Self::Hasher {
            // `DefaultHasher::new` starts from the same keys in every process.
            let mut hasher = std::hash::DefaultHasher::new();
            std::hash::Hasher::write_u64(&mut hasher, self.0);
            hasher
        }
    }

    /// A fleet started together, in time, as `run` drives it: each consumer lists at its own
    /// moments, and each of its claims lands some time after its listing (up to `spread` of an
    /// interval), only if the partition is still at the version that listing showed (the store's
    /// conditional write). Free partitions beyond the first round go out a round at a time while
    /// no free claim was lost, as `claim` sends them. A cycle ends when its claims are back (its
    /// last round, if any); whole cycles come 0.9-1.1 intervals after the last whole one ended
    /// (the first within a tenth of one of the others'); between them, a greedy consumer whose
    /// cycle planned claims lists again an eighth of an interval after that cycle ended,
    /// renewing nothing then, at most `QUICK_CYCLES` times in a row. Returns the intervals until
    /// every partition is owned and every consumer holds its share, and the moves between
    /// consumers on the way.
    fn fleet_in_time(
        partitions: usize,
        consumers: usize,
        strategy: Strategy,
        spread: f64,
        seed: u64,
    ) -> (f64, usize) {
        use std::{cmp::Reverse, collections::BinaryHeap};
        // Time in millionths of an interval.
        const U: f64 = 1_000_000.0;
        #[derive(PartialEq, Eq, PartialOrd, Ord)]
        enum Event {
            List {
                c: usize,
                renew: bool,
                quick_left: u32,
            },
            Claim {
                c: usize,
                p: usize,
                seen: Option<(usize, u64)>,
            },
            /// A cycle's claims are back: a quick cycle an eighth of an interval later, or the
            /// next whole one, as `run` decides.
            Settled {
                c: usize,
                whole: bool,
                planned: bool,
                quick_left: u32,
            },
            /// After a round of free claims (`sent`): the next round, if none was lost; else
            /// the cycle's end (`whole`, `quick_left` as for `Settled`).
            Round {
                c: usize,
                whole: bool,
                quick_left: u32,
                sent: Vec<usize>,
                rest: Vec<(usize, Option<(usize, u64)>)>,
            },
        }
        // A round of free claims after the first lands within this.
        let round_time = spread / 4.0;
        let mut rng = seed.max(1);
        let mut between = |lo: f64, hi: f64| {
            // xorshift64: reproducible timing per seed.
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            ((lo + (hi - lo) * (rng >> 11) as f64 / (1u64 << 53) as f64) * U) as u64
        };
        let now = OffsetDateTime::now_utc();
        let ids: BTreeSet<String> = (0..partitions).map(|p| p.to_string()).collect();
        let names: Vec<String> = (0..consumers).map(|c| format!("c{c}")).collect();
        // Each consumer's shuffle, seeded too (`run` gives each a random one).
        let shuffles: Vec<Seeded> = (0..consumers)
            .map(|c| Seeded(seed.wrapping_mul(1_000_003) + c as u64))
            .collect();
        let share = FairShare::new(partitions, consumers);
        // Each partition's owner and version; owned partitions per consumer.
        let mut owner: Vec<Option<(usize, u64)>> = vec![None; partitions];
        let mut counts = vec![0usize; consumers];
        // When each consumer's next whole cycle is due: an interval (jittered) after the last
        // whole one ended, whatever quick cycles come between.
        let mut next_whole = vec![0u64; consumers];
        let (mut version, mut moves, mut order) = (0u64, 0, 0u64);
        let mut queue = BinaryHeap::new();
        let mut push = |queue: &mut BinaryHeap<_>, at: u64, event: Event| {
            order += 1;
            queue.push(Reverse((at, order, event)));
        };
        for c in 0..consumers {
            let at = between(0.0, 0.1);
            let list = Event::List {
                c,
                renew: true,
                quick_left: QUICK_CYCLES,
            };
            push(&mut queue, at, list);
        }
        while let Some(Reverse((t, _, event))) = queue.pop() {
            assert!(
                t < 200 * U as u64,
                "{partitions} x {consumers} {strategy:?}: no fair share in 200 intervals"
            );
            match event {
                Event::List {
                    c,
                    renew,
                    quick_left,
                } => {
                    let listed: Vec<Ownership> = owner
                        .iter()
                        .enumerate()
                        .filter_map(|(p, o)| {
                            o.map(|(o, _)| record(&p.to_string(), Some(&names[o]), 1, now))
                        })
                        .collect();
                    let view = View::new(listed, &ids, &names[c], now, Duration::from_secs(600));
                    let planned = plan(&view, &names[c], partitions, strategy, &shuffles[c]);
                    // Steals, and the first round of free partitions, go out with the renewals.
                    let (free, mut claims): (Vec<usize>, Vec<usize>) = planned
                        .iter()
                        .map(|p| p.parse::<usize>().unwrap())
                        .partition(|&p| owner[p].is_none());
                    let first: Vec<usize> =
                        free.iter().copied().take(FREE_CLAIMS_PER_ROUND).collect();
                    claims.extend(&first);
                    let rest: Vec<_> = free[first.len()..].iter().map(|&p| (p, owner[p])).collect();
                    let rounds = !rest.is_empty();
                    if rounds {
                        let round = Event::Round {
                            c,
                            whole: renew,
                            quick_left,
                            sent: first,
                            rest,
                        };
                        push(&mut queue, t + (spread * U) as u64, round);
                    }
                    if renew {
                        claims.extend(
                            view.owned_by(&names[c])
                                .map(|o| o.partition_id.parse::<usize>().unwrap()),
                        );
                    }
                    // The cycle ends when its last claim is back, or after its last round.
                    let mut back = t;
                    for p in claims {
                        let claim = Event::Claim {
                            c,
                            p,
                            seen: owner[p],
                        };
                        let at = t + between(0.01, spread);
                        back = back.max(at);
                        push(&mut queue, at, claim);
                    }
                    if !rounds {
                        let settled = Event::Settled {
                            c,
                            whole: renew,
                            planned: !planned.is_empty(),
                            quick_left,
                        };
                        push(&mut queue, back, settled);
                    }
                }
                Event::Settled {
                    c,
                    whole,
                    planned,
                    quick_left,
                } => {
                    if whole {
                        next_whole[c] = t + between(0.9, 1.1);
                    }
                    let quick_at = t + between(0.125, 0.125);
                    let (at, renew, quick_left) = if !planned {
                        (next_whole[c], true, QUICK_CYCLES)
                    } else if strategy == Strategy::Greedy
                        && quick_left > 0
                        && quick_at < next_whole[c]
                    {
                        (quick_at, false, quick_left - 1)
                    } else {
                        (next_whole[c], true, quick_left)
                    };
                    let list = Event::List {
                        c,
                        renew,
                        quick_left,
                    };
                    push(&mut queue, at, list);
                }
                Event::Round {
                    c,
                    whole,
                    quick_left,
                    sent,
                    mut rest,
                } => {
                    let settled = Event::Settled {
                        c,
                        whole,
                        planned: true,
                        quick_left,
                    };
                    if sent.iter().any(|&p| owner[p].is_none_or(|(o, _)| o != c)) {
                        push(&mut queue, t, settled);
                        continue;
                    }
                    let round: Vec<_> = rest
                        .drain(..rest.len().min(FREE_CLAIMS_PER_ROUND))
                        .collect();
                    for &(p, seen) in &round {
                        push(
                            &mut queue,
                            t + between(0.01, round_time),
                            Event::Claim { c, p, seen },
                        );
                    }
                    let next = if rest.is_empty() {
                        settled
                    } else {
                        let sent = round.iter().map(|&(p, _)| p).collect();
                        Event::Round {
                            c,
                            whole,
                            quick_left,
                            sent,
                            rest,
                        }
                    };
                    push(&mut queue, t + (round_time * U) as u64, next);
                }
                Event::Claim { c, p, seen } => {
                    if owner[p] != seen {
                        continue;
                    }
                    version += 1;
                    if let Some((before, _)) = seen {
                        counts[before] -= 1;
                        moves += usize::from(before != c);
                    }
                    counts[c] += 1;
                    owner[p] = Some((c, version));
                    if owner.iter().all(Option::is_some)
                        && counts.iter().all(|&n| n >= share.min && n <= share.max())
                    {
                        return (t as f64 / U, moves);
                    }
                }
            }
        }
        unreachable!("consumers list forever")
    }

    /// Greedy evens out a fleet started together within three intervals, up to 1,024 partitions
    /// over 64 consumers, whether claims land at once or over a third of an interval (stealing
    /// each consumer's deficit at once, and looking again soon after a cycle that claimed), with
    /// few moves (free partitions claimed a round at a time until one is lost: each consumer
    /// claiming all 1,024 at first took over 700 moves to even out);
    /// balanced, one partition a cycle, within about a cycle per partition of the share.
    ///
    /// Timing and shuffles are seeded, so each case is the same in every run. Over 400 seeds at
    /// 1,024 x 64: claims landing within 0.05 of an interval, median 0.67 intervals, slowest
    /// 0.99; within 0.15, median 1.46, slowest 1.86; within 0.3, median 2.12, 399 within 3, the
    /// slowest 3.18 (its last steal lost twice: to another stealer, then to the owner's renewal
    /// landing between the stealer's listing and its claim).
    #[test]
    fn a_fleet_started_together_reaches_its_share() {
        for (partitions, consumers) in [(32, 4), (256, 16), (1024, 64)] {
            for spread in [0.05, 0.3] {
                for seed in [1, 2] {
                    let (intervals, moves) =
                        fleet_in_time(partitions, consumers, Strategy::Greedy, spread, seed * 7919);
                    assert!(
                        intervals <= 3.0 && moves <= partitions / 2 + 32,
                        "{partitions} x {consumers} greedy, spread {spread}: {intervals:.1} intervals, {moves} moves"
                    );
                }
            }
            // One claim a cycle, some of them lost to a race for the same free partition.
            let (intervals, moves) =
                fleet_in_time(partitions, consumers, Strategy::Balanced, 0.3, 1);
            assert!(
                intervals <= (2 * partitions / consumers + 4) as f64 && moves <= partitions,
                "{partitions} x {consumers} balanced: {intervals:.1} intervals, {moves} moves"
            );
        }
    }
}
