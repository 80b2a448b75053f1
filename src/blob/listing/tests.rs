use super::*;
use crate::shell::record::StoredFields;
use proptest::prelude::*;

/// What a record is built from, owned, whichever parser read it.
#[derive(Debug, PartialEq)]
struct Seen {
    name: String,
    etag: Option<Etag>,
    last_modified: Option<OffsetDateTime>,
    directory: bool,
    fields: Vec<(String, Option<String>)>,
}

/// The record fields and every key the page holds, each as a record would read it.
fn fields(
    keys: impl Iterator<Item = String>,
    metadata: &dyn StoredFields,
) -> Vec<(String, Option<String>)> {
    let mut keys: Vec<String> = ["ownerid", "offset", "sequencenumber"]
        .into_iter()
        .map(String::from)
        .chain(keys)
        .collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .map(|k| {
            let v = metadata.field(&k).map(Cow::into_owned);
            (k, v)
        })
        .collect()
}

fn parse(xml: &str) -> Result<(Vec<Seen>, Option<String>)> {
    let mut seen = Vec::new();
    let marker = parse_page(xml.as_bytes(), |b| {
        seen.push(Seen {
            name: b.name.to_owned(),
            etag: b.etag(),
            last_modified: b.last_modified(),
            directory: b.is_directory(),
            fields: fields(b.metadata.0.iter().map(|(k, _)| k.clone()), &b.metadata),
        })
    })?;
    Ok((seen, marker))
}

fn parse_with_reference(xml: &str) -> Result<(Vec<Seen>, Option<String>)> {
    let mut seen = Vec::new();
    let marker = reference::parse_page(xml.as_bytes(), |b| {
        seen.push(Seen {
            directory: b.is_directory(),
            fields: fields(b.metadata.keys().cloned(), &b.metadata),
            name: b.name,
            etag: b.etag,
            last_modified: b.last_modified,
        })
    })?;
    Ok((seen, marker))
}

fn field(seen: &Seen, key: &str) -> Option<String> {
    seen.fields
        .iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.clone())
}

#[test]
fn reads_the_fields_a_record_needs_from_any_list_blobs_page() {
    let xml = r#"<?xml version="1.0" encoding="utf-8"?>
<EnumerationResults ServiceEndpoint="https://a.blob.core.windows.net/" ContainerName="c">
  <Prefix>ns/eh/cg/ownership/</Prefix>
  <Marker />
  <Blobs>
    <Blob>
      <Name>ns/eh/cg/ownership/0</Name>
      <Properties><Last-Modified>Sat, 21 Nov 2026 10:00:00 GMT</Last-Modified><Etag>0x8DABC</Etag><Content-Length>0</Content-Length><BlobType>BlockBlob</BlobType></Properties>
      <Metadata><ownerid>owner-1</ownerid><OwnerNote>a &amp; b &#x41;<![CDATA[<c>]]></OwnerNote></Metadata>
      <OrMetadata><Name>not-a-name</Name></OrMetadata>
    </Blob>
    <Blob>
      <Name Encoded="true">ns/eh/cg/ownership/%EF%BF%BE1</Name>
      <Properties><Etag>"0x8DDEF"</Etag></Properties>
      <Metadata><ownerid /></Metadata>
    </Blob>
    <Blob>
      <Name>ns/eh/cg/ownership/2</Name>
      <Properties />
    </Blob>
  </Blobs>
  <NextMarker>page-2</NextMarker>
</EnumerationResults>"#;
    let (blobs, marker) = parse(xml).unwrap();
    assert_eq!(marker.as_deref(), Some("page-2"));
    assert_eq!(blobs.len(), 3);
    assert_eq!(blobs[0].name, "ns/eh/cg/ownership/0");
    assert_eq!(blobs[0].etag, Some(Etag::from("\"0x8DABC\"")));
    assert_eq!(
        blobs[0].last_modified,
        azure_core::time::parse_rfc7231("Sat, 21 Nov 2026 10:00:00 GMT").ok()
    );
    assert_eq!(field(&blobs[0], "ownerid").as_deref(), Some("owner-1"));
    assert_eq!(field(&blobs[0], "OwnerNote").as_deref(), Some("a & b A<c>"));
    assert_eq!(blobs[1].name, "ns/eh/cg/ownership/\u{FFFE}1");
    assert_eq!(blobs[1].etag, Some(Etag::from("\"0x8DDEF\"")));
    assert_eq!(blobs[1].last_modified, None);
    assert_eq!(field(&blobs[1], "ownerid").as_deref(), Some(""));
    assert_eq!(blobs[2].name, "ns/eh/cg/ownership/2");
    assert_eq!(
        (blobs[2].etag.as_ref(), blobs[2].last_modified),
        (None, None)
    );
    assert!(blobs.iter().all(|b| !b.directory));
    // The reference reads the same.
    assert_eq!(parse_with_reference(xml).unwrap(), (blobs, marker));
}

