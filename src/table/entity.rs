//! Entities as the Table service sends and takes them (JSON, `odata=minimalmetadata`): the
//! properties `ownerid`, `offset` and `sequencenumber`, all strings as the Python table store
//! writes them. Reading is tolerant: a peer's number-typed value is read too, and a malformed one
//! is reported as absent with a warning, never a failed listing.

use crate::error::{Error, Result};
use crate::model::Checkpoint;
use crate::shell::record::{self, StoredFields};
use azure_core::{http::Etag, time::OffsetDateTime};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::borrow::Cow;
use time::format_description::well_known::Rfc3339;

/// One page of a query.
#[derive(Deserialize)]
pub(crate) struct Page {
    pub(crate) value: Vec<Entity>,
}

/// One entity: its key, version and the three properties a record reads. Everything else an
/// entity carries (`PartitionKey`, type annotations, a peer's extra properties) is skipped as it
/// is parsed, never built.
#[derive(Deserialize)]
pub(crate) struct Entity {
    #[serde(rename = "RowKey")]
    pub(crate) row_key: String,
    #[serde(rename = "Timestamp")]
    timestamp: Option<String>,
    #[serde(rename = "odata.etag")]
    etag: Option<String>,
    #[serde(default)]
    ownerid: Text,
    #[serde(default)]
    offset: Text,
    #[serde(default)]
    sequencenumber: Text,
}

