//! The behaviour every [`CheckpointStore`] must have (feature `conformance`), written once over
//! `&dyn CheckpointStore`, as `object_store` exports the suite every one of its stores runs.
//! This crate's blob, table and in-memory stores run it; a `CheckpointStore` for another backend
//! (Cosmos DB, Redis, Postgres) can run the same cases against its own.
//!
//! Ported from Python's `azure-eventhub-checkpointstoreblob-aio` tests and the .NET
//! `BlobCheckpointStore` live tests, plus our own (races, relinquish, bad input).
//!
//! A backend provides a [`Fixture`]: isolated storage (a new container, table, …) and any number
//! of independent clients on it. [`conformance_suite!`](crate::conformance_suite) then expands to
//! one `#[tokio::test]` per case (the test crate needs `tokio` with its `macros` and
//! `rt-multi-thread` features, and `async-trait`):
//!
//! ```no_run
//! // A test module (its cases are `#[tokio::test]`s): `cargo test` runs it, as tests/memory.rs does.
//! use async_trait::async_trait;
//! use eventhub_checkpointstore::conformance::Fixture;
//! use eventhub_checkpointstore::{CheckpointStore, InMemoryCheckpointStore};
//! use std::sync::Arc;
//!
//! /// One shared store per test; every client is a handle on it.
//! struct Memory(InMemoryCheckpointStore);
//!
//! #[async_trait]
//! impl Fixture for Memory {
//!     async fn client(&self) -> Arc<dyn CheckpointStore> {
//!         Arc::new(self.0.clone())
//!     }
//! }
//!
//! eventhub_checkpointstore::conformance_suite!(async { Memory(InMemoryCheckpointStore::new()) });
//! ```
//!
//! Each case panics (fails its test) with a message naming what broke.

use crate::azure_core::http::Etag;
use crate::{Advance, Checkpoint, CheckpointStore, Error, Ownership, Scope};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Isolated storage for one test, and clients on it.
#[async_trait]
pub trait Fixture: Send + Sync {
    /// A new, independent client on this test's storage: two clients behave like two processes.
    async fn client(&self) -> Arc<dyn CheckpointStore>;

    /// The scope the cases use; a backend whose names keep their case runs them with mixed-case
    /// names too.
    fn scope(&self) -> Scope {
        default_scope()
    }

    /// A well-formed version of this backend's records that no record has: what a claim made
    /// with a long-gone etag carries. The default is a blob ETag.
    fn invented_etag(&self) -> Etag {
        Etag::from("\"0x8D000000000BEEF\"")
    }

    /// Etags this backend refuses as invalid input before any request: `*` would make a claim
    /// unconditional (two claimants could both win).
    fn invalid_etags(&self) -> Vec<Etag> {
        vec![Etag::from("*"), Etag::from("\"*\""), Etag::from("")]
    }
}

/// The scope the cases use by default.
fn default_scope() -> Scope {
    Scope::new(
        "conformance.servicebus.windows.net",
        "telemetry",
        "$default",
    )
}

fn ownership(s: &Scope, partition: &str, owner: &str) -> Ownership {
    s.ownership(partition, owner)
}

fn checkpoint(s: &Scope, partition: &str, offset: &str, sequence_number: i64) -> Checkpoint {
    s.checkpoint(partition, Some(offset.to_owned()), Some(sequence_number))
}

fn by_partition(list: Vec<Ownership>) -> BTreeMap<String, Ownership> {
    list.into_iter()
        .map(|o| (o.partition_id.clone(), o))
        .collect()
}

/// Ours: a new backend lists no records.
pub async fn list_is_empty_at_first(fixture: &dyn Fixture) {
    let s = fixture.scope();
    let store = fixture.client().await;
    assert!(store.list_ownership(&s).await.unwrap().is_empty());
    assert!(store.list_checkpoints(&s).await.unwrap().is_empty());
}

