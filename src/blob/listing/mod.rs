//! Reading one List Blobs response page: the name, ETag, Last-Modified and metadata of each blob,
//! and the continuation marker. Everything else in the page is skipped.
//!
//! One pass over the page's bytes with a pull parser. Each blob is handed over as soon as its
//! element closes, borrowed from buffers the parser reuses, so nothing is allocated per blob: only
//! the records the caller keeps allocate (and their ETag and date are parsed only then).
//!
//! A blob's `Properties` hold some twenty elements, of which a record needs two (`Etag`,
//! `Last-Modified`; and `ResourceType`, which marks Data Lake directories). Reading them as XML
//! events was half of a listing's instructions, so the element is searched as bytes instead: its
//! end, then those elements' text. That is exact for what every service version writes there,
//! elements holding text; a comment, CDATA, or one of the three repeated, with attributes or with
//! markup inside, sends the element through the XML reader like the rest of the page (and a
//! `Properties` nested in another is an error). End tags are checked for the elements a record
//! is read from; inside skipped elements they are not (which the reader's own check would cost
//! on every element).

#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;

use crate::error::{Error, Result};
use crate::shell::record::{StoredFields, Version};
use azure_core::{http::Etag, time::OffsetDateTime};
use memchr::memmem::Finder;
use quick_xml::{
    escape::{resolve_predefined_entity, unescape},
    events::{BytesRef, BytesStart, Event},
    Reader,
};
use std::{borrow::Cow, sync::LazyLock};

/// Metadata the Data Lake (hierarchical namespace) service sets on directory entries.
const DIRECTORY_MARKER: &str = "hdi_isfolder";

/// A blob as a listing reports it, borrowed from the parser for the callback's duration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ListedBlob<'p> {
    pub(crate) name: &'p str,
    etag: &'p str,
    last_modified: &'p str,
    resource_type: &'p str,
    pub(crate) metadata: Metadata<'p>,
}

impl ListedBlob<'_> {
    /// Its ETag; none when absent or in a form we cannot read.
    pub(crate) fn etag(&self) -> Option<Etag> {
        super::etag::from_service(self.etag)
    }

    /// Its Last-Modified; none when absent or in a form we cannot read.
    pub(crate) fn last_modified(&self) -> Option<OffsetDateTime> {
        crate::client::headers::http_date(self.last_modified)
    }

    /// A Data Lake directory: `ResourceType` `directory` (newer service versions), or the
    /// `hdi_isfolder` metadata (every version).
    pub(crate) fn is_directory(&self) -> bool {
        self.resource_type.trim().eq_ignore_ascii_case("directory")
            || self.metadata.0.iter().any(|(k, v)| {
                k.eq_ignore_ascii_case(DIRECTORY_MARKER) && v.trim().eq_ignore_ascii_case("true")
            })
    }
}

/// Parsed when a record keeps it.
impl Version for ListedBlob<'_> {
    fn etag(&self) -> Option<Etag> {
        ListedBlob::etag(self)
    }

    fn last_modified(&self) -> Option<OffsetDateTime> {
        ListedBlob::last_modified(self)
    }
}

/// A blob's metadata: (key, value) in document order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Metadata<'p>(&'p [(String, String)]);

/// Keys in any case (peers differ); of two with one key, the later (as a map built in document
/// order would keep).
impl StoredFields for Metadata<'_> {
    fn field(&self, key: &str) -> Option<Cow<'_, str>> {
        let pairs = self.0.iter().rev();
        pairs
            .clone()
            .find(|(k, _)| k == key)
            .or_else(|| pairs.clone().find(|(k, _)| k.eq_ignore_ascii_case(key)))
            .map(|(_, v)| Cow::Borrowed(v.as_str()))
    }
}

/// Where the parser is in `EnumerationResults`; only the elements a record needs are told apart.
#[derive(Clone, Copy, PartialEq, Debug)]
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

#[derive(Clone, Copy, PartialEq, Debug)]
enum Field {
    Name,
    Etag,
    LastModified,
    ResourceType,
    MetadataValue,
    NextMarker,
}

