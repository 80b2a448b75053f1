//! The partition balancer against Azurite: consumers driven cycle by cycle, so every step can be
//! checked against what the store records.

use eventhub_checkpointstore::Scope;
use eventhub_checkpointstore_testkit as common;

use common::hooked::{Down, Hooked};
use common::wins::{check_chains, recording};
use eventhub_checkpointstore::{
    balancer::{BalancerOptions, PartitionBalancer, Strategy},
    CheckpointStore, Ownership,
};
use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    hash::{BuildHasher, RandomState},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};
use time::OffsetDateTime;

const NS: &str = "balancer.servicebus.windows.net";
const HUB: &str = "hub";
const GROUP: &str = "$Default";
const PARTITIONS: usize = 32;

fn options(strategy: Strategy) -> BalancerOptions {
    // `interval` only matters to `run`; these tests call `cycle` themselves.
    BalancerOptions {
        interval: Duration::from_millis(500),
        expiration: Duration::from_secs(4),
        strategy,
        ..Default::default()
    }
}

fn consumer(store: &Arc<dyn CheckpointStore>, name: &str, strategy: Strategy) -> PartitionBalancer {
    PartitionBalancer::new(
        store.clone(),
        (NS, HUB, GROUP),
        name,
        (0..PARTITIONS).map(|p| p.to_string()),
        options(strategy),
    )
    .unwrap()
}

/// Owner of each partition as the store records it (relinquished ones left out).
async fn recorded(store: &Arc<dyn CheckpointStore>) -> BTreeMap<String, String> {
    store
        .list_ownership(&Scope::new(NS, HUB, GROUP))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|o| Some((o.partition_id, o.owner_id?)))
        .collect()
}

/// Runs one cycle of each consumer in turn. After each cycle, the set the consumer reports must
/// be exactly what the store records for it: it never believes it won what it did not, and
/// every partition has one recorded owner, so no two consumers hold a live claim on one.
/// Returns the number of partitions that changed owner.
async fn round(store: &Arc<dyn CheckpointStore>, fleet: &[&PartitionBalancer]) -> usize {
    let before = recorded(store).await;
    for consumer in fleet {
        let reported = consumer.cycle().await.unwrap();
        let records = recorded(store).await;
        let in_store: BTreeSet<String> = records
            .iter()
            .filter(|(_, owner)| owner.as_str() == consumer.owner_id())
            .map(|(p, _)| p.clone())
            .collect();
        assert_eq!(
            reported,
            in_store,
            "{} reports what the store does not record",
            consumer.owner_id()
        );
        assert_eq!(reported, consumer.owned());
    }
    let after = recorded(store).await;
    after
        .iter()
        .filter(|(p, o)| before.get(*p) != Some(*o))
        .count()
}

fn counts(fleet: &[&PartitionBalancer]) -> Vec<usize> {
    fleet.iter().map(|c| c.owned().len()).collect()
}

/// Fair: everyone within one of each other, and every partition owned.
fn is_fair(fleet: &[&PartitionBalancer]) -> bool {
    let counts = counts(fleet);
    let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
    max - min <= 1 && counts.iter().sum::<usize>() == PARTITIONS
}

/// Cycles until fair and then one more round without any change; returns the rounds it took.
async fn converge(
    store: &Arc<dyn CheckpointStore>,
    fleet: &[&PartitionBalancer],
    bound: usize,
) -> usize {
    for rounds in 1..=bound {
        round(store, fleet).await;
        if is_fair(fleet) {
            assert_eq!(round(store, fleet).await, 0, "a fair split must be stable");
            return rounds;
        }
    }
    panic!("not fair after {bound} rounds: {:?}", counts(fleet));
}

