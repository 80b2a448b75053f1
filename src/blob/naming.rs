//! Blob names and listing prefixes, shared byte for byte with the Python, .NET, Java and JS stores:
//! `{namespace}/{eventhub}/{consumer_group}/{ownership|checkpoint}/{partition_id}`, lower-cased whole.

use crate::error::{Error, Result};
pub(crate) use crate::model::Record;

/// Azure's limit on a blob name's length, in characters.
const MAX_BLOB_NAME_CHARS: usize = 1024;

/// The path segment of a record kind.
fn segment(record: Record) -> &'static str {
    match record {
        Record::Ownership => "ownership",
        Record::Checkpoint => "checkpoint",
    }
}

/// The listing prefix of one consumer group's records of one kind, ending with `/` (without it a
/// hierarchical-namespace account also lists the directory entry itself).
pub(crate) fn prefix(
    namespace: &str,
    eventhub: &str,
    consumer_group: &str,
    record: Record,
) -> Result<String> {
    check_segment("fully_qualified_namespace", namespace)?;
    check_segment("eventhub_name", eventhub)?;
    check_segment("consumer_group", consumer_group)?;
    Ok(format!(
        "{namespace}/{eventhub}/{consumer_group}/{}/",
        segment(record)
    )
    .to_lowercase())
}

/// The blob name of one partition's record.
pub(crate) fn blob_name(
    namespace: &str,
    eventhub: &str,
    consumer_group: &str,
    record: Record,
    partition_id: &str,
) -> Result<String> {
    let prefix = prefix(namespace, eventhub, consumer_group, record)?;
    check_segment("partition_id", partition_id)?;
    let name = prefix + &partition_id.to_lowercase();
    if name.chars().count() > MAX_BLOB_NAME_CHARS {
        return Err(Error::invalid_input(format!(
            "the blob name for partition '{partition_id}' would exceed Azure's {MAX_BLOB_NAME_CHARS}-character limit"
        )));
    }
    Ok(name)
}

/// The partition id of a listed blob, or `None` when the blob is not a record of this prefix
/// (a nested name, a directory marker).
pub(crate) fn partition_of<'a>(prefix: &str, blob_name: &'a str) -> Option<&'a str> {
    let rest = blob_name.strip_prefix(prefix)?;
    (!rest.is_empty() && !rest.contains('/')).then_some(rest)
}

/// One path segment of a blob name: `/` would make records of different consumer groups collide,
/// `\` is turned into `/` by the service, and `.`/`..` or a trailing dot are rewritten by URL
/// normalisation, so the blob would not be the one other SDKs read.
fn check_segment(field: &str, value: &str) -> Result<()> {
    let problem = if value.is_empty() {
        "is empty"
    } else if value.contains(['/', '\\']) {
        "contains '/' or '\\'"
    } else if value.chars().any(char::is_control) {
        "contains a control character"
    } else if value.ends_with('.') {
        "ends with '.'"
    } else {
        return Ok(());
    };
    Err(Error::invalid_input(format!("{field} {problem}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lower_cased_whole() {
        assert_eq!(
            blob_name(
                "MyNs.servicebus.windows.net",
                "Telemetry",
                "$Default",
                Record::Ownership,
                "0"
            )
            .unwrap(),
            "myns.servicebus.windows.net/telemetry/$default/ownership/0"
        );
        assert_eq!(
            prefix("NS", "EH", "CG", Record::Checkpoint).unwrap(),
            "ns/eh/cg/checkpoint/"
        );
    }

    #[test]
    fn bad_segments_are_rejected_with_the_field_named() {
        for (ns, eh, cg, p, field) in [
            ("", "eh", "cg", "0", "fully_qualified_namespace is empty"),
            ("ns", "", "cg", "0", "eventhub_name is empty"),
            ("ns", "eh", "", "0", "consumer_group is empty"),
            ("ns", "eh", "cg", "", "partition_id is empty"),
            ("ns", "e/h", "cg", "0", "eventhub_name contains '/'"),
            ("ns", "eh", "c\\g", "0", "consumer_group contains"),
            ("ns", "eh", "cg", "0\n", "control character"),
            ("ns", "eh", "cg", "..", "ends with '.'"),
        ] {
            let err = blob_name(ns, eh, cg, Record::Ownership, p).unwrap_err();
            assert!(err.to_string().contains(field), "{err}");
        }
        let long = "x".repeat(1100);
        assert!(blob_name("ns", "eh", "cg", Record::Ownership, &long)
            .unwrap_err()
            .to_string()
            .contains("1024"));
    }

    #[test]
    fn partition_of_skips_nested_names_and_markers() {
        let p = "ns/eh/cg/ownership/";
        assert_eq!(partition_of(p, "ns/eh/cg/ownership/7"), Some("7"));
        assert_eq!(partition_of(p, "ns/eh/cg/ownership/"), None);
        assert_eq!(partition_of(p, "ns/eh/cg/ownership/7/x"), None);
        assert_eq!(partition_of(p, "ns/eh/cg/checkpoint/7"), None);
    }
}