/// The buffers a page's blobs are read into, reused from blob to blob.
#[derive(Default)]
struct Scratch {
    name: String,
    name_encoded: bool,
    etag: String,
    last_modified: String,
    resource_type: String,
    /// Entries past `used` are spare, kept for their capacity.
    metadata: Vec<(String, String)>,
    used: usize,
    next_marker: String,
    decoded: String,
}

impl Scratch {
    fn blob(&self) -> ListedBlob<'_> {
        ListedBlob {
            name: &self.name,
            etag: &self.etag,
            last_modified: &self.last_modified,
            resource_type: &self.resource_type,
            metadata: Metadata(&self.metadata[..self.used]),
        }
    }

    fn clear(&mut self) {
        self.name.clear();
        self.name_encoded = false;
        self.etag.clear();
        self.last_modified.clear();
        self.resource_type.clear();
        self.used = 0;
    }

    /// A new metadata entry for `key`, its value empty until its text is read.
    fn begin_metadata(&mut self, key: &str) {
        if self.used == self.metadata.len() {
            self.metadata.push(Default::default());
        }
        let (k, v) = &mut self.metadata[self.used];
        k.clear();
        k.push_str(key);
        v.clear();
        self.used += 1;
    }

    /// The buffer a field's text goes to.
    fn buffer(&mut self, field: Field) -> &mut String {
        match field {
            Field::Name => &mut self.name,
            Field::Etag => &mut self.etag,
            Field::LastModified => &mut self.last_modified,
            Field::ResourceType => &mut self.resource_type,
            // Begun at the element's start, so there is one.
            Field::MetadataValue => &mut self.metadata[self.used - 1].1,
            Field::NextMarker => &mut self.next_marker,
        }
    }

    /// Names with characters XML cannot carry come percent-encoded, flagged `Encoded="true"`.
    fn finish_name(&mut self) {
        if self.name_encoded {
            self.decoded.clear();
            self.decoded
                .push_str(&percent_encoding::percent_decode_str(&self.name).decode_utf8_lossy());
            std::mem::swap(&mut self.name, &mut self.decoded);
        }
    }
}

/// Parses one page, calling `on_blob` for each blob in document order; returns the `NextMarker`
/// (`None` when empty or absent: the last page).
pub(crate) fn parse_page(
    xml: &[u8],
    mut on_blob: impl FnMut(&ListedBlob<'_>),
) -> Result<Option<String>> {
    let mut scratch = Scratch::default();
    let mut stack: Vec<At> = Vec::with_capacity(8);
    let mut seen_root = false;
    let mut page = Page::at(xml, 0);

    loop {
        let event = page.reader.read_event().map_err(|e| page.malformed(e))?;
        match event {
            Event::Start(start) => {
                // The document element is taken whatever its name: only its children matter.
                seen_root = true;
                let at = stack
                    .last()
                    .map_or(At::Root, |&parent| child(parent, &start));
                match at {
                    At::Properties => {
                        let from = page.position();
                        if let Some(after) = properties(xml, from, &mut scratch)? {
                            // Read as bytes: the reader goes on after `</Properties>`.
                            page = Page::at(xml, after);
                            continue;
                        }
                    }
                    At::Value(Field::Name) => {
                        scratch.name_encoded = is_encoded(&start, &page)?;
                    }
                    At::Value(Field::MetadataValue) => {
                        scratch.begin_metadata(&page.decode(start.name().into_inner())?);
                    }
                    At::Value(field) => scratch.buffer(field).clear(),
                    _ => {}
                }
                stack.push(at);
            }
            // `<ownerid />`: a metadata value that is empty. Other empty elements carry nothing.
            Event::Empty(start) => {
                seen_root = true;
                if stack.last() == Some(&At::Metadata) {
                    scratch.begin_metadata(&page.decode(start.name().into_inner())?);
                }
            }
            Event::Text(t) => {
                if let Some(At::Value(field)) = stack.last() {
                    let text = t.decode().map_err(|e| page.malformed(e))?;
                    scratch.buffer(*field).push_str(&text);
                }
            }
            Event::CData(t) => {
                if let Some(At::Value(field)) = stack.last() {
                    let text = t.decode().map_err(|e| page.malformed(e))?;
                    scratch.buffer(*field).push_str(&text);
                }
            }
            Event::GeneralRef(r) => {
                if let Some(At::Value(field)) = stack.last() {
                    push_reference(scratch.buffer(*field), &r, &page)?;
                }
            }
            Event::End(end) => {
                let Some(at) = stack.pop() else {
                    return Err(page.malformed("an end tag without a start tag"));
                };
                let expected: &[u8] = match at {
                    At::Value(Field::MetadataValue) => {
                        scratch.metadata[scratch.used - 1].0.as_bytes()
                    }
                    other => element_name(other),
                };
                if !expected.is_empty() && end.name().into_inner() != expected {
                    return Err(page.malformed(format!(
                        "`</{}>` closes `<{}>`",
                        String::from_utf8_lossy(end.name().into_inner()),
                        String::from_utf8_lossy(expected)
                    )));
                }
                match at {
                    At::Value(Field::Name) => scratch.finish_name(),
                    At::Blob => {
                        on_blob(&scratch.blob());
                        scratch.clear();
                    }
                    _ => {}
                }
            }
            Event::Eof if stack.is_empty() && seen_root => {
                let marker = std::mem::take(&mut scratch.next_marker);
                return Ok(Some(marker).filter(|m| !m.is_empty()));
            }
            Event::Eof => return Err(unexpected("the List Blobs page ends early")),
            _ => {}
        }
    }
}

/// The XML reader over the page from byte `offset` on (a new one after a `Properties` element
/// read as bytes).
struct Page<'x> {
    reader: Reader<&'x [u8]>,
    offset: usize,
}

