//! Entity keys, shared with Python's `azure-eventhub-checkpointstoretable`:
//! `PartitionKey = "{namespace} {eventhub} {consumer_group} Ownership|Checkpoint"` and
//! `RowKey = partition_id`, case kept as given (Table keys are case-sensitive).

use crate::error::{Error, Result};
use crate::scope::Scope;
use crate::shell::record::Record;

/// The Table service's limit on a key, in UTF-16 code units (1 KiB of UTF-16).
const MAX_KEY_UNITS: usize = 512;

/// The PartitionKey of one consumer group's records of one kind.
pub(crate) fn partition_key(scope: &Scope, record: Record) -> Result<String> {
    let Scope {
        fully_qualified_namespace: namespace,
        eventhub_name: eventhub,
        consumer_group,
    } = scope;
    for (field, value) in [
        ("fully_qualified_namespace", namespace),
        ("eventhub_name", eventhub),
        ("consumer_group", consumer_group),
    ] {
        check_key_part(field, value)?;
        // The parts are joined with spaces: a space inside one would let two scopes share a key.
        // Event Hubs names never contain one.
        if value.contains(' ') {
            return Err(Error::invalid_input(format!(
                "{field} must not contain a space (the table store joins the scope with spaces)"
            )));
        }
    }
    let kind = match record {
        Record::Ownership => "Ownership",
        Record::Checkpoint => "Checkpoint",
    };
    let key = format!("{namespace} {eventhub} {consumer_group} {kind}");
    check_length("the PartitionKey", &key)?;
    Ok(key)
}

/// The RowKey of one partition's record.
pub(crate) fn row_key(partition_id: &str) -> Result<&str> {
    check_key_part("partition_id", partition_id)?;
    check_length("partition_id", partition_id)?;
    Ok(partition_id)
}

/// Characters the Table service forbids in keys: `/`, `\`, `#`, `?` and control characters.
fn check_key_part(field: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid_input(format!("{field} must not be empty")));
    }
    if let Some(c) = value
        .chars()
        .find(|c| matches!(c, '/' | '\\' | '#' | '?') || c.is_control())
    {
        return Err(Error::invalid_input(format!(
            "{field} contains {c:?}, which the Table service does not allow in keys (/ \\ # ? and control characters)"
        )));
    }
    Ok(())
}

fn check_length(what: &str, value: &str) -> Result<()> {
    if value.encode_utf16().count() > MAX_KEY_UNITS {
        return Err(Error::invalid_input(format!(
            "{what} exceeds the Table service's 1 KiB key limit"
        )));
    }
    Ok(())
}

/// `value` as an OData string literal: in single quotes, quotes doubled.
pub(crate) fn odata_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_the_python_table_store() {
        assert_eq!(
            partition_key(
                &Scope::new("ns.servicebus.windows.net", "Hub", "$Default"),
                Record::Ownership
            )
            .unwrap(),
            "ns.servicebus.windows.net Hub $Default Ownership"
        );
        assert_eq!(
            partition_key(&Scope::new("ns", "hub", "cg"), Record::Checkpoint).unwrap(),
            "ns hub cg Checkpoint"
        );
        assert_eq!(row_key("0").unwrap(), "0");
    }

    #[test]
    fn forbidden_characters_and_sizes_are_rejected() {
        for bad in ["", "a/b", "a\\b", "a#b", "a?b", "a\u{1}b", "a\u{7f}b"] {
            let err = row_key(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidInput { .. }), "{bad:?}");
        }
        assert!(partition_key(&Scope::new("n s", "h", "g"), Record::Ownership).is_err());
        assert!(row_key(&"x".repeat(MAX_KEY_UNITS)).is_ok());
        assert!(row_key(&"x".repeat(MAX_KEY_UNITS + 1)).is_err());
        assert!(row_key("é'ü").is_ok());
    }

    #[test]
    fn odata_literals_double_quotes() {
        assert_eq!(odata_literal("it's"), "'it''s'");
    }
}
