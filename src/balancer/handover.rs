//! Cooperative handover's bookkeeping (see the [module docs](super)): the partitions this
//! consumer took from live owners and holds back from `ready` until each old owner is seen to
//! have handed it over, and the partitions it lost, whose last positions go out once the
//! application has stopped processing them.

use super::plan::View;
use crate::checkpointer::Checkpointer;
use crate::error::Result;
use crate::sync::lock;
use azure_core::http::Etag;
use std::{
    collections::{BTreeSet, HashMap},
    sync::Mutex,
    time::{Duration, Instant},
};
use time::OffsetDateTime;

/// Versions of one of the giver's other claims, each seen at a different listing after the
/// steal, that prove it has written a stolen partition's last position. Each is a different cycle
/// of the giver, since a cycle renews a claim once (a cycle's renewals go out together, but not
/// at one instant, so a listing may see one cycle's renewals half done: counting versions of one
/// claim, never changes across claims, keeps a cycle from counting twice). The first may come
/// from a cycle already under way when this consumer listed before the steal; the second comes
/// from a cycle that began after that one ended, so its renewal of the stolen partition came
/// after the steal and lost (the steal had changed the version it was conditional on): that
/// cycle found the loss; the giver writes a lost partition's last position before its next
/// renewals, the third.
const GIVER_RENEWALS: u32 = 3;

/// What tells two writes of a record apart.
type Version = (Option<Etag>, Option<OffsetDateTime>);

/// One of the giver's other claims: the version last seen, and how many new versions were seen.
#[derive(Clone)]
struct Watched {
    version: Version,
    renewals: u32,
}

/// A partition taken from a live owner, held until the owner hands it over.
struct Hold {
    giver: String,
    /// The giver's other live claims, by partition.
    watched: HashMap<String, Watched>,
    /// When the hold ends if the giver cannot be watched: it owns nothing else (or nothing
    /// live: its claims expired, so it is gone and writes nothing more).
    fallback: Instant,
}

impl Hold {
    fn ended(&self, now: Instant) -> bool {
        let renewed = self.watched.values().map(|w| w.renewals).max();
        match renewed {
            Some(renewals) => renewals >= GIVER_RENEWALS,
            None => now >= self.fallback,
        }
    }

    /// Takes a new listing's claims of the giver: a claim at a new version counts one renewal
    /// more; claims no longer the giver's are forgotten, new ones start at none.
    fn observe(&mut self, claims: HashMap<String, Version>) {
        self.watched = claims
            .into_iter()
            .map(|(partition, version)| {
                let renewals = match self.watched.get(&partition) {
                    Some(before) if before.version != version => before.renewals + 1,
                    Some(before) => before.renewals,
                    None => 0,
                };
                (partition, Watched { version, renewals })
            })
            .collect();
    }
}

/// The giver's live claims in `view`, but `held`.
fn claims_of(view: &View, giver: &str, held: &str) -> HashMap<String, Version> {
    view.owned_by(giver)
        .filter(|o| o.partition_id != held)
        .map(|o| (o.partition_id.clone(), (o.etag.clone(), o.last_modified)))
        .collect()
}

#[derive(Default)]
pub(super) struct Handover {
    /// Partitions taken from a live owner, by partition.
    held: Mutex<HashMap<String, Hold>>,
    /// Partitions lost at the last cycle, whose last positions go out at the next.
    lost: Mutex<Vec<String>>,
}

impl Handover {
    /// Holds `partitions`, just taken from the live owners `view` (the listing the steals were
    /// planned on) names, until each owner is seen to have handed its partition over, or, for an
    /// owner that cannot be watched, for `fallback`.
    pub(super) fn hold(
        &self,
        partitions: impl IntoIterator<Item = String>,
        view: &View,
        fallback: Duration,
    ) {
        if fallback.is_zero() {
            return;
        }
        // Validated: at most 100.5 days, far from `Instant`'s limits.
        let fallback = Instant::now() + fallback;
        let mut held = lock(&self.held);
        for partition in partitions {
            let Some(giver) = view.live.get(&partition) else {
                continue;
            };
            let mut hold = Hold {
                giver: giver.clone(),
                watched: HashMap::new(),
                fallback,
            };
            hold.observe(claims_of(view, giver, &partition));
            held.insert(partition, hold);
        }
    }