impl<'x> Page<'x> {
    fn at(xml: &'x [u8], offset: usize) -> Self {
        let mut reader = Reader::from_reader(&xml[offset..]);
        // Checked here, and only for the elements a record is read from (see the module docs); a
        // reader started after `</Properties>` has not seen the tags it closes.
        let config = reader.config_mut();
        config.check_end_names = false;
        config.allow_unmatched_ends = true;
        Page { reader, offset }
    }

    /// The position in the page after the last event.
    fn position(&self) -> usize {
        self.offset + self.reader.buffer_position() as usize
    }

    fn decode<'b>(&self, bytes: &'b [u8]) -> Result<Cow<'b, str>> {
        self.reader
            .decoder()
            .decode(bytes)
            .map_err(|e| self.malformed(e))
    }

    fn malformed(&self, err: impl std::fmt::Display) -> Error {
        unexpected(format!(
            "the List Blobs page is not well-formed XML (near byte {}): {err}",
            self.position()
        ))
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
        (At::Properties, b"ResourceType") => At::Value(Field::ResourceType),
        (At::Metadata, _) => At::Value(Field::MetadataValue),
        _ => At::Skipped,
    }
}

/// The name that closes an element, where the parser knows it (empty: not checked).
fn element_name(at: At) -> &'static [u8] {
    match at {
        At::Blobs => b"Blobs",
        At::Blob => b"Blob",
        At::Properties => b"Properties",
        At::Metadata => b"Metadata",
        At::Value(Field::Name) => b"Name",
        At::Value(Field::Etag) => b"Etag",
        At::Value(Field::LastModified) => b"Last-Modified",
        At::Value(Field::ResourceType) => b"ResourceType",
        At::Value(Field::NextMarker) => b"NextMarker",
        At::Root | At::Skipped | At::Value(Field::MetadataValue) => b"",
    }
}

/// Searches, built once: `</Properties>`, and the opening and closing tags of the children a
/// record needs, in the order `properties` fills them in.
struct Finders {
    end: Finder<'static>,
    wanted: [(Finder<'static>, Finder<'static>); 3],
}