async fn one_four_two(strategy: Strategy, first_bound: usize) {
    let store: Arc<dyn CheckpointStore> = Arc::new(common::fresh_store(None).await);
    let [a, b, c, d] = ["a", "b", "c", "d"].map(|n| consumer(&store, n, strategy));

    let rounds = converge(&store, &[&a], first_bound).await;
    assert_eq!(a.owned().len(), PARTITIONS);
    eprintln!("{strategy:?}: 1 consumer took all partitions in {rounds} rounds");

    // Three more join: each steals one partition per cycle from the busiest owner.
    let rounds = converge(&store, &[&a, &b, &c, &d], 12).await;
    assert_eq!(counts(&[&a, &b, &c, &d]), [8, 8, 8, 8]);
    eprintln!("{strategy:?}: 4 consumers fair in {rounds} rounds");

    // c shuts down cleanly: its partitions are free at once, long before any claim expires.
    let released = c.owned();
    c.relinquish().await.unwrap();
    assert!(c.owned().is_empty());
    let records = recorded(&store).await;
    assert!(
        released.iter().all(|p| !records.contains_key(p)),
        "relinquished: {records:?}"
    );
    // d dies without relinquishing, so d's 8 stay live until they expire. Over three live owners
    // the fair split is 11, 11, 10: a and b take 6 of c's 8 right away (no expiry involved, the
    // claims expire after 4 s), and the last 2 wait, free, until d's claims expire.
    drop(d);
    let mut rounds = 0;
    while counts(&[&a, &b]) != [11, 11] {
        rounds += 1;
        assert!(
            rounds <= 8,
            "not 11/11 after 8 rounds: {:?}",
            counts(&[&a, &b])
        );
        round(&store, &[&a, &b]).await;
    }
    let taken = released
        .iter()
        .filter(|p| a.owned().contains(*p) || b.owned().contains(*p))
        .count();
    assert_eq!(
        taken, 6,
        "a and b grew from 8 to 11 with c's partitions only"
    );
    eprintln!("{strategy:?}: c's relinquished partitions taken over in {rounds} rounds");

    // Then d's claims expire, and a and b share everything.
    // a and b stay alive meanwhile (a consumer that pauses past the expiration loses its claims
    // like a dead one).
    let deadline =
        tokio::time::Instant::now() + options(strategy).expiration + Duration::from_secs(1);
    while tokio::time::Instant::now() < deadline {
        round(&store, &[&a, &b]).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let rounds = converge(&store, &[&a, &b], 6).await;
    assert_eq!(counts(&[&a, &b]), [16, 16]);
    eprintln!("{strategy:?}: after d's claims expired, a and b fair in {rounds} rounds");
    assert!(a.owned().is_disjoint(&b.owned()));
}

#[tokio::test]
async fn greedy_one_then_four_then_two_consumers_share_fairly() {
    one_four_two(Strategy::Greedy, 1).await;
}

#[tokio::test]
async fn balanced_one_then_four_then_two_consumers_share_fairly() {
    one_four_two(Strategy::Balanced, PARTITIONS).await;
}

const MAX_CONCURRENT_ROUNDS: usize = 30;

#[tokio::test]
async fn consumers_cycling_at_the_same_time_never_double_win_and_converge() {
    // Every claim the store reports won, by any consumer: the check below does not rely on what
    // the consumers believe.
    let recording = Arc::new(recording(common::fresh_store(None).await));
    let store: Arc<dyn CheckpointStore> = recording.clone();
    let fleet: Vec<PartitionBalancer> = (0..4)
        .map(|i| consumer(&store, &format!("c{i}"), Strategy::Greedy))
        .collect();
    let mut fair = false;
    let random = RandomState::new();
    // Each stealer needs 7 or 8 steals at one per cycle; lost races (below) add rounds. About 12
    // rounds is typical; the bound leaves room for unlucky orderings.
    for round_no in 0..MAX_CONCURRENT_ROUNDS {
        // In exact lockstep an owner's renewal and a stealer's claim race for the same version,
        // and the owner, whose requests go out first, keeps winning. Real fleets are not in
        // lockstep (`run` jitters its interval so they do not drift into it): start each
        // consumer's cycle 0-50 ms apart, at random each round.
        let reports = futures::future::join_all(fleet.iter().enumerate().map(|(i, c)| {
            let jitter = random.hash_one((i, round_no)) % 51;
            async move {
                tokio::time::sleep(Duration::from_millis(jitter)).await;
                c.cycle().await
            }
        }))
        .await;
        // Concurrent cycles: reports may lag the store, but no partition is reported won by two
        // consumers whose reports both still match the store.
        let records = recorded(&store).await;
        let mut current: BTreeMap<&str, &str> = BTreeMap::new();
        for (consumer, report) in fleet.iter().zip(&reports) {
            for p in report.as_ref().unwrap() {
                if records.get(p).map(String::as_str) == Some(consumer.owner_id()) {
                    assert!(
                        current.insert(p, consumer.owner_id()).is_none(),
                        "double owner of {p}"
                    );
                }
            }
        }
        let refs: Vec<&PartitionBalancer> = fleet.iter().collect();
        eprintln!("concurrent round: {:?}", counts(&refs));
        if is_fair(&refs) {
            fair = true;
            break;
        }
    }
    assert!(
        fair,
        "not fair after {MAX_CONCURRENT_ROUNDS} concurrent rounds"
    );
    let refs: Vec<&PartitionBalancer> = fleet.iter().collect();
    converge(&store, &refs, 3).await;
    let mut all = BTreeSet::new();
    for c in &fleet {
        assert!(all.is_disjoint(&c.owned()));
        all.extend(c.owned());
    }
    assert_eq!(all.len(), PARTITIONS);
    // No version of any partition was won twice, and the wins chain up to what the store holds.
    let last: HashMap<String, Ownership> = store
        .list_ownership(&Scope::new(NS, HUB, GROUP))
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.partition_id.clone(), o))
        .collect();
    let wins = recording.hooks.take();
    check_chains(&wins, &last);
    assert!(
        wins.len() > PARTITIONS,
        "steals happened: {} wins",
        wins.len()
    );
}