/// Python: claim 8 partitions, list returns 8; the input is not mutated.
pub async fn claim_eight_then_list_returns_eight(fixture: &dyn Fixture) {
    let s = fixture.scope();
    let store = fixture.client().await;
    let input: Vec<Ownership> = (0..8)
        .map(|p| ownership(&s, &p.to_string(), "owner-1"))
        .collect();
    let before = input.clone();
    let won = store.claim_ownership(&input).await.unwrap();
    assert_eq!(input, before, "claim_ownership must not modify its input");
    assert_eq!(won.len(), 8);
    let listed = by_partition(store.list_ownership(&s).await.unwrap());
    assert_eq!(listed.len(), 8);
    for (partition, listed) in &listed {
        assert_eq!(
            listed.owner_id.as_deref(),
            Some("owner-1"),
            "partition {partition}"
        );
        assert_eq!(
            listed.scope, s,
            "a listed record carries the scope as given"
        );
        assert!(listed.etag.is_some() && listed.last_modified.is_some());
    }
    let won = by_partition(won);
    assert_eq!(
        won.keys().collect::<Vec<_>>(),
        listed.keys().collect::<Vec<_>>()
    );
    for (partition, claimed) in won {
        assert_eq!(
            claimed.etag, listed[&partition].etag,
            "the claim returns the etag a list shows"
        );
    }
}

/// Python: 8 checkpoint updates, list returns offsets as strings and sequence numbers as i64.
pub async fn eight_checkpoints_then_list(fixture: &dyn Fixture) {
    let s = fixture.scope();
    let store = fixture.client().await;
    for p in 0..8i64 {
        store
            .update_checkpoint(&checkpoint(
                &s,
                &p.to_string(),
                &format!("{}", p * 1000),
                10 + p,
            ))
            .await
            .unwrap();
    }
    let listed: BTreeMap<String, Checkpoint> = store
        .list_checkpoints(&s)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.partition_id.clone(), c))
        .collect();
    assert_eq!(listed.len(), 8);
    for p in 0..8i64 {
        let c = &listed[&p.to_string()];
        assert_eq!(c.offset.as_deref(), Some(format!("{}", p * 1000).as_str()));
        assert_eq!(c.sequence_number, Some(10 + p));
        assert_eq!(c.scope, s, "a listed record carries the scope as given");
    }
}

/// .NET: the first claim succeeds and sets last-modified and etag.
pub async fn first_claim_sets_etag_and_last_modified(fixture: &dyn Fixture) {
    let s = fixture.scope();
    let store = fixture.client().await;
    let started = time::OffsetDateTime::now_utc() - time::Duration::minutes(5);
    let won = store
        .claim_ownership(&[ownership(&s, "0", "owner-1")])
        .await
        .unwrap();
    assert_eq!(won.len(), 1);
    let claimed = &won[0];
    assert_eq!(claimed.owner_id.as_deref(), Some("owner-1"));
    assert!(claimed.etag.is_some());
    let modified = claimed.last_modified.expect("last_modified is set");
    assert!(modified > started, "last_modified {modified} is recent");
}

/// `list_checkpoints_with_times` lists what `list_checkpoints` lists; a time, where the store
/// reports one, is when the checkpoint was last written (this crate's stores report them).
pub async fn checkpoint_times_are_the_writes(fixture: &dyn Fixture) {
    let s = fixture.scope();
    let store = fixture.client().await;
    // The service's clock may differ from this host's: allow minutes, not hours.
    let started = time::OffsetDateTime::now_utc() - time::Duration::minutes(5);
    for p in 0..3 {
        store
            .update_checkpoint(&checkpoint(&s, &p.to_string(), "0", p))
            .await
            .unwrap();
    }
    let mut plain = store.list_checkpoints(&s).await.unwrap();
    let mut timed = store.list_checkpoints_with_times(&s).await.unwrap();
    plain.sort_by(|a, b| a.partition_id.cmp(&b.partition_id));
    timed.sort_by(|a, b| a.0.partition_id.cmp(&b.0.partition_id));
    let listed: Vec<_> = timed.iter().map(|(c, _)| c.clone()).collect();
    assert_eq!(listed, plain, "the same checkpoints as list_checkpoints");
    let first = timed[0].1;
    if let Some(written) = first {
        let ended = time::OffsetDateTime::now_utc() + time::Duration::minutes(5);
        assert!(
            written > started && written < ended,
            "written at {written}, not around now"
        );
        // A later write is reported later (or in the same second: times have whole seconds).
        store
            .update_checkpoint(&checkpoint(&s, "0", "10", 10))
            .await
            .unwrap();
        let again = store.list_checkpoints_with_times(&s).await.unwrap();
        let rewritten = again
            .iter()
            .find(|(c, _)| c.partition_id == "0")
            .and_then(|(_, t)| *t)
            .expect("a store that reports times reports them for every checkpoint");
        assert!(
            rewritten >= written,
            "rewritten at {rewritten}, before {written}"
        );
    }
}