#[test]
fn an_empty_or_absent_marker_means_the_last_page() {
    for xml in [
        "<EnumerationResults><Blobs /><NextMarker /></EnumerationResults>",
        "<EnumerationResults><Blobs></Blobs><NextMarker></NextMarker></EnumerationResults>",
        "<EnumerationResults />",
    ] {
        assert_eq!(parse(xml).unwrap(), (Vec::new(), None), "{xml}");
    }
}

#[test]
fn a_broken_page_is_an_error_not_a_short_listing() {
    for xml in [
        "<EnumerationResults><Blobs><Blob><Name>a</Name>",
        "<EnumerationResults><Blobs><Blob><Name>a</Blob></Blobs></EnumerationResults>",
        "<EnumerationResults><Blobs><Blob><Name>&bogus;</Name></Blob></Blobs></EnumerationResults>",
        "<EnumerationResults><Blobs><Blob><Name>a</Name><Properties><Etag>x</Etag></Blob></Blobs></EnumerationResults>",
        "<EnumerationResults><Blobs><Blob><Name>a</Name><Properties><Etag>&bogus;</Etag></Properties></Blob></Blobs></EnumerationResults>",
        "<EnumerationResults><Blobs><Blob><Metadata><k>v</j></Metadata></Blob></Blobs></EnumerationResults>",
        "<EnumerationResults></Blobs></EnumerationResults>",
        "",
    ] {
        match parse(xml) {
            Err(Error::UnexpectedResponse { .. }) => {}
            other => panic!("{xml:?} gave {other:?}"),
        }
    }
}

/// A `Properties` nested in another is not a page any service writes: an error, not a misread.
#[test]
fn a_nested_properties_is_an_error() {
    let xml = "<EnumerationResults><Blobs><Blob><Name>a</Name><Properties><Properties><Etag>x</Etag></Properties></Properties></Blob></Blobs></EnumerationResults>";
    assert!(matches!(parse(xml), Err(Error::UnexpectedResponse { .. })));
}

/// Data Lake (hierarchical namespace) accounts list directories as blobs: marked by
/// `ResourceType` on newer service versions, by `hdi_isfolder` metadata on all. Both are
/// reported as directories, which the store skips (tests in `backend.rs` and the listing tests).
#[test]
fn data_lake_directories_are_recognised_with_or_without_metadata() {
    let xml = r#"<EnumerationResults><Blobs>
      <Blob><Name>ns/eh/cg/checkpoint/0</Name><Properties><Etag>0x1</Etag><ResourceType>directory</ResourceType></Properties></Blob>
      <Blob><Name>ns/eh/cg/checkpoint/1</Name><Properties><Etag>0x2</Etag></Properties><Metadata><hdi_isfolder>true</hdi_isfolder></Metadata></Blob>
      <Blob><Name>ns/eh/cg/checkpoint/2</Name><Properties><Etag>0x3</Etag><ResourceType>file</ResourceType></Properties><Metadata><offset>1</offset></Metadata></Blob>
      <Blob><Name>ns/eh/cg/checkpoint/3</Name><Properties><Etag>0x4</Etag><!-- a comment --><ResourceType>directory</ResourceType></Properties></Blob>
    </Blobs></EnumerationResults>"#;
    let (blobs, _) = parse(xml).unwrap();
    let directories: Vec<bool> = blobs.iter().map(|b| b.directory).collect();
    assert_eq!(directories, [true, true, false, true]);
}