    /// Reads a new listing for evidence: the giver's claims renewed since the last listing.
    pub(super) fn observe(&self, view: &View) {
        for (partition, hold) in lock(&self.held).iter_mut() {
            hold.observe(claims_of(view, &hold.giver, partition));
        }
    }

    /// Whether a partition is still held.
    pub(super) fn holding(&self) -> bool {
        let now = Instant::now();
        lock(&self.held).values().any(|h| !h.ended(now))
    }

    /// `owned` without the partitions still held; forgets holds that ended or whose partition
    /// is no longer owned.
    pub(super) fn ready(&self, owned: BTreeSet<String>) -> BTreeSet<String> {
        let mut held = lock(&self.held);
        let now = Instant::now();
        held.retain(|p, hold| owned.contains(p) && !hold.ended(now));
        owned
            .into_iter()
            .filter(|p| !held.contains_key(p))
            .collect()
    }

    /// Whether `partition` is held still (its hold has not ended).
    pub(super) fn holds(&self, partition: &str) -> bool {
        lock(&self.held)
            .get(partition)
            .is_some_and(|hold| !hold.ended(Instant::now()))
    }

    /// Forgets every hold: the consumer gives everything up.
    pub(super) fn release_all(&self) {
        lock(&self.held).clear();
    }

    /// Forgets `partition`'s hold: the consumer gives it up.
    pub(super) fn release(&self, partition: &str) {
        lock(&self.held).remove(partition);
    }

    /// Notes partitions found taken, whose last positions go out at the next cycle.
    pub(super) fn lost(&self, partitions: impl IntoIterator<Item = String>) {
        lock(&self.lost).extend(partitions);
    }

    /// Whether partitions found taken still wait for their last positions.
    pub(super) fn any_lost(&self) -> bool {
        !lock(&self.lost).is_empty()
    }

    /// The partitions found taken since the last call.
    pub(super) fn take_lost(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.lost))
    }
}