/// .NET: a claim conditioned on a stale or invented etag is not won.
pub async fn claim_with_stale_or_invented_etag_is_not_won(fixture: &dyn Fixture) {
    let s = fixture.scope();
    let store = fixture.client().await;
    let first = store
        .claim_ownership(&[ownership(&s, "0", "owner-1")])
        .await
        .unwrap()
        .remove(0);
    let renewed = store
        .claim_ownership(std::slice::from_ref(&first))
        .await
        .unwrap();
    assert_eq!(renewed.len(), 1);
    // `first` now carries a stale etag.
    let stale = Ownership {
        owner_id: Some("owner-2".into()),
        ..first.clone()
    };
    assert!(store.claim_ownership(&[stale]).await.unwrap().is_empty());
    let invented = Ownership {
        etag: Some(fixture.invented_etag()),
        ..stale_owner2(&first)
    };
    assert!(store.claim_ownership(&[invented]).await.unwrap().is_empty());
    let listed = store.list_ownership(&s).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].owner_id.as_deref(),
        Some("owner-1"),
        "the lost claims changed nothing"
    );
    assert_eq!(listed[0].etag, renewed[0].etag);
}

fn stale_owner2(o: &Ownership) -> Ownership {
    Ownership {
        owner_id: Some("owner-2".into()),
        ..o.clone()
    }
}

/// .NET: a claim with an etag for a partition that has no record is not won (and creates none).
pub async fn claim_with_etag_for_missing_record_is_not_won(fixture: &dyn Fixture) {
    let s = fixture.scope();
    let store = fixture.client().await;
    let claim = Ownership {
        etag: Some(fixture.invented_etag()),
        ..ownership(&s, "5", "owner-1")
    };
    assert!(store.claim_ownership(&[claim]).await.unwrap().is_empty());
    assert!(store.list_ownership(&s).await.unwrap().is_empty());
}

/// .NET: a claim with the current etag is won, and changes the etag.
pub async fn claim_with_current_etag_is_won(fixture: &dyn Fixture) {
    let s = fixture.scope();
    let store = fixture.client().await;
    store
        .claim_ownership(&[ownership(&s, "0", "owner-1")])
        .await
        .unwrap();
    let listed = store.list_ownership(&s).await.unwrap();
    let takeover = Ownership {
        owner_id: Some("owner-2".into()),
        ..listed[0].clone()
    };
    let won = store.claim_ownership(&[takeover]).await.unwrap();
    assert_eq!(won.len(), 1);
    assert_eq!(won[0].owner_id.as_deref(), Some("owner-2"));
    assert_ne!(won[0].etag, listed[0].etag, "a won claim has a new etag");
    let relisted = store.list_ownership(&s).await.unwrap();
    assert_eq!(relisted[0].owner_id.as_deref(), Some("owner-2"));
    assert_eq!(relisted[0].etag, won[0].etag);
}

/// .NET: with valid and stale etags mixed, exactly the valid claims are returned.
pub async fn claim_returns_only_the_won_claims(fixture: &dyn Fixture) {
    let s = fixture.scope();
    let store = fixture.client().await;
    let first: Vec<Ownership> = (0..6)
        .map(|p| ownership(&s, &p.to_string(), "owner-1"))
        .collect();
    let current = by_partition(store.claim_ownership(&first).await.unwrap());
    assert_eq!(current.len(), 6);
    // Partitions 0, 2, 4 move on, so their etags in `current` go stale.
    let moved: Vec<Ownership> = ["0", "2", "4"]
        .iter()
        .map(|p| current[*p].clone())
        .collect();
    assert_eq!(store.claim_ownership(&moved).await.unwrap().len(), 3);
    // One batch: stale etags for 0, 2, 4; current for 1, 3, 5; and a new partition 6.
    let mut batch: Vec<Ownership> = current.values().map(stale_owner2).collect();
    batch.push(ownership(&s, "6", "owner-2"));
    let won = by_partition(store.claim_ownership(&batch).await.unwrap());
    assert_eq!(
        won.keys().map(String::as_str).collect::<Vec<_>>(),
        ["1", "3", "5", "6"]
    );
    assert!(won
        .values()
        .all(|o| o.owner_id.as_deref() == Some("owner-2")));
}