/// Properties read as bytes where they hold elements with text; through the XML reader, with the
/// same result, where they hold anything else.
#[test]
fn properties_with_markup_are_read_by_the_xml_reader_alike() {
    let date = "Sat, 21 Nov 2026 10:00:00 GMT";
    for properties in [
        format!("<Etag>0x8D1</Etag><Last-Modified>{date}</Last-Modified>"),
        format!("<Etag>0x8D1</Etag><!-- x --><Last-Modified>{date}</Last-Modified>"),
        format!("<Etag><![CDATA[0x8D1]]></Etag><Last-Modified>{date}</Last-Modified>"),
        format!("<Etag a=\"b\">0x8D1</Etag><Last-Modified>{date}</Last-Modified>"),
        format!("<EtagX>no</EtagX><Etag>0x8D1</Etag><Last-Modified>{date}</Last-Modified>"),
        format!("<Etag>&quot;0x8D1&quot;</Etag><Last-Modified>{date}</Last-Modified>"),
        format!("<Etag>0x8D1</Etag>\n  <Last-Modified>{date}</Last-Modified>\n"),
    ] {
        let xml = format!(
            "<EnumerationResults><Blobs><Blob><Name>n</Name><Properties>{properties}</Properties></Blob></Blobs></EnumerationResults>"
        );
        let (blobs, _) = parse(&xml).unwrap();
        assert_eq!(blobs[0].etag, Some(Etag::from("\"0x8D1\"")), "{properties}");
        assert!(blobs[0].last_modified.is_some(), "{properties}");
        assert_eq!(parse_with_reference(&xml).unwrap().0, blobs, "{properties}");
    }
    // Two ETags: the reference keeps the last; so does the reader this page falls back to.
    let xml = "<EnumerationResults><Blobs><Blob><Name>n</Name><Properties><Etag>1</Etag><Etag>2</Etag></Properties></Blob></Blobs></EnumerationResults>";
    assert_eq!(parse(xml).unwrap(), parse_with_reference(xml).unwrap());
}

// ---------------------------------------------------------------------------------------------
// Generated pages: the new parser reads what the reference reads.

/// Text as the service escapes it: the five predefined entities, sometimes as character
/// references.
fn escape(text: &str, as_references: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match (c, as_references) {
            ('&', false) => out.push_str("&amp;"),
            ('<', false) => out.push_str("&lt;"),
            ('>', false) => out.push_str("&gt;"),
            ('"', false) => out.push_str("&quot;"),
            ('\'', false) => out.push_str("&apos;"),
            ('&' | '<' | '>' | '"' | '\'', true) => out.push_str(&format!("&#x{:X};", c as u32)),
            _ => out.push(c),
        }
    }
    out
}

#[derive(Debug, Clone)]
struct GenBlob {
    name: String,
    encoded: bool,
    etag: Option<String>,
    quoted_etag: bool,
    last_modified: Option<String>,
    metadata: Vec<(String, Option<String>)>,
    directory: bool,
    as_references: bool,
    spaced: bool,
}

fn gen_blob() -> impl Strategy<Value = GenBlob> {
    let key = prop_oneof![
        Just("ownerid".to_owned()),
        Just("OwnerId".to_owned()),
        Just("offset".to_owned()),
        Just("sequencenumber".to_owned()),
        Just("SequenceNumber".to_owned()),
        "[a-z][a-z0-9_]{0,7}",
    ];
    let value = proptest::option::of("[ -~]{0,16}");
    (
        "[ -~\u{e9}\u{4e2d}]{1,24}",
        any::<bool>(),
        proptest::option::of("[0-9A-F]{4,16}"),
        any::<bool>(),
        proptest::option::of(Just("Sat, 21 Nov 2026 10:00:00 GMT".to_owned())),
        proptest::collection::vec((key, value), 0..4),
        prop_oneof![9 => Just(false), 1 => Just(true)],
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(
                name,
                encoded,
                etag,
                quoted_etag,
                last_modified,
                metadata,
                directory,
                as_references,
                spaced,
            )| {
                // Keys distinct regardless of case: with two spellings of one key and neither
                // exact, the reference's map answers in hash order.
                let mut seen = std::collections::HashSet::new();
                let metadata = metadata
                    .into_iter()
                    .filter(|(k, _)| seen.insert(k.to_ascii_lowercase()))
                    .collect();
                GenBlob {
                    name,
                    encoded,
                    etag: etag.map(|e| format!("0x{e}")),
                    quoted_etag,
                    last_modified,
                    metadata,
                    directory,
                    as_references,
                    spaced,
                }
            },
        )
}

