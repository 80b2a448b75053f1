//! The user metadata that holds a record's state: `ownerid` on ownership blobs, `offset` and
//! `sequencenumber` on checkpoint blobs. Reading is tolerant (keys case-insensitive, malformed
//! values reported as absent); writing is strict (only what every peer can read back).

use crate::error::{Error, Result};
use crate::model::Checkpoint;
use std::collections::HashMap;

pub(crate) const OWNER_ID: &str = "ownerid";
pub(crate) const OFFSET: &str = "offset";
pub(crate) const SEQUENCE_NUMBER: &str = "sequencenumber";

/// Metadata of a claim; no owner (or `""`) writes `ownerid=""`, which every peer reads as released.
pub(crate) fn for_ownership(owner_id: Option<&str>) -> Result<HashMap<String, String>> {
    let owner = owner_id.unwrap_or_default();
    check_value("owner_id", owner)?;
    Ok(HashMap::from([(OWNER_ID.to_owned(), owner.to_owned())]))
}

/// Metadata of a checkpoint: only the fields present, at least one.
pub(crate) fn for_checkpoint(checkpoint: &Checkpoint) -> Result<HashMap<String, String>> {
    let mut metadata = HashMap::with_capacity(2);
    if let Some(offset) = &checkpoint.offset {
        check_value("offset", offset)?;
        metadata.insert(OFFSET.to_owned(), offset.clone());
    }
    if let Some(sequence_number) = checkpoint.sequence_number {
        metadata.insert(SEQUENCE_NUMBER.to_owned(), sequence_number.to_string());
    }
    if metadata.is_empty() {
        return Err(Error::invalid_input(
            "a checkpoint needs an offset or a sequence_number",
        ));
    }
    Ok(metadata)
}

/// The owner recorded on a blob; missing and empty both mean "nobody".
pub(crate) fn owner_id(metadata: &HashMap<String, String>) -> Option<String> {
    get(metadata, OWNER_ID)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// The offset recorded on a blob, as stored (opaque, never parsed).
pub(crate) fn offset(metadata: &HashMap<String, String>) -> Option<String> {
    get(metadata, OFFSET)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// The sequence number recorded on a blob; `Err` holds the malformed value so the caller can say
/// which blob carries it.
pub(crate) fn sequence_number(
    metadata: &HashMap<String, String>,
) -> std::result::Result<Option<i64>, String> {
    match get(metadata, SEQUENCE_NUMBER).map(str::trim) {
        None | Some("") => Ok(None),
        Some(value) => value.parse().map(Some).map_err(|_| value.to_owned()),
    }
}

/// Metadata keys are case-insensitive on the service; a peer may have written `OwnerId`.
fn get<'a>(metadata: &'a HashMap<String, String>, key: &str) -> Option<&'a str> {
    metadata
        .get(key)
        .or_else(|| {
            metadata
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
        })
        .map(String::as_str)
}

/// Metadata travels as HTTP header values: printable ASCII only, and surrounding spaces would be
/// stripped in transit, so the value read back would differ from the one written.
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
    fn reading_is_tolerant() {
        assert_eq!(owner_id(&meta(&[("ownerid", "a")])).as_deref(), Some("a"));
        assert_eq!(owner_id(&meta(&[("OwnerId", "a")])).as_deref(), Some("a"));
        assert_eq!(owner_id(&meta(&[("ownerid", "")])), None);
        assert_eq!(owner_id(&meta(&[])), None);
        assert_eq!(
            sequence_number(&meta(&[("sequencenumber", "42")])),
            Ok(Some(42))
        );
        assert_eq!(sequence_number(&meta(&[("sequencenumber", "")])), Ok(None));
        assert_eq!(sequence_number(&meta(&[])), Ok(None));
        assert_eq!(
            sequence_number(&meta(&[("sequencenumber", "abc")])),
            Err("abc".to_owned())
        );
        assert_eq!(
            sequence_number(&meta(&[("sequencenumber", "99999999999999999999")])),
            Err("99999999999999999999".to_owned())
        );
        assert_eq!(
            offset(&meta(&[("offset", "geo:1:2")])).as_deref(),
            Some("geo:1:2")
        );
    }

    #[test]
    fn writing_is_strict() {
        assert_eq!(for_ownership(None).unwrap()["ownerid"], "");
        assert_eq!(for_ownership(Some("")).unwrap()["ownerid"], "");
        assert!(for_ownership(Some("ünï")).is_err());
        assert!(for_ownership(Some("a\r\nx-ms-meta-evil: 1")).is_err());
        assert!(for_ownership(Some(" a")).is_err());
        let mut cp = Checkpoint::new("ns", "eh", "cg", "0", None, None);
        assert!(for_checkpoint(&cp).is_err());
        cp.sequence_number = Some(-1);
        assert_eq!(
            for_checkpoint(&cp).unwrap(),
            meta(&[("sequencenumber", "-1")])
        );
        cp.offset = Some("12".into());
        assert_eq!(
            for_checkpoint(&cp).unwrap(),
            meta(&[("sequencenumber", "-1"), ("offset", "12")])
        );
    }
}