/// .NET: claims and checkpoints of different namespaces, event hubs, consumer groups and
/// partitions do not interfere.
pub async fn scopes_do_not_interfere(fixture: &dyn Fixture) {
    let s = fixture.scope();
    let store = fixture.client().await;
    let scopes = [
        s.clone(),
        Scope {
            fully_qualified_namespace: "other.servicebus.windows.net".into(),
            ..s.clone()
        },
        Scope {
            eventhub_name: "other-hub".into(),
            ..s.clone()
        },
        Scope {
            consumer_group: "other-group".into(),
            ..s.clone()
        },
    ];
    for (i, scope) in scopes.iter().enumerate() {
        let owner = format!("owner-{i}");
        let won = store
            .claim_ownership(&[scope.ownership("0", owner.as_str())])
            .await
            .unwrap();
        assert_eq!(
            won.len(),
            1,
            "a new claim in scope {i} is won whatever the other scopes hold"
        );
        let seq = i64::try_from(i).unwrap();
        store
            .update_checkpoint(&scope.checkpoint("0", Some(format!("off-{i}")), Some(seq)))
            .await
            .unwrap();
    }
    store
        .claim_ownership(&[ownership(&s, "1", "owner-other-partition")])
        .await
        .unwrap();
    for (i, scope) in scopes.iter().enumerate() {
        let owners = by_partition(store.list_ownership(scope).await.unwrap());
        let expected_partitions = if i == 0 { 2 } else { 1 };
        assert_eq!(owners.len(), expected_partitions, "scope {i}");
        assert_eq!(
            owners["0"].owner_id.as_deref(),
            Some(format!("owner-{i}").as_str())
        );
        let checkpoints = store.list_checkpoints(scope).await.unwrap();
        assert_eq!(checkpoints.len(), 1, "scope {i}");
        assert_eq!(
            checkpoints[0].offset.as_deref(),
            Some(format!("off-{i}").as_str())
        );
        assert_eq!(
            checkpoints[0].sequence_number,
            Some(i64::try_from(i).unwrap())
        );
    }
}

/// .NET: the first update creates the record, a second one updates it in place.
pub async fn checkpoint_update_creates_then_replaces(fixture: &dyn Fixture) {
    let s = fixture.scope();
    let store = fixture.client().await;
    store
        .update_checkpoint(&checkpoint(&s, "3", "100", 1))
        .await
        .unwrap();
    let first = store.list_checkpoints(&s).await.unwrap();
    assert_eq!(first.len(), 1);
    store
        .update_checkpoint(&checkpoint(&s, "3", "200", 2))
        .await
        .unwrap();
    let second = store.list_checkpoints(&s).await.unwrap();
    assert_eq!(second.len(), 1, "one record per partition");
    assert_eq!(second[0].offset.as_deref(), Some("200"));
    assert_eq!(second[0].sequence_number, Some(2));
}

/// Checkpoints with only one of the two positions round-trip as given.
pub async fn checkpoint_with_one_position(fixture: &dyn Fixture) {
    let s = fixture.scope();
    let store = fixture.client().await;
    store
        .update_checkpoint(&s.checkpoint("0", Some("geo:7:1:42".into()), None))
        .await
        .unwrap();
    store
        .update_checkpoint(&s.checkpoint("1", None, Some(i64::MAX)))
        .await
        .unwrap();
    store
        .update_checkpoint(&s.checkpoint("2", None, Some(-1)))
        .await
        .unwrap();
    let listed: BTreeMap<String, Checkpoint> = store
        .list_checkpoints(&s)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.partition_id.clone(), c))
        .collect();
    assert_eq!(
        (listed["0"].offset.as_deref(), listed["0"].sequence_number),
        (Some("geo:7:1:42"), None)
    );
    assert_eq!(
        (listed["1"].offset.as_deref(), listed["1"].sequence_number),
        (None, Some(i64::MAX))
    );
    assert_eq!(listed["2"].sequence_number, Some(-1));
}

