//! Blob names and listing prefixes: `{namespace}/{eventhub}/{consumer_group}/{ownership|checkpoint}/{partition_id}`,
//! in one of the ecosystem's two layouts (`docs/wire-format.md`, "Two layouts").

use crate::error::{Error, Result};
use crate::scope::Scope;
pub(crate) use crate::shell::record::Record;

/// How a [`BlobCheckpointStore`](crate::BlobCheckpointStore) names its blobs. The Event Hubs SDKs
/// are split on case, and a store reads and writes only its own layout's records:
///
/// | layout | written by |
/// |---|---|
/// | [`Lowercase`](Self::Lowercase) | Python, .NET, JavaScript, Java (default mode) |
/// | [`Verbatim`](Self::Verbatim) | Go `azeventhubs` `checkpoints.BlobStore`, the official Rust `azure_messaging_eventhubs_checkpointstore_blob` 0.9, Java's legacy mode |
///
/// For `MyNs.servicebus.windows.net`, `Telemetry`, `$Default`, partition `0`:
///
/// ```
/// use eventhub_checkpointstore::{BlobNaming, Scope};
///
/// let scope = Scope::new("MyNs.servicebus.windows.net", "Telemetry", "$Default");
/// assert_eq!(
///     BlobNaming::Lowercase.ownership_blob(&scope, "0")?,
///     "myns.servicebus.windows.net/telemetry/$default/ownership/0"
/// );
/// assert_eq!(
///     BlobNaming::Verbatim.ownership_blob(&scope, "0")?,
///     "MyNs.servicebus.windows.net/Telemetry/$Default/ownership/0"
/// );
/// # Ok::<(), eventhub_checkpointstore::Error>(())
/// ```
///
/// Event Hubs names are case-insensitive, so in `Lowercase` names that differ only by case are one
/// scope (`Telemetry` and `telemetry` share their records); in `Verbatim` they are two, as they
/// are for Go and the official Rust store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BlobNaming {
    /// The whole name lower-cased, as Python does (.NET and JS lower-case the first three
    /// segments; partition ids are digits, so the names agree).
    #[default]
    Lowercase,
    /// Every segment exactly as given, the partition id included.
    Verbatim,
}

impl BlobNaming {
    /// The other layout.
    pub fn other(self) -> Self {
        match self {
            BlobNaming::Lowercase => BlobNaming::Verbatim,
            BlobNaming::Verbatim => BlobNaming::Lowercase,
        }
    }

    /// The name of one partition's ownership blob in this layout; fails on names no layout can
    /// hold (empty, `/`, control characters, a trailing `.`, over 1,024 characters).
    pub fn ownership_blob(self, scope: &Scope, partition_id: &str) -> Result<String> {
        blob_name(self, scope, Record::Ownership, partition_id)
    }

    /// The name of one partition's checkpoint blob in this layout.
    pub fn checkpoint_blob(self, scope: &Scope, partition_id: &str) -> Result<String> {
        blob_name(self, scope, Record::Checkpoint, partition_id)
    }

    fn apply(self, mut text: String) -> String {
        match self {
            // The same result as `to_lowercase` for ASCII, in place: names are built per request.
            BlobNaming::Lowercase if text.is_ascii() => {
                text.make_ascii_lowercase();
                text
            }
            BlobNaming::Lowercase => text.to_lowercase(),
            BlobNaming::Verbatim => text,
        }
    }

    /// A partition id as this layout lists it.
    pub(crate) fn partition_id(self, partition_id: &str) -> String {
        self.apply(partition_id.to_owned())
    }
}

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
pub(crate) fn prefix(naming: BlobNaming, scope: &Scope, record: Record) -> Result<String> {
    check_scope(scope)?;
    Ok(naming.apply(joined(scope, record, "")))
}

/// `{namespace}/{eventhub}/{consumer_group}/{record}/{partition_id}`, in one allocation.
fn joined(scope: &Scope, record: Record, partition_id: &str) -> String {
    let parts = [
        scope.fully_qualified_namespace.as_str(),
        &scope.eventhub_name,
        &scope.consumer_group,
        segment(record),
    ];
    let mut name = String::with_capacity(
        parts.iter().map(|p| p.len() + 1).sum::<usize>() + partition_id.len(),
    );
    for part in parts {
        name.push_str(part);
        name.push('/');
    }
    name.push_str(partition_id);
    name
}

/// The blob name of one partition's record.
pub(crate) fn blob_name(
    naming: BlobNaming,
    scope: &Scope,
    record: Record,
    partition_id: &str,
) -> Result<String> {
    check_scope(scope)?;
    check_segment("partition_id", partition_id)?;
    let name = naming.apply(joined(scope, record, partition_id));
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

fn check_scope(scope: &Scope) -> Result<()> {
    check_segment(
        "fully_qualified_namespace",
        &scope.fully_qualified_namespace,
    )?;
    check_segment("eventhub_name", &scope.eventhub_name)?;
    check_segment("consumer_group", &scope.consumer_group)
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

    fn scope(ns: &str, eh: &str, cg: &str) -> Scope {
        Scope::new(ns, eh, cg)
    }

    #[test]
    fn verbatim_names_keep_every_segment() {
        assert_eq!(
            BlobNaming::Verbatim
                .checkpoint_blob(
                    &Scope::new("MyNs.servicebus.windows.net", "Telemetry", "$Default"),
                    "P0"
                )
                .unwrap(),
            "MyNs.servicebus.windows.net/Telemetry/$Default/checkpoint/P0"
        );
        assert_eq!(
            prefix(
                BlobNaming::Verbatim,
                &scope("NS", "EH", "CG"),
                Record::Ownership
            )
            .unwrap(),
            "NS/EH/CG/ownership/"
        );
        assert_eq!(BlobNaming::Verbatim.other(), BlobNaming::Lowercase);
        assert_eq!(BlobNaming::default(), BlobNaming::Lowercase);
        // The same checks in both layouts.
        assert!(BlobNaming::Verbatim
            .ownership_blob(&scope("ns", "e/h", "cg"), "0")
            .is_err());
    }

    #[test]
    fn names_are_lower_cased_whole() {
        assert_eq!(
            blob_name(
                BlobNaming::Lowercase,
                &scope("MyNs.servicebus.windows.net", "Telemetry", "$Default"),
                Record::Ownership,
                "0"
            )
            .unwrap(),
            "myns.servicebus.windows.net/telemetry/$default/ownership/0"
        );
        assert_eq!(
            prefix(
                BlobNaming::Lowercase,
                &scope("NS", "EH", "CG"),
                Record::Checkpoint
            )
            .unwrap(),
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
            let err = blob_name(
                BlobNaming::Lowercase,
                &scope(ns, eh, cg),
                Record::Ownership,
                p,
            )
            .unwrap_err();
            assert!(err.to_string().contains(field), "{err}");
        }
        let long = "x".repeat(1100);
        assert!(blob_name(
            BlobNaming::Lowercase,
            &scope("ns", "eh", "cg"),
            Record::Ownership,
            &long
        )
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