static FINDERS: LazyLock<Finders> = LazyLock::new(|| Finders {
    end: Finder::new(b"</Properties>"),
    wanted: [
        (Finder::new(b"<Etag"), Finder::new(b"</Etag>")),
        (
            Finder::new(b"<Last-Modified"),
            Finder::new(b"</Last-Modified>"),
        ),
        (
            Finder::new(b"<ResourceType"),
            Finder::new(b"</ResourceType>"),
        ),
    ],
});

/// Reads the `Properties` element whose content starts at `from` as bytes: the text of its
/// `Etag`, `Last-Modified` and `ResourceType` into `scratch`. Returns where the page goes on
/// after `</Properties>`, or `None` (and nothing read) when the element holds a comment, CDATA or
/// a processing instruction, or one of those three twice, with attributes or with markup inside,
/// for the XML reader to read.
fn properties(xml: &[u8], from: usize, scratch: &mut Scratch) -> Result<Option<usize>> {
    let finders = &*FINDERS;
    let rest = &xml[from..];
    let Some(length) = finders.end.find(rest) else {
        return Ok(None);
    };
    let content = &rest[..length];
    // A `Properties` nested in this one would have ended the search early: the reader then finds
    // the outer end tag closing the blob, and reports it.
    if memchr::memchr2_iter(b'!', b'?', content).any(|i| i > 0 && content[i - 1] == b'<') {
        return Ok(None);
    }
    let mut found: [Option<&[u8]>; 3] = [None; 3];
    for (slot, (open, close)) in found.iter_mut().zip(&finders.wanted) {
        let mut from = 0;
        // `<EtagX>` is another element: look past it.
        while let Some(at) = open.find(&content[from..]).map(|i| from + i) {
            let after = at + open.needle().len();
            match content.get(after) {
                Some(b'>') => {
                    let text = &content[after + 1..];
                    let Some(end) = close.find(text) else {
                        return Ok(None);
                    };
                    if slot.is_some() || memchr::memchr(b'<', &text[..end]).is_some() {
                        return Ok(None);
                    }
                    *slot = Some(&text[..end]);
                    from = after + 1 + end + close.needle().len();
                }
                Some(b'/') if content.get(after + 1) == Some(&b'>') => {
                    if slot.is_some() {
                        return Ok(None);
                    }
                    *slot = Some(b"");
                    from = after + 2;
                }
                // Attributes, or a space before `/>`.
                Some(b) if b.is_ascii_whitespace() || *b == b'/' => return Ok(None),
                _ => from = after,
            }
        }
    }
    let end = length + finders.end.needle().len();
    for (buffer, text) in [
        &mut scratch.etag,
        &mut scratch.last_modified,
        &mut scratch.resource_type,
    ]
    .into_iter()
    .zip(found)
    {
        buffer.clear();
        if let Some(text) = text {
            let text = std::str::from_utf8(text).map_err(|e| {
                unexpected(format!(
                    "the List Blobs page is not UTF-8 near byte {from}: {e}"
                ))
            })?;
            let text = unescape(text).map_err(|e| {
                unexpected(format!(
                    "the List Blobs page has a bad entity near byte {from}: {e}"
                ))
            })?;
            buffer.push_str(&text);
        }
    }
    Ok(Some(from + end))
}

/// Names with characters XML cannot carry come percent-encoded, flagged `Encoded="true"`.
fn is_encoded(start: &BytesStart<'_>, page: &Page<'_>) -> Result<bool> {
    let attribute = start
        .try_get_attribute("Encoded")
        .map_err(|e| page.malformed(e))?;
    Ok(attribute.is_some_and(|a| a.value.eq_ignore_ascii_case(b"true")))
}

/// `&amp;`, `&#x41;`: the text between references arrives as separate events.
fn push_reference(text: &mut String, reference: &BytesRef<'_>, page: &Page<'_>) -> Result<()> {
    if let Some(c) = reference
        .resolve_char_ref()
        .map_err(|e| page.malformed(e))?
    {
        text.push(c);
        return Ok(());
    }
    let name = reference.decode().map_err(|e| page.malformed(e))?;
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

fn unexpected(message: impl Into<String>) -> Error {
    Error::UnexpectedResponse {
        message: message.into(),
    }
}
