//! The records a checkpoint store keeps: who owns a partition, and how far it has been processed.

use crate::scope::Scope;
use azure_core::http::Etag;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Ownership of one partition of one consumer group by one processor.
///
/// To claim a partition, pass the ownership you last listed (with its `etag`) or a new one
/// (`etag: None`, e.g. from [`Scope::ownership`]) to
/// [`CheckpointStore::claim_ownership`](crate::CheckpointStore::claim_ownership); an `owner_id`
/// of `None` or `""` relinquishes it.
///
/// Serialized (serde) flat, with the scope's three fields beside the others, as the Event Hubs
/// SDKs name them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ownership {
    /// The consumer group the partition belongs to.
    #[serde(flatten)]
    pub scope: Scope,
    /// The partition id, e.g. `"0"`.
    pub partition_id: String,
    /// The owning processor; `None` when nobody owns it (never claimed, or relinquished).
    pub owner_id: Option<String>,
    /// The version of the record this ownership was read from or written as. Claims are
    /// conditional on it; `None` means "the record must not exist yet".
    pub etag: Option<Etag>,
    /// When the record was last written, by the store's clock. Balancers use it to expire owners.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_modified: Option<OffsetDateTime>,
}

impl Ownership {
    /// A fresh ownership of `partition_id` for `owner_id`, with no etag (a first claim).
    pub fn new(
        scope: impl Into<Scope>,
        partition_id: impl Into<String>,
        owner_id: impl Into<String>,
    ) -> Self {
        Self {
            scope: scope.into(),
            partition_id: partition_id.into(),
            owner_id: Some(owner_id.into()),
            etag: None,
            last_modified: None,
        }
    }
}

/// How far one partition of one consumer group has been processed.
///
/// Serialized (serde) flat, as [`Ownership`] is: the JSON lines of `eh-checkpoints export`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The consumer group the partition belongs to.
    #[serde(flatten)]
    pub scope: Scope,
    /// The partition id, e.g. `"0"`.
    pub partition_id: String,
    /// The offset of the last processed event: an opaque string (geo-replicated namespaces use
    /// non-numeric offsets), never parsed.
    pub offset: Option<String>,
    /// The sequence number of the last processed event.
    pub sequence_number: Option<i64>,
}

impl Checkpoint {
    /// A checkpoint of `partition_id` at `offset` / `sequence_number`.
    pub fn new(
        scope: impl Into<Scope>,
        partition_id: impl Into<String>,
        offset: Option<String>,
        sequence_number: Option<i64>,
    ) -> Self {
        Self {
            scope: scope.into(),
            partition_id: partition_id.into(),
            offset,
            sequence_number,
        }
    }
}

impl Checkpoint {
    /// How `self`, a stored checkpoint, stands to `new`, one about to be written: only sequence
    /// numbers order checkpoints (an offset is opaque), so without one on either side `new` counts
    /// as newer.
    pub(crate) fn standing_against(&self, new: &Checkpoint) -> Standing {
        if self.sequence_number == new.sequence_number && self.offset == new.offset {
            return Standing::Same;
        }
        match (self.sequence_number, new.sequence_number) {
            (Some(stored), Some(new)) if stored >= new => Standing::AtOrPast,
            _ => Standing::Behind,
        }
    }
}

/// Where a stored checkpoint stands against one about to be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Standing {
    /// The same position: nothing to write.
    Same,
    /// At or past the new one by sequence number: writing would not move it forward.
    AtOrPast,
    /// Behind the new one, or not comparable: the new one may be written.
    Behind,
}

/// What [`CheckpointStore::advance_checkpoint`](crate::CheckpointStore::advance_checkpoint) did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Advance {
    /// Written: the stored checkpoint was older, absent, or had no sequence number to compare.
    Written,
    /// Nothing written: the stored checkpoint is this very position already.
    Unchanged,
    /// Not written: the stored checkpoint is at or past this one by sequence number (another
    /// consumer processed further, or an operator moved it). Writing would move it back.
    Stale {
        /// The checkpoint the store holds.
        stored: Checkpoint,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_serde() {
        let owned = Ownership {
            etag: Some(Etag::from("\"0x8DABC\"")),
            last_modified: Some(
                OffsetDateTime::parse(
                    "2026-11-24T10:00:00.5Z",
                    &time::format_description::well_known::Rfc3339,
                )
                .unwrap(),
            ),
            ..Ownership::new(("ns", "eh", "$Default"), "0", "owner-1")
        };
        let json = serde_json::to_value(&owned).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "fully_qualified_namespace": "ns",
                "eventhub_name": "eh",
                "consumer_group": "$Default",
                "partition_id": "0",
                "owner_id": "owner-1",
                "etag": "\"0x8DABC\"",
                "last_modified": "2026-11-24T10:00:00.5Z",
            })
        );
        assert_eq!(serde_json::from_value::<Ownership>(json).unwrap(), owned);

        let unowned = Ownership {
            owner_id: None,
            ..Ownership::new(("ns", "eh", "$Default"), "1", "")
        };
        let text = serde_json::to_string(&unowned).unwrap();
        assert_eq!(serde_json::from_str::<Ownership>(&text).unwrap(), unowned);

        for checkpoint in [
            Checkpoint::new(("ns", "eh", "cg"), "0", Some("4096".into()), Some(i64::MIN)),
            Checkpoint::new(("ns", "eh", "cg"), "1", None, Some(i64::MAX)),
            Checkpoint::new(("ns", "eh", "cg"), "2", Some("geo:1:2".into()), None),
        ] {
            let text = serde_json::to_string(&checkpoint).unwrap();
            assert_eq!(
                serde_json::from_str::<Checkpoint>(&text).unwrap(),
                checkpoint
            );
        }
        assert!(serde_json::from_str::<Checkpoint>(r#"{"partition_id":"0"}"#).is_err());
    }

    #[test]
    fn only_sequence_numbers_order_checkpoints() {
        let at = |offset: Option<&str>, seq: Option<i64>| {
            Checkpoint::new(("ns", "eh", "cg"), "0", offset.map(str::to_owned), seq)
        };
        let stored = at(Some("100"), Some(10));
        assert_eq!(
            stored.standing_against(&at(Some("100"), Some(10))),
            Standing::Same
        );
        assert_eq!(
            stored.standing_against(&at(Some("90"), Some(9))),
            Standing::AtOrPast
        );
        assert_eq!(
            stored.standing_against(&at(None, Some(10))),
            Standing::AtOrPast
        );
        assert_eq!(
            stored.standing_against(&at(Some("110"), Some(11))),
            Standing::Behind
        );
        // Offsets alone cannot be ordered: the new one may be written.
        assert_eq!(
            stored.standing_against(&at(Some("1"), None)),
            Standing::Behind
        );
        assert_eq!(
            at(Some("geo:1"), None).standing_against(&at(Some("0"), Some(0))),
            Standing::Behind
        );
    }
}
