//! A record's fields as blob user metadata. Reading is tolerant (keys are case-insensitive on the
//! service; a peer may have written `OwnerId`); writing is strict: metadata travels as HTTP
//! headers, so only values every peer reads back unchanged are written.

use crate::client::headers;
use crate::error::{Error, Result};
use crate::model::Checkpoint;
use crate::shell::record::{self, Fields, StoredFields, OWNER_ID};
use azure_core::http::headers::{HeaderName, Headers};
use std::{borrow::Cow, collections::HashMap};

/// Metadata of a claim; no owner (or `""`) writes `ownerid=""`, which every peer reads as released.
pub(crate) fn for_ownership(owner_id: Option<&str>) -> Result<Fields> {
    checked(record::ownership_fields(owner_id))
}

/// Metadata of a checkpoint: only the fields present, at least one.
pub(crate) fn for_checkpoint(checkpoint: &Checkpoint) -> Result<Fields> {
    checked(record::checkpoint_fields(checkpoint)?)
}

/// `fields`, once every value is one that travels unchanged as a header.
fn checked(fields: Fields) -> Result<Fields> {
    for (key, value) in &fields {
        let field = if *key == OWNER_ID { "owner_id" } else { key };
        check_value(field, value)?;
    }
    Ok(fields)
}

impl StoredFields for HashMap<String, String> {
    fn field(&self, key: &str) -> Option<Cow<'_, str>> {
        self.get(key)
            .or_else(|| {
                self.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(key))
                    .map(|(_, v)| v)
            })
            .map(|v| Cow::Borrowed(v.as_str()))
    }
}

/// A blob's metadata as Get Blob Properties returns it: `x-ms-meta-{key}` response headers (whose
/// names arrive lower-cased, so keys match whatever case a peer wrote them in).
pub(crate) struct MetadataHeaders<'a>(pub(crate) &'a Headers);

impl StoredFields for MetadataHeaders<'_> {
    fn field(&self, key: &str) -> Option<Cow<'_, str>> {
        let name = HeaderName::from(format!("x-ms-meta-{}", key.to_ascii_lowercase()));
        headers::get(self.0, &name).map(Cow::Borrowed)
    }
}

/// Printable ASCII only, and surrounding spaces would be stripped in transit, so the value read
/// back would differ from the one written.
fn check_value(field: &str, value: &str) -> Result<()> {
    if !value.chars().all(|c| c == ' ' || c.is_ascii_graphic()) {
        return Err(Error::invalid_input(format!(
            "{field} must be printable ASCII (it is stored as blob metadata)"
        )));
    }
    if value.trim() != value {
        return Err(Error::invalid_input(format!(
            "{field} must not start or end with a space"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn keys_are_case_insensitive() {
        assert_eq!(
            meta(&[("ownerid", "a")]).field(OWNER_ID).as_deref(),
            Some("a")
        );
        assert_eq!(
            meta(&[("OwnerId", "a")]).field(OWNER_ID).as_deref(),
            Some("a")
        );
        assert_eq!(meta(&[]).field(OWNER_ID), None);
    }

    #[test]
    fn writing_is_strict() {
        assert_eq!(for_ownership(None).unwrap(), [(OWNER_ID, String::new())]);
        assert_eq!(
            for_ownership(Some("")).unwrap(),
            [(OWNER_ID, String::new())]
        );
        assert!(for_ownership(Some("ünï")).is_err());
        assert!(for_ownership(Some("a\r\nx-ms-meta-evil: 1")).is_err());
        let err = for_ownership(Some(" a")).unwrap_err();
        assert!(err.to_string().contains("owner_id"), "{err}");
        let mut cp = Checkpoint::new(("ns", "eh", "cg"), "0", None, None);
        assert!(for_checkpoint(&cp).is_err());
        cp.sequence_number = Some(-1);
        assert_eq!(
            for_checkpoint(&cp).unwrap(),
            [(record::SEQUENCE_NUMBER, "-1".to_owned())]
        );
        cp.offset = Some("12".into());
        assert_eq!(
            for_checkpoint(&cp).unwrap(),
            [
                (record::OFFSET, "12".to_owned()),
                (record::SEQUENCE_NUMBER, "-1".to_owned())
            ]
        );
        cp.offset = Some("1 2\u{7f}".into());
        assert!(for_checkpoint(&cp).is_err());
    }
}