#[tokio::test]
async fn run_cycles_on_its_own_and_relinquishes_on_shutdown() {
    let store: Arc<dyn CheckpointStore> = Arc::new(common::fresh_store(None).await);
    let options = BalancerOptions {
        interval: Duration::from_millis(100),
        expiration: Duration::from_secs(5),
        strategy: Strategy::Greedy,
        ..Default::default()
    };
    let a = PartitionBalancer::new(
        store.clone(),
        (NS, HUB, GROUP),
        "a",
        ["0", "1", "2", "3"],
        options,
    )
    .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let cycles = AtomicUsize::new(0);
    let running = async {
        a.run(async { stopped.await.unwrap() }, |result| {
            assert!(result.is_ok(), "{result:?}");
            cycles.fetch_add(1, Ordering::Relaxed);
        })
        .await
    };
    // Stops once `run` has cycled three times on its own and owns everything; the deadline is
    // only there so a broken `run` fails instead of hanging.
    let stopper = async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while cycles.load(Ordering::Relaxed) < 3 || a.owned().len() < 4 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "run cycled {} times and owns {:?} after 20 s at a 100 ms interval",
                cycles.load(Ordering::Relaxed),
                a.owned()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.send(()).unwrap();
    };
    let (result, ()) = tokio::join!(running, stopper);
    result.unwrap();
    assert!(a.owned().is_empty());
    assert!(recorded(&store).await.is_empty(), "all four relinquished");
}

fn five_minutes_ahead() -> OffsetDateTime {
    OffsetDateTime::now_utc() + time::Duration::minutes(5)
}

fn five_minutes_behind() -> OffsetDateTime {
    OffsetDateTime::now_utc() - time::Duration::minutes(5)
}

/// A balancer over the single partition "0", judging a claim expired after 3 s of silence.
fn single(store: &Arc<dyn CheckpointStore>, name: &str) -> PartitionBalancer {
    let options = BalancerOptions {
        interval: Duration::from_millis(500),
        expiration: Duration::from_secs(3),
        ..Default::default()
    };
    PartitionBalancer::new(store.clone(), (NS, HUB, GROUP), name, ["0"], options).unwrap()
}

/// Claims are judged by the service's clock: a host whose clock runs 5 minutes ahead sees
/// another consumer's fresh claim as fresh, not as 5 minutes old, and takes nothing.
#[tokio::test]
async fn a_host_whose_clock_runs_ahead_takes_no_live_partition() {
    let store: Arc<dyn CheckpointStore> = Arc::new(common::fresh_store(None).await);
    let owner = single(&store, "owner");
    assert_eq!(owner.cycle().await.unwrap().len(), 1);
    let ahead = single(&store, "ahead").with_local_clock(five_minutes_ahead);
    for _ in 0..3 {
        assert!(
            ahead.cycle().await.unwrap().is_empty(),
            "took a partition whose owner renewed it just now"
        );
        assert_eq!(owner.cycle().await.unwrap().len(), 1, "the owner lost it");
    }
    assert_eq!(recorded(&store).await["0"], "owner");
}

