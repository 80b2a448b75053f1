//! Every claim a store reports won, as (partition, version it was conditioned on, new version,
//! owner), and the checks of "never two winners": no two wins of a partition conditioned on one
//! version, and (when every claimant's wins are known) one chain of wins per partition from "no
//! record" to the version the container holds.

use crate::hooked::{Hooked, Hooks};
use eventhub_checkpointstore::Ownership;
use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
};

/// One won claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Win {
    pub partition: String,
    /// The etag the claim named (unquoted), or `none` for "no record yet".
    pub conditioned_on: String,
    pub new_etag: String,
    /// `""` for a relinquish.
    pub owner: String,
}

impl Win {
    /// The wins among `won` of the claims `requested` (matched by partition id).
    pub fn of(requested: &[Ownership], won: &[Ownership]) -> Vec<Win> {
        won.iter()
            .map(|win| {
                let asked = requested
                    .iter()
                    .find(|r| r.partition_id == win.partition_id)
                    .expect("a won claim was requested");
                Win {
                    partition: win.partition_id.clone(),
                    conditioned_on: asked
                        .etag
                        .as_ref()
                        .map_or("none".to_owned(), |e| unquoted(e.as_ref())),
                    new_etag: unquoted(
                        win.etag
                            .as_ref()
                            .expect("a won claim has its new etag")
                            .as_ref(),
                    ),
                    owner: win.owner_id.clone().unwrap_or_default(),
                }
            })
            .collect()
    }

    /// One tab-separated line, for a process to report its wins.
    pub fn line(&self) -> String {
        format!(
            "{}\t{}\t{}\t{}",
            self.partition, self.conditioned_on, self.new_etag, self.owner
        )
    }

    pub fn parse(line: &str) -> Option<Win> {
        match line.split('\t').collect::<Vec<_>>().as_slice() {
            [partition, conditioned_on, new_etag, owner] => Some(Win {
                partition: partition.to_string(),
                conditioned_on: conditioned_on.to_string(),
                new_etag: new_etag.to_string(),
                owner: owner.to_string(),
            }),
            _ => None,
        }
    }
}

/// Listings give etags unquoted, response headers quoted.
pub fn unquoted(etag: &str) -> String {
    etag.trim_matches('"').to_owned()
}

/// A store that keeps every claim it reports won (relinquishes included).
pub type Recording<S> = Hooked<S, Wins>;

/// The won claims a [`Recording`] store keeps.
#[derive(Clone, Default)]
pub struct Wins(pub Arc<Mutex<Vec<Win>>>);

impl Wins {
    /// Every win recorded since the last call.
    pub fn take(&self) -> Vec<Win> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Hooks for Wins {
    fn claimed(&self, requested: &[Ownership], won: &[Ownership]) {
        self.0.lock().unwrap().extend(Win::of(requested, won));
    }
}

/// `inner`, recording every claim it reports won.
pub fn recording<S>(inner: S) -> Recording<S> {
    Hooked::new(inner, Wins::default())
}

/// Two wins of one partition conditioned on the same version, described; empty when none.
pub fn double_wins(wins: &[Win]) -> Vec<String> {
    let mut seen: HashMap<(&str, &str), &Win> = HashMap::new();
    let mut doubles = Vec::new();
    for win in wins {
        if let Some(other) = seen.insert((&win.partition, &win.conditioned_on), win) {
            doubles.push(format!(
                "partition {}: two claims won on version {}: {other:?} and {win:?}",
                win.partition, win.conditioned_on
            ));
        }
    }
    doubles
}

/// No two wins of a partition conditioned on the same version; the wins form one chain from
/// "none" to the version listed at the end, held by the chain's last owner. `wins` must be every
/// win of every claimant.
pub fn check_chains(wins: &[Win], last: &HashMap<String, Ownership>) {
    let doubles = double_wins(wins);
    assert!(doubles.is_empty(), "{doubles:#?}");
    let mut by_partition: HashMap<&str, Vec<&Win>> = HashMap::new();
    for win in wins {
        by_partition.entry(&win.partition).or_default().push(win);
    }
    assert!(
        by_partition.keys().all(|p| last.contains_key(*p)),
        "a claim was won on a partition the container does not hold"
    );
    for (partition, listed) in last {
        let wins = by_partition.remove(partition.as_str()).unwrap_or_default();
        let next: HashMap<&str, &Win> = wins
            .iter()
            .map(|w| (w.conditioned_on.as_str(), *w))
            .collect();
        let new_etags: HashSet<&str> = wins.iter().map(|w| w.new_etag.as_str()).collect();
        assert_eq!(
            new_etags.len(),
            wins.len(),
            "partition {partition}: a version reported twice"
        );
        let mut at = "none";
        let mut chain: Vec<&Win> = Vec::new();
        while let Some(win) = next.get(at) {
            chain.push(*win);
            at = &win.new_etag;
        }
        assert_eq!(
            chain.len(),
            wins.len(),
            "partition {partition}: wins do not form one chain from \"none\" (chain {chain:?}, all {wins:?})"
        );
        assert_eq!(
            listed
                .etag
                .as_ref()
                .map(|e| unquoted(e.as_ref()))
                .as_deref(),
            Some(at),
            "partition {partition}: the container holds a version no claimant reported"
        );
        assert_eq!(
            listed.owner_id.as_deref().unwrap_or_default(),
            chain.last().map_or("", |w| w.owner.as_str())
        );
    }
}