/// Ours: two clients race for the same new partition 50 times; exactly one wins each time. Then
/// both renew from the same listed etag 50 times; again exactly one wins.
pub async fn racing_clients_never_both_win(fixture: &dyn Fixture) {
    let s = fixture.scope();
    let (a, b) = (fixture.client().await, fixture.client().await);
    for round in 0..50 {
        let partition = round.to_string();
        let (for_a, for_b) = (
            [ownership(&s, &partition, "owner-a")],
            [ownership(&s, &partition, "owner-b")],
        );
        let (won_a, won_b) =
            futures::future::join(a.claim_ownership(&for_a), b.claim_ownership(&for_b)).await;
        let total = won_a.unwrap().len() + won_b.unwrap().len();
        assert_eq!(
            total, 1,
            "round {round}: new-partition claims won by {total} clients"
        );
    }
    let listed = by_partition(a.list_ownership(&s).await.unwrap());
    assert_eq!(listed.len(), 50);
    for (partition, current) in &listed {
        let for_a = [Ownership {
            owner_id: Some("owner-a".into()),
            ..current.clone()
        }];
        let for_b = [Ownership {
            owner_id: Some("owner-b".into()),
            ..current.clone()
        }];
        let (won_a, won_b) =
            futures::future::join(a.claim_ownership(&for_a), b.claim_ownership(&for_b)).await;
        let total = won_a.unwrap().len() + won_b.unwrap().len();
        assert_eq!(
            total, 1,
            "partition {partition}: same-etag claims won by {total} clients"
        );
    }
}

/// Ours: a claim with no owner (or "") relinquishes; the partition lists as unowned, and another
/// owner can take it with the etag the listing shows.
pub async fn relinquish_lists_as_unowned(fixture: &dyn Fixture) {
    let s = fixture.scope();
    let store = fixture.client().await;
    let won = store
        .claim_ownership(&[ownership(&s, "0", "owner-1"), ownership(&s, "1", "owner-1")])
        .await
        .unwrap();
    let released: Vec<Ownership> = won
        .iter()
        .zip([None, Some(String::new())])
        .map(|(o, owner)| Ownership {
            owner_id: owner,
            ..o.clone()
        })
        .collect();
    let released = store.claim_ownership(&released).await.unwrap();
    assert_eq!(released.len(), 2);
    assert!(released.iter().all(|o| o.owner_id.is_none()));
    let listed = by_partition(store.list_ownership(&s).await.unwrap());
    assert!(listed.values().all(|o| o.owner_id.is_none()), "{listed:?}");
    let taken = Ownership {
        owner_id: Some("owner-2".into()),
        ..listed["0"].clone()
    };
    assert_eq!(store.claim_ownership(&[taken]).await.unwrap().len(), 1);
}

/// Ours: many claims in one call are all made (concurrently, with a bound) and all returned, in
/// the order given.
pub async fn many_claims_in_one_call(fixture: &dyn Fixture) {
    let s = fixture.scope();
    let store = fixture.client().await;
    let input: Vec<Ownership> = (0..200)
        .map(|p| ownership(&s, &p.to_string(), "owner-1"))
        .collect();
    let won = store.claim_ownership(&input).await.unwrap();
    assert_eq!(won.len(), 200);
    let order: Vec<&str> = won.iter().map(|o| o.partition_id.as_str()).collect();
    let expected: Vec<String> = (0..200).map(|p| p.to_string()).collect();
    assert_eq!(order, expected, "won claims come back in the order given");
    assert_eq!(store.list_ownership(&s).await.unwrap().len(), 200);
}