/// A page as Azure writes one (the properties Azurite and Azure send, in their order), with
/// optional whitespace between elements.
fn render(blobs: &[GenBlob], marker: &Option<String>) -> String {
    let mut xml = String::from(
        r#"<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="http://127.0.0.1:10000/devstoreaccount1" ContainerName="c"><Prefix>ns/</Prefix><Marker /><MaxResults>5000</MaxResults><Blobs>"#,
    );
    for b in blobs {
        let nl = if b.spaced { "\n    " } else { "" };
        xml.push_str(&format!("{nl}<Blob>{nl}"));
        if b.encoded {
            let encoded: String =
                percent_encoding::utf8_percent_encode(&b.name, percent_encoding::NON_ALPHANUMERIC)
                    .collect();
            xml.push_str(&format!("<Name Encoded=\"true\">{encoded}</Name>"));
        } else {
            xml.push_str(&format!(
                "<Name>{}</Name>",
                escape(&b.name, b.as_references)
            ));
        }
        xml.push_str(&format!(
            "{nl}<Properties>{nl}<Creation-Time>Sat, 21 Nov 2026 09:00:00 GMT</Creation-Time>"
        ));
        if let Some(date) = &b.last_modified {
            xml.push_str(&format!("<Last-Modified>{date}</Last-Modified>"));
        }
        if let Some(etag) = &b.etag {
            let etag = if b.quoted_etag {
                format!("\"{etag}\"")
            } else {
                etag.clone()
            };
            xml.push_str(&format!("<Etag>{}</Etag>", escape(&etag, b.as_references)));
        }
        xml.push_str("<Content-Length>0</Content-Length><Content-Type>application/octet-stream</Content-Type><Content-Encoding /><Content-Language /><Content-CRC64 /><Content-MD5>1B2M2Y8AsgTpgAmY7PhCfg==</Content-MD5><Cache-Control /><Content-Disposition /><BlobType>BlockBlob</BlobType><AccessTier>Hot</AccessTier><AccessTierInferred>true</AccessTierInferred><LeaseStatus>unlocked</LeaseStatus><LeaseState>available</LeaseState><ServerEncrypted>true</ServerEncrypted>");
        xml.push_str(&format!("{nl}</Properties>{nl}"));
        if !b.metadata.is_empty() || b.directory {
            xml.push_str("<Metadata>");
            for (k, v) in &b.metadata {
                match v {
                    Some(v) => xml.push_str(&format!("<{k}>{}</{k}>", escape(v, b.as_references))),
                    None => xml.push_str(&format!("<{k} />")),
                }
            }
            if b.directory {
                xml.push_str("<hdi_isfolder>true</hdi_isfolder>");
            }
            xml.push_str("</Metadata>");
        }
        xml.push_str(&format!("{nl}<OrMetadata />{nl}</Blob>"));
    }
    xml.push_str("</Blobs>");
    match marker {
        Some(m) => xml.push_str(&format!("<NextMarker>{}</NextMarker>", escape(m, false))),
        None => xml.push_str("<NextMarker />"),
    }
    xml.push_str("</EnumerationResults>");
    xml
}

proptest! {
    #[test]
    fn the_parser_reads_what_the_reference_reads(
        blobs in proptest::collection::vec(gen_blob(), 0..12),
        marker in proptest::option::of("[!-~]{1,40}"),
    ) {
        let xml = render(&blobs, &marker);
        let new = parse(&xml).unwrap();
        let old = parse_with_reference(&xml).unwrap();
        prop_assert_eq!(&new, &old);
        prop_assert_eq!(new.0.len(), blobs.len());
        prop_assert_eq!(new.1, marker);
    }

    /// Cut anywhere, a page is an error or a prefix of the blobs, never something else, and the
    /// two parsers agree on which.
    #[test]
    fn a_cut_page_reads_as_the_reference_reads_it(
        blobs in proptest::collection::vec(gen_blob(), 1..4),
        cut in 0.0f64..1.0,
    ) {
        let xml = render(&blobs, &None);
        let mut at = (xml.len() as f64 * cut) as usize;
        while !xml.is_char_boundary(at) {
            at -= 1;
        }
        let new = parse(&xml[..at]);
        let old = parse_with_reference(&xml[..at]);
        prop_assert_eq!(new.is_ok(), old.is_ok(), "{}", &xml[..at]);
        if let (Ok(new), Ok(old)) = (new, old) {
            prop_assert_eq!(new, old);
        }
    }
}