/// A property read as text: a string as it is, a number (as a peer may have written it) in
/// decimal; anything else (null, a boolean, an object) as absent.
#[derive(Default)]
struct Text(Option<String>);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Text;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<Text, E> {
                Ok(Text(Some(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> std::result::Result<Text, E> {
                Ok(Text(Some(v)))
            }
            fn visit_i64<E>(self, v: i64) -> std::result::Result<Text, E> {
                Ok(Text(Some(v.to_string())))
            }
            fn visit_u64<E>(self, v: u64) -> std::result::Result<Text, E> {
                Ok(Text(Some(v.to_string())))
            }
            fn visit_f64<E>(self, v: f64) -> std::result::Result<Text, E> {
                Ok(Text(Some(v.to_string())))
            }
            fn visit_bool<E>(self, _: bool) -> std::result::Result<Text, E> {
                Ok(Text(None))
            }
            fn visit_unit<E>(self) -> std::result::Result<Text, E> {
                Ok(Text(None))
            }
            fn visit_none<E>(self) -> std::result::Result<Text, E> {
                Ok(Text(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Text, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Text, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Text(None))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl Entity {
    pub(crate) fn etag(&self) -> Option<Etag> {
        self.etag.clone().map(Etag::from)
    }

    pub(crate) fn timestamp(&self) -> Option<OffsetDateTime> {
        self.timestamp
            .as_deref()
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
    }
}

/// Its ETag and `Timestamp`, parsed when a record keeps them.
impl record::Version for Entity {
    fn etag(&self) -> Option<Etag> {
        Entity::etag(self)
    }

    fn last_modified(&self) -> Option<OffsetDateTime> {
        self.timestamp()
    }
}

/// The three properties, by their names as every table store writes them.
impl StoredFields for Entity {
    fn field(&self, key: &str) -> Option<Cow<'_, str>> {
        let text = match key {
            record::OWNER_ID => &self.ownerid,
            record::OFFSET => &self.offset,
            record::SEQUENCE_NUMBER => &self.sequencenumber,
            _ => return None,
        };
        text.0.as_deref().map(Cow::Borrowed)
    }
}

/// The JSON body of an ownership entity.
pub(crate) fn ownership_body(partition_key: &str, row_key: &str, owner_id: Option<&str>) -> Value {
    let mut body = keys(partition_key, row_key);
    for (key, value) in record::ownership_fields(owner_id) {
        body.insert(key.into(), value.into());
    }
    Value::Object(body)
}

/// The JSON body of a checkpoint entity: only the fields present, at least one.
pub(crate) fn checkpoint_body(
    partition_key: &str,
    row_key: &str,
    checkpoint: &Checkpoint,
) -> Result<Value> {
    let mut body = keys(partition_key, row_key);
    for (key, value) in record::checkpoint_fields(checkpoint)? {
        body.insert(key.into(), value.into());
    }
    Ok(Value::Object(body))
}

fn keys(partition_key: &str, row_key: &str) -> Map<String, Value> {
    let mut body = Map::with_capacity(4);
    body.insert("PartitionKey".into(), partition_key.into());
    body.insert("RowKey".into(), row_key.into());
    body
}

/// Validates an ETag a caller passed in for `If-Match`: it must be an entity version as the
/// Table service gives them (`W/"datetime'…'"` with a readable time). `*` would make the claim
/// unconditional (two claimants could both win), and anything else (a blob's ETag, a typo) can
/// match no version of any entity.
pub(crate) fn for_condition(etag: &Etag) -> Result<Etag> {
    let raw = etag.as_ref().trim();
    let well_formed = raw.starts_with("W/\"datetime'")
        && raw.ends_with("'\"")
        && raw.chars().all(|c| c.is_ascii_graphic())
        && timestamp_of_etag(raw).is_some();
    if well_formed {
        Ok(Etag::from(raw.to_owned()))
    } else {
        Err(Error::invalid_input(
            "etag must be the etag of a listed or claimed ownership: an entity version of the form W/\"datetime'…'\" (not empty, not '*')",
        ))
    }
}

/// The entity's Timestamp as carried in its ETag (`W/"datetime'2026-11-21T10%3A00%3A00.1234567Z'"`),
/// which is what an update response returns instead of the entity.
pub(crate) fn timestamp_of_etag(etag: &str) -> Option<OffsetDateTime> {
    let start = etag.find("datetime'")? + "datetime'".len();
    let end = start + etag[start..].find('\'')?;
    let decoded = percent_encoding::percent_decode_str(&etag[start..end])
        .decode_utf8()
        .ok()?;
    OffsetDateTime::parse(&decoded, &Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_etags_must_be_entity_versions() {
        let good = "W/\"datetime'2026-11-21T10%3A00%3A00.1234567Z'\"";
        assert_eq!(
            for_condition(&Etag::from(format!(" {good} ")))
                .unwrap()
                .as_ref(),
            good
        );
        for bad in [
            "",
            "*",
            "\"*\"",
            "W/\"*\"",
            "\"0x8D000000000BEEF\"",
            "W/\"datetime'not-a-time'\"",
            "W/\"datetime'2026-11-21T10%3A00%3A00Z'",
            "W/\"datetime'2026-11-21T10%3A00%3A00 Z'\"",
        ] {
            assert!(for_condition(&Etag::from(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn entities_are_read_tolerantly() {
        let page: Page = serde_json::from_str(
            r#"{"odata.metadata":"x","value":[
                {"odata.etag":"W/\"datetime'2026-11-21T10%3A00%3A00.1234567Z'\"","PartitionKey":"p","RowKey":"0",
                 "Timestamp":"2026-11-21T10:00:00.1234567Z","ownerid":"a","offset":"12","sequencenumber":"34"},
                {"PartitionKey":"p","RowKey":"1","sequencenumber":35,"sequencenumber@odata.type":"Edm.Int64"},
                {"PartitionKey":"p","RowKey":"2","ownerid":"","sequencenumber":"x"},
                {"PartitionKey":"p","RowKey":"3","ownerid":null,"offset":true,"sequencenumber":{"v":[1,2]},"extra":[{}]}
            ]}"#,
        )
        .unwrap();
        let [a, b, c, d] = &page.value[..] else {
            panic!()
        };
        let scope = &crate::scope::Scope::new("ns", "eh", "cg");
        let read = |e: &Entity| {
            let listed = || record::Listed {
                partition_id: e.row_key.clone(),
                version: e,
                fields: e,
                source: &e.row_key,
            };
            (
                listed().into_ownership(scope),
                listed().into_checkpoint(scope),
            )
        };
        let (owned, checkpoint) = read(a);
        assert_eq!(owned.owner_id.as_deref(), Some("a"));
        assert_eq!(
            (checkpoint.offset.as_deref(), checkpoint.sequence_number),
            (Some("12"), Some(34))
        );
        assert_eq!(a.timestamp(), timestamp_of_etag(a.etag().unwrap().as_ref()));
        assert!(a.timestamp().is_some());
        assert_eq!(
            for_condition(&a.etag().unwrap()).unwrap(),
            a.etag().unwrap()
        );
        let (owned, checkpoint) = read(b);
        assert_eq!(
            (checkpoint.sequence_number, owned.owner_id, owned.etag),
            (Some(35), None, None)
        );
        let (owned, checkpoint) = read(c);
        assert_eq!((owned.owner_id, checkpoint.sequence_number), (None, None));
        // Values that are no text are absent, and the listing goes on.
        let (owned, checkpoint) = read(d);
        assert_eq!(
            (
                owned.owner_id,
                checkpoint.offset,
                checkpoint.sequence_number
            ),
            (None, None, None)
        );
    }

    #[test]
    fn bodies_carry_keys_and_string_properties() {
        let body = checkpoint_body(
            "pk",
            "0",
            &Checkpoint::new(("n", "h", "g"), "0", None, Some(7)),
        )
        .unwrap();
        assert_eq!(
            body,
            serde_json::json!({"PartitionKey": "pk", "RowKey": "0", "sequencenumber": "7"})
        );
        assert_eq!(
            ownership_body("pk", "0", None),
            serde_json::json!({"PartitionKey": "pk", "RowKey": "0", "ownerid": ""})
        );
        assert!(checkpoint_body(
            "pk",
            "0",
            &Checkpoint::new(("n", "h", "g"), "0", None, None)
        )
        .is_err());
    }
}
