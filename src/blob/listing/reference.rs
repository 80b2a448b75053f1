//! The listing parser before the one in `mod.rs`, kept as the reference the property tests compare
//! it with: every element read as an XML event, a map of metadata and an owned blob per blob.

use crate::error::{Error, Result};
use azure_core::{http::Etag, time::OffsetDateTime};
use quick_xml::{
    escape::resolve_predefined_entity,
    events::{BytesRef, BytesStart, Event},
    Reader,
};
use std::collections::HashMap;

/// Metadata the Data Lake (hierarchical namespace) service sets on directory entries.
const DIRECTORY_MARKER: &str = "hdi_isfolder";

/// A blob as a listing reports it. An ETag or date the service wrote in a form we cannot read is
/// reported as absent.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ListedBlob {
    pub(crate) name: String,
    pub(crate) etag: Option<Etag>,
    pub(crate) last_modified: Option<OffsetDateTime>,
    pub(crate) metadata: HashMap<String, String>,
}

impl ListedBlob {
    pub(crate) fn is_directory(&self) -> bool {
        self.metadata.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case(DIRECTORY_MARKER) && v.eq_ignore_ascii_case("true")
        })
    }
}

/// Where the parser is in `EnumerationResults`; only the elements a record needs are told apart.
#[derive(Clone, Copy, PartialEq)]
enum At {
    Root,
    Blobs,
    Blob,
    Properties,
    Metadata,
    /// A value to capture: the text of the current element.
    Value(Field),
    /// Anything else, at any depth below a known element.
    Skipped,
}

#[derive(Clone, Copy, PartialEq)]
enum Field {
    Name,
    Etag,
    LastModified,
    MetadataValue,
    NextMarker,
}

/// Parses one page, calling `on_blob` for each blob in document order; returns the `NextMarker`
/// (`None` when empty or absent: the last page).
pub(crate) fn parse_page(
    xml: &[u8],
    mut on_blob: impl FnMut(ListedBlob),
) -> Result<Option<String>> {
    let mut reader = Reader::from_reader(xml);
    let mut stack: Vec<At> = Vec::with_capacity(8);
    let mut blob = ListedBlob::default();
    let mut name_encoded = false;
    let mut metadata_key = String::new();
    let mut text = String::new();
    let mut next_marker = None;
    let mut seen_root = false;

    loop {
        match reader.read_event().map_err(|e| malformed(&reader, e))? {
            Event::Start(start) => {
                // The document element is taken whatever its name: only its children matter.
                seen_root = true;
                let at = stack
                    .last()
                    .map_or(At::Root, |&parent| child(parent, &start));
                match at {
                    At::Value(Field::Name) => name_encoded = is_encoded(&start, &reader)?,
                    At::Value(Field::MetadataValue) => {
                        metadata_key = decode(start.name().into_inner(), &reader)?;
                    }
                    _ => {}
                }
                text.clear();
                stack.push(at);
            }
            // `<ownerid />`: a metadata value that is empty. Other empty elements carry nothing.
            Event::Empty(start) => {
                seen_root = true;
                if stack.last() == Some(&At::Metadata) {
                    let key = decode(start.name().into_inner(), &reader)?;
                    blob.metadata.insert(key, String::new());
                }
            }
            Event::Text(t) if in_value(&stack) => {
                text.push_str(&t.decode().map_err(|e| malformed(&reader, e))?);
            }
            Event::CData(t) if in_value(&stack) => {
                text.push_str(&t.decode().map_err(|e| malformed(&reader, e))?);
            }
            Event::GeneralRef(r) if in_value(&stack) => push_reference(&mut text, &r, &reader)?,
            Event::End(_) => match stack.pop() {
                Some(At::Value(field)) => {
                    let value = std::mem::take(&mut text);
                    match field {
                        Field::Name if name_encoded => {
                            blob.name = percent_encoding::percent_decode_str(&value)
                                .decode_utf8_lossy()
                                .into_owned();
                        }
                        Field::Name => blob.name = value,
                        Field::Etag => blob.etag = crate::blob::etag::from_service(&value),
                        Field::LastModified => {
                            blob.last_modified = crate::client::headers::http_date(&value)
                        }
                        Field::MetadataValue => {
                            blob.metadata
                                .insert(std::mem::take(&mut metadata_key), value);
                        }
                        Field::NextMarker => next_marker = Some(value),
                    }
                }
                Some(At::Blob) => on_blob(std::mem::take(&mut blob)),
                _ => {}
            },
            Event::Eof if stack.is_empty() && seen_root => {
                return Ok(next_marker.filter(|m| !m.is_empty()))
            }
            Event::Eof => return Err(unexpected("the List Blobs page ends early")),
            _ => {}
        }
    }
}

/// What an element is, given where it sits.
fn child(parent: At, start: &BytesStart<'_>) -> At {
    match (parent, start.name().into_inner()) {
        (At::Root, b"Blobs") => At::Blobs,
        (At::Root, b"NextMarker") => At::Value(Field::NextMarker),
        (At::Blobs, b"Blob") => At::Blob,
        (At::Blob, b"Name") => At::Value(Field::Name),
        (At::Blob, b"Properties") => At::Properties,
        (At::Blob, b"Metadata") => At::Metadata,
        (At::Properties, b"Etag") => At::Value(Field::Etag),
        (At::Properties, b"Last-Modified") => At::Value(Field::LastModified),
        (At::Metadata, _) => At::Value(Field::MetadataValue),
        _ => At::Skipped,
    }
}

fn in_value(stack: &[At]) -> bool {
    matches!(stack.last(), Some(At::Value(_)))
}

/// Names with characters XML cannot carry come percent-encoded, flagged `Encoded="true"`.
fn is_encoded(start: &BytesStart<'_>, reader: &Reader<&[u8]>) -> Result<bool> {
    let attribute = start
        .try_get_attribute("Encoded")
        .map_err(|e| malformed(reader, e))?;
    Ok(attribute.is_some_and(|a| a.value.eq_ignore_ascii_case(b"true")))
}

fn decode(bytes: &[u8], reader: &Reader<&[u8]>) -> Result<String> {
    reader
        .decoder()
        .decode(bytes)
        .map(|c| c.into_owned())
        .map_err(|e| malformed(reader, e))
}

/// `&amp;`, `&#x41;`: the text between references arrives as separate events.
fn push_reference(
    text: &mut String,
    reference: &BytesRef<'_>,
    reader: &Reader<&[u8]>,
) -> Result<()> {
    if let Some(c) = reference
        .resolve_char_ref()
        .map_err(|e| malformed(reader, e))?
    {
        text.push(c);
        return Ok(());
    }
    let name = reference.decode().map_err(|e| malformed(reader, e))?;
    match resolve_predefined_entity(&name) {
        Some(value) => {
            text.push_str(value);
            Ok(())
        }
        None => Err(unexpected(format!(
            "the List Blobs page uses an undefined entity &{name};"
        ))),
    }
}

fn malformed(reader: &Reader<&[u8]>, err: impl std::fmt::Display) -> Error {
    unexpected(format!(
        "the List Blobs page is not well-formed XML (near byte {}): {err}",
        reader.buffer_position()
    ))
}

fn unexpected(message: impl Into<String>) -> Error {
    Error::UnexpectedResponse {
        message: message.into(),
    }
}