/// Ours: `put_checkpoint` creates and replaces a checkpoint like `update_checkpoint`, and the two
/// see each other's writes.
pub async fn put_checkpoint_creates_then_replaces(fixture: &dyn Fixture) {
    let s = fixture.scope();
    let store = fixture.client().await;
    store
        .put_checkpoint(&checkpoint(&s, "0", "100", 1))
        .await
        .unwrap();
    store
        .update_checkpoint(&checkpoint(&s, "0", "200", 2))
        .await
        .unwrap();
    store
        .put_checkpoint(&checkpoint(&s, "1", "300", 3))
        .await
        .unwrap();
    store
        .put_checkpoint(&checkpoint(&s, "1", "400", 4))
        .await
        .unwrap();
    let mut listed = store.list_checkpoints(&s).await.unwrap();
    listed.sort_by(|a, b| a.partition_id.cmp(&b.partition_id));
    assert_eq!(
        listed,
        [checkpoint(&s, "0", "200", 2), checkpoint(&s, "1", "400", 4)]
    );
    assert!(matches!(
        store.put_checkpoint(&s.checkpoint("2", None, None)).await,
        Err(Error::InvalidInput { .. })
    ));
}

/// Ours: losing every claim is a normal, empty result, not an error.
pub async fn losing_every_claim_is_not_an_error(fixture: &dyn Fixture) {
    let s = fixture.scope();
    let store = fixture.client().await;
    let batch: Vec<Ownership> = (0..4)
        .map(|p| ownership(&s, &p.to_string(), "owner-1"))
        .collect();
    assert_eq!(store.claim_ownership(&batch).await.unwrap().len(), 4);
    let again: Vec<Ownership> = (0..4)
        .map(|p| ownership(&s, &p.to_string(), "owner-2"))
        .collect();
    assert_eq!(store.claim_ownership(&again).await.unwrap(), vec![]);
}

/// Ours: `advance_checkpoint` writes only what moves a checkpoint forward, also over another
/// client's write it has not seen; `update_checkpoint` still rewinds.
pub async fn advance_never_moves_a_checkpoint_back(fixture: &dyn Fixture) {
    let s = fixture.scope();
    let a = fixture.client().await;
    let b = fixture.client().await;
    let stored = |store: Arc<dyn CheckpointStore>| {
        let s = s.clone();
        async move {
            store.list_checkpoints(&s).await.unwrap()[0]
                .sequence_number
                .unwrap()
        }
    };
    let advance = |store: &Arc<dyn CheckpointStore>, seq: i64| {
        let checkpoint = checkpoint(&s, "0", &seq.to_string(), seq);
        let store = store.clone();
        async move { store.advance_checkpoint(&checkpoint).await.unwrap() }
    };
    assert_eq!(
        advance(&a, 10).await,
        Advance::Written,
        "a first checkpoint"
    );
    assert_eq!(advance(&a, 20).await, Advance::Written);
    assert_eq!(advance(&a, 20).await, Advance::Unchanged);
    match advance(&a, 15).await {
        Advance::Stale { stored } => assert_eq!(stored.sequence_number, Some(20)),
        other => panic!("an older position was not refused: {other:?}"),
    }
    assert_eq!(stored(a.clone()).await, 20);
    // Another client writes further; `a`, which last saw its own write, must read it, not
    // overwrite it.
    assert_eq!(advance(&b, 40).await, Advance::Written);
    assert!(
        matches!(advance(&a, 30).await, Advance::Stale { .. }),
        "a write over another client's newer checkpoint"
    );
    assert_eq!(stored(a.clone()).await, 40);
    assert_eq!(advance(&a, 41).await, Advance::Written);
    // An operator's rewind is an unconditional update; later advances compare against it.
    a.update_checkpoint(&checkpoint(&s, "0", "5", 5))
        .await
        .unwrap();
    assert_eq!(stored(b.clone()).await, 5);
    assert_eq!(advance(&b, 6).await, Advance::Written);
    assert_eq!(stored(a.clone()).await, 6);
    // Positions without a sequence number cannot be ordered: written.
    let offset_only = s.checkpoint("0", Some("geo:1".into()), None);
    assert_eq!(
        a.advance_checkpoint(&offset_only).await.unwrap(),
        Advance::Written
    );
    assert!(matches!(
        a.advance_checkpoint(&s.checkpoint("0", None, None)).await,
        Err(Error::InvalidInput { .. })
    ));
}

