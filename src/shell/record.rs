//! The fields of a record as every backend stores them, and the one place they are read and
//! written: `ownerid` on ownership records, `offset` and `sequencenumber` on checkpoints, all text
//! (as every Event Hubs SDK writes them). Reading is tolerant: a missing or empty value means none,
//! and a malformed sequence number is reported as none with a warning, never a failed listing.

use crate::error::{Error, Result};
use crate::model::{Checkpoint, Ownership};
use crate::scope::Scope;
use azure_core::{http::Etag, time::OffsetDateTime};
use std::borrow::Cow;

pub(crate) const OWNER_ID: &str = "ownerid";
pub(crate) const OFFSET: &str = "offset";
pub(crate) const SEQUENCE_NUMBER: &str = "sequencenumber";

/// Which of the two records of a partition: the backends keep them apart by name or key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Record {
    Ownership,
    Checkpoint,
}

/// The fields a record is written with: `(key, value)` pairs, only the ones present.
pub(crate) type Fields = Vec<(&'static str, String)>;

/// The fields of a claim; no owner (or `""`) writes `ownerid=""`, which every peer reads as
/// released.
pub(crate) fn ownership_fields(owner_id: Option<&str>) -> Fields {
    vec![(OWNER_ID, owner_id.unwrap_or_default().to_owned())]
}

/// The fields of a checkpoint: only the ones present, at least one.
pub(crate) fn checkpoint_fields(checkpoint: &Checkpoint) -> Result<Fields> {
    let mut fields = Vec::with_capacity(2);
    if let Some(offset) = &checkpoint.offset {
        fields.push((OFFSET, offset.clone()));
    }
    if let Some(sequence_number) = checkpoint.sequence_number {
        fields.push((SEQUENCE_NUMBER, sequence_number.to_string()));
    }
    if fields.is_empty() {
        return Err(Error::invalid_input(
            "a checkpoint needs an offset or a sequence_number",
        ));
    }
    Ok(fields)
}

/// A stored record's fields, however the backend keeps them (blob metadata, entity properties).
pub(crate) trait StoredFields {
    /// The value of `key` as text, if present.
    fn field(&self, key: &str) -> Option<Cow<'_, str>>;
}

/// A listed record's version, read only for the records that keep it (a checkpoint keeps
/// neither, so a checkpoint listing parses no ETag and no date).
pub(crate) trait Version {
    fn etag(&self) -> Option<Etag>;
    fn last_modified(&self) -> Option<OffsetDateTime>;
}

/// A version known already.
pub(crate) struct Known {
    pub(crate) etag: Option<Etag>,
    pub(crate) last_modified: Option<OffsetDateTime>,
}

impl Version for Known {
    fn etag(&self) -> Option<Etag> {
        self.etag.clone()
    }

    fn last_modified(&self) -> Option<OffsetDateTime> {
        self.last_modified
    }
}

/// One record as a backend lists it.
pub(crate) struct Listed<'a> {
    /// The partition id as the backend's names or keys hold it.
    pub(crate) partition_id: String,
    pub(crate) version: &'a dyn Version,
    pub(crate) fields: &'a dyn StoredFields,
    /// Where it came from (a blob name, a row key), for warnings.
    pub(crate) source: &'a str,
}

impl Listed<'_> {
    /// The ownership record it holds; a missing or empty owner means nobody.
    pub(crate) fn into_ownership(self, scope: &Scope) -> Ownership {
        Ownership {
            scope: scope.clone(),
            owner_id: text(self.fields, OWNER_ID),
            etag: self.version.etag(),
            last_modified: self.version.last_modified(),
            partition_id: self.partition_id,
        }
    }

    /// The checkpoint it holds; a sequence number that is not an i64 is reported as none, with a
    /// warning naming the record.
    pub(crate) fn into_checkpoint(self, scope: &Scope) -> Checkpoint {
        let sequence_number = match self.fields.field(SEQUENCE_NUMBER) {
            None => None,
            Some(value) => match value.trim() {
                "" => None,
                trimmed => trimmed.parse().ok().or_else(|| {
                    tracing::warn!(
                        record = %self.source,
                        value = %trimmed,
                        "checkpoint has a sequencenumber that is not an i64; reporting none"
                    );
                    None
                }),
            },
        };
        Checkpoint::new(
            scope.clone(),
            self.partition_id,
            text(self.fields, OFFSET),
            sequence_number,
        )
    }
}

/// A text field; empty means absent.
fn text(fields: &dyn StoredFields, key: &str) -> Option<String> {
    fields
        .field(key)
        .filter(|v| !v.is_empty())
        .map(Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    impl StoredFields for HashMap<&'static str, &'static str> {
        fn field(&self, key: &str) -> Option<Cow<'_, str>> {
            self.get(key).map(|v| Cow::Borrowed(*v))
        }
    }

    #[test]
    fn fields_are_read_tolerantly() {
        let scope = &Scope::new("ns", "eh", "cg");
        let listed = |fields: &'static HashMap<&'static str, &'static str>| Listed {
            partition_id: "0".into(),
            version: &Known {
                etag: None,
                last_modified: None,
            },
            fields,
            source: "test",
        };
        let fields = Box::leak(Box::new(HashMap::from([
            (OWNER_ID, ""),
            (SEQUENCE_NUMBER, " 12 "),
            (OFFSET, "geo:1"),
        ])));
        assert_eq!(listed(fields).into_ownership(scope).owner_id, None);
        let checkpoint = listed(fields).into_checkpoint(scope);
        assert_eq!(
            (checkpoint.offset.as_deref(), checkpoint.sequence_number),
            (Some("geo:1"), Some(12))
        );
        let bad = Box::leak(Box::new(HashMap::from([(SEQUENCE_NUMBER, "1.5")])));
        let checkpoint = listed(bad).into_checkpoint(scope);
        assert_eq!(
            (checkpoint.offset, checkpoint.sequence_number),
            (None, None)
        );
    }

    #[test]
    fn checkpoint_fields_need_a_position() {
        let mut checkpoint = Checkpoint::new(("ns", "eh", "cg"), "0", None, None);
        assert!(checkpoint_fields(&checkpoint).is_err());
        checkpoint.sequence_number = Some(-1);
        assert_eq!(
            checkpoint_fields(&checkpoint).unwrap(),
            [(SEQUENCE_NUMBER, "-1".to_owned())]
        );
        assert_eq!(ownership_fields(None), [(OWNER_ID, String::new())]);
    }
}