/// Writes `checkpointer`'s pending position of each of `partitions`, which `owner` gives up,
/// logging each failure; the first failure is the error.
pub(super) async fn write_last<'a>(
    checkpointer: &Checkpointer,
    owner: &str,
    partitions: impl Iterator<Item = &'a str>,
) -> Result<()> {
    let mut first_error = Ok(());
    for partition in partitions {
        if let Err(err) = checkpointer.flush(partition).await {
            tracing::warn!(owner_id = %owner, partition, error = %err, "could not write the last checkpoint of a partition this consumer gives up");
            if first_error.is_ok() {
                first_error = Err(err);
            }
        }
    }
    first_error
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Ownership;
    use crate::scope::Scope;

    const EXPIRATION: Duration = Duration::from_secs(30);

    /// A listing by the taker `t` at service time `now`: each record is (partition, owner,
    /// etag, age in seconds).
    fn view(now: OffsetDateTime, records: &[(&str, &str, &str, i64)]) -> View {
        let partitions: BTreeSet<String> = ["0", "1", "2"].map(String::from).into();
        let listed = records
            .iter()
            .map(|&(p, owner, etag, age)| Ownership {
                owner_id: Some(owner.to_owned()),
                etag: Some(Etag::from(etag)),
                last_modified: Some(now - time::Duration::seconds(age)),
                ..Scope::new("ns", "eh", "cg").ownership(p, "")
            })
            .collect();
        View::new(listed, &partitions, "t", now, EXPIRATION)
    }

    fn ready(handover: &Handover) -> BTreeSet<String> {
        handover.ready(["0".to_owned()].into())
    }

    /// t holds 0, taken from g, which owns 1 and 2 too (at versions b and c); the timer alone
    /// would end the hold at once.
    fn held_from_g(now: OffsetDateTime) -> Handover {
        let handover = Handover::default();
        let planned = view(
            now,
            &[("0", "g", "a", 1), ("1", "g", "b", 1), ("2", "g", "c", 1)],
        );
        handover.hold(["0".to_owned()], &planned, Duration::from_nanos(1));
        std::thread::sleep(Duration::from_millis(1));
        handover
    }

    #[test]
    fn a_hold_ends_at_the_third_new_version_of_a_giver_claim() {
        let now = OffsetDateTime::now_utc();
        let handover = held_from_g(now);
        assert!(ready(&handover).is_empty(), "held");
        assert!(handover.holding());

        // g has not renewed: no evidence, however often t looks, and whatever the timer says.
        let listing = |one: &str, two: &str| {
            view(
                now,
                &[("0", "t", "x", 0), ("1", "g", one, 1), ("2", "g", two, 1)],
            )
        };
        for _ in 0..5 {
            handover.observe(&listing("b", "c"));
        }
        assert!(ready(&handover).is_empty(), "held without evidence");

        // One cycle of g's renewals, seen half done, then done, then not again: one renewal.
        handover.observe(&listing("b1", "c"));
        handover.observe(&listing("b1", "c1"));
        handover.observe(&listing("b1", "c1"));
        assert!(ready(&handover).is_empty(), "one cycle counted twice");
        // The second and third versions of one claim; two renewals between looks count once.
        handover.observe(&listing("b2", "c2"));
        assert!(ready(&handover).is_empty());
        handover.observe(&listing("b4", "c4"));
        assert_eq!(ready(&handover), ["0".to_owned()].into());
        assert!(!handover.holding());
    }

    /// A partition given up forgets its hold: taken again later (free, nobody to wait for), it
    /// is ready at once.
    #[test]
    fn a_partition_given_up_and_taken_again_is_not_held() {
        let now = OffsetDateTime::now_utc();
        for give_up in [
            (|h: &Handover| h.release("0")) as fn(&Handover),
            |h: &Handover| h.release_all(),
        ] {
            let handover = held_from_g(now);
            assert!(handover.holds("0"));
            give_up(&handover);
            assert!(!handover.holds("0"));
            assert!(!handover.holding());
            assert_eq!(ready(&handover), ["0".to_owned()].into());
        }
    }

    #[test]
    fn claims_that_changed_hands_are_no_evidence_and_expiry_ends_a_hold() {
        let now = OffsetDateTime::now_utc();
        let handover = held_from_g(now);
        // Partition 2 went to someone else (a new etag, not g's renewal), three times over.
        for etag in ["d", "e", "f"] {
            handover.observe(&view(
                now,
                &[("0", "t", "x", 0), ("1", "g", "b", 1), ("2", "o", etag, 0)],
            ));
        }
        assert!(
            ready(&handover).is_empty(),
            "another owner's writes counted"
        );
        // g stops renewing; its claim expires by the service's clock: g is gone, the hold ends.
        handover.observe(&view(now, &[("0", "t", "x", 0), ("1", "g", "b", 31)]));
        assert_eq!(ready(&handover), ["0".to_owned()].into());
    }

    #[test]
    fn a_giver_that_owns_nothing_else_is_waited_for_by_the_timer() {
        let now = OffsetDateTime::now_utc();
        let handover = Handover::default();
        let planned = view(now, &[("0", "g", "a", 1)]);
        handover.hold(["0".to_owned()], &planned, Duration::from_secs(3600));
        handover.observe(&view(now, &[("0", "t", "x", 0)]));
        assert!(ready(&handover).is_empty(), "held for the timer");

        let handover = Handover::default();
        handover.hold(["0".to_owned()], &planned, Duration::from_nanos(1));
        std::thread::sleep(Duration::from_millis(1));
        assert_eq!(ready(&handover), ["0".to_owned()].into(), "timer over");
    }

    #[test]
    fn no_hold_when_handover_is_off_or_the_partition_is_no_longer_owned() {
        let now = OffsetDateTime::now_utc();
        let planned = view(now, &[("0", "g", "a", 1), ("1", "g", "b", 1)]);
        let handover = Handover::default();
        handover.hold(["0".to_owned()], &planned, Duration::ZERO);
        assert_eq!(ready(&handover), ["0".to_owned()].into());

        handover.hold(["0".to_owned()], &planned, Duration::from_secs(3600));
        assert!(handover.ready(BTreeSet::new()).is_empty());
        assert!(!handover.holding(), "forgotten once not owned");
    }
}