/// Ours: two clients advance one partition's checkpoint at the same time, each with its own
/// positions; the stored checkpoint ends at the newest of all, whatever the interleaving.
pub async fn racing_advances_keep_the_newest(fixture: &dyn Fixture) {
    let s = fixture.scope();
    let clients = [fixture.client().await, fixture.client().await];
    let writers = clients.iter().enumerate().map(|(i, store)| {
        let s = s.clone();
        async move {
            for n in 0..20i64 {
                // Client 0 writes even positions, client 1 odd ones, interleaved.
                let seq = n * 2 + i as i64;
                store
                    .advance_checkpoint(&checkpoint(&s, "7", &seq.to_string(), seq))
                    .await
                    .unwrap();
            }
        }
    });
    futures::future::join_all(writers).await;
    let listed = clients[0].list_checkpoints(&s).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].sequence_number, Some(39));
    assert_eq!(listed[0].offset.as_deref(), Some("39"));
}

/// Ours: bad input is a typed error and nothing is written.
pub async fn invalid_input_is_rejected_before_any_write(fixture: &dyn Fixture) {
    let s = fixture.scope();
    let store = fixture.client().await;
    fn invalid<T>(result: Result<T, Error>) -> bool {
        matches!(result, Err(Error::InvalidInput { .. }))
    }
    let with = |change: fn(&mut Scope)| {
        let mut scope = s.clone();
        change(&mut scope);
        scope
    };
    assert!(invalid(
        store
            .list_ownership(&with(|s| s.fully_qualified_namespace.clear()))
            .await
    ));
    assert!(invalid(
        store
            .list_ownership(&with(|s| s.eventhub_name.clear()))
            .await
    ));
    assert!(invalid(
        store
            .list_checkpoints(&with(|s| s.consumer_group.clear()))
            .await
    ));
    assert!(invalid(
        store
            .update_checkpoint(&s.checkpoint("0", None, None))
            .await
    ));
    assert!(invalid(
        store
            .update_checkpoint(&s.checkpoint("", Some("1".into()), None))
            .await
    ));
    // One bad claim fails the whole batch before any request: the good one is not made either.
    let batch = [ownership(&s, "0", "owner-1"), ownership(&s, "", "owner-1")];
    assert!(invalid(store.claim_ownership(&batch).await));
    // An unconditional claim is never made: `*` (or an empty etag) is refused, not sent.
    for etag in fixture.invalid_etags() {
        let batch = [
            ownership(&s, "0", "owner-1"),
            Ownership {
                etag: Some(etag.clone()),
                ..ownership(&s, "1", "owner-1")
            },
        ];
        assert!(
            invalid(store.claim_ownership(&batch).await),
            "etag {etag:?} was not refused"
        );
    }
    assert!(store.list_ownership(&s).await.unwrap().is_empty());
    assert!(store.list_checkpoints(&s).await.unwrap().is_empty());
}

/// Expands to one `#[tokio::test]` per conformance case, each on a fresh backend from `$make`
/// (an expression evaluating to a future of a type implementing
/// [`conformance::Fixture`](crate::conformance::Fixture)); feature `conformance`. See the
/// [`conformance`](crate::conformance) module.
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
#[macro_export]
macro_rules! conformance_suite {
    ($make:expr) => {
        $crate::conformance_suite!(@cases $make;
            list_is_empty_at_first,
            claim_eight_then_list_returns_eight,
            eight_checkpoints_then_list,
            first_claim_sets_etag_and_last_modified,
            claim_with_stale_or_invented_etag_is_not_won,
            claim_with_etag_for_missing_record_is_not_won,
            claim_with_current_etag_is_won,
            claim_returns_only_the_won_claims,
            scopes_do_not_interfere,
            checkpoint_update_creates_then_replaces,
            checkpoint_with_one_position,
            racing_clients_never_both_win,
            relinquish_lists_as_unowned,
            many_claims_in_one_call,
            losing_every_claim_is_not_an_error,
            put_checkpoint_creates_then_replaces,
            advance_never_moves_a_checkpoint_back,
            racing_advances_keep_the_newest,
            invalid_input_is_rejected_before_any_write,
            checkpoint_times_are_the_writes,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture = $make.await;
                $crate::conformance::$case(&fixture).await;
            }
        )*
    };
}