/// A host whose clock runs 5 minutes behind sees a dead owner's claim expire after the
/// expiration, not 5 minutes later.
#[tokio::test]
async fn a_host_whose_clock_runs_behind_takes_a_dead_partition_after_expiry() {
    let store: Arc<dyn CheckpointStore> = Arc::new(common::fresh_store(None).await);
    let dead = single(&store, "dead");
    assert_eq!(dead.cycle().await.unwrap().len(), 1);
    let behind = single(&store, "behind").with_local_clock(five_minutes_behind);
    assert!(
        behind.cycle().await.unwrap().is_empty(),
        "took a live partition"
    );
    // `dead` never cycles again: its claim expires 3 s after it was written. The deadline is
    // generous; with the host's own clock it would come 5 minutes later.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while behind.cycle().await.unwrap().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a claim 3 s past its expiry was not taken within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(recorded(&store).await["0"], "behind");
}

/// When the store cannot be reached, a consumer keeps only the claims that have not expired, by
/// the service's clock as last seen: a host running behind drops its expired claim (others may
/// have taken it), one running ahead keeps a claim it renewed a moment ago.
#[tokio::test]
async fn without_the_store_claims_expire_by_the_service_clock() {
    let switch = Arc::new(Hooked::new(common::fresh_store(None).await, Down::new()));
    let store: Arc<dyn CheckpointStore> = switch.clone();
    let behind = PartitionBalancer::new(
        store.clone(),
        (NS, HUB, GROUP),
        "behind",
        ["0"],
        BalancerOptions {
            interval: Duration::from_millis(500),
            expiration: Duration::from_secs(3),
            ..Default::default()
        },
    )
    .unwrap()
    .with_local_clock(five_minutes_behind);
    let ahead = PartitionBalancer::new(
        store.clone(),
        (NS, HUB, GROUP),
        "ahead",
        ["1"], // Long enough for the failing cycle's retries; a host judging by its own clock would
        // still see the claim as 5 minutes old.
        BalancerOptions {
            interval: Duration::from_millis(500),
            expiration: Duration::from_secs(60),
            ..Default::default()
        },
    )
    .unwrap()
    .with_local_clock(five_minutes_ahead);
    assert_eq!(behind.cycle().await.unwrap().len(), 1);
    assert_eq!(ahead.cycle().await.unwrap().len(), 1);

    switch.hooks.set(true);
    assert!(ahead.cycle().await.is_err());
    assert_eq!(
        ahead.owned().len(),
        1,
        "dropped a claim renewed a moment ago"
    );
    // Past the expiration by any clock's reading of the claim's age.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(behind.cycle().await.is_err());
    assert!(
        behind.owned().is_empty(),
        "kept a claim 4 s old with a 3 s expiration"
    );
}

/// The chain check fails on two wins of one version, and on a win the store does not show.
#[test]
fn the_win_checks_can_fail() {
    let win = |p: &str, on: &str, new: &str, owner: &str| common::wins::Win {
        partition: p.into(),
        conditioned_on: on.into(),
        new_etag: new.into(),
        owner: owner.into(),
    };
    let twice = [win("0", "none", "e1", "a"), win("0", "none", "e2", "b")];
    assert_eq!(common::wins::double_wins(&twice).len(), 1);
    let listed = |etag: &str, owner: &str| {
        let mut o = Ownership::new((NS, HUB, GROUP), "0", owner);
        o.etag = Some(etag.into());
        HashMap::from([("0".to_owned(), o)])
    };
    let chain = [win("0", "none", "e1", "a"), win("0", "e1", "e2", "b")];
    check_chains(&chain, &listed("e2", "b"));
    for broken in [
        std::panic::catch_unwind(|| check_chains(&twice, &listed("e2", "b"))),
        std::panic::catch_unwind(|| check_chains(&chain, &listed("e3", "b"))),
        std::panic::catch_unwind(|| check_chains(&chain[1..], &listed("e2", "b"))),
    ] {
        assert!(broken.is_err());
    }
}
