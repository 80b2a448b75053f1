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
}
