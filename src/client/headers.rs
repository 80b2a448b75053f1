//! Reading response headers on the hot path without `azure_core`'s getters.
//!
//! In `typespec` 1.1 (under `azure_core` 1.x), `ResultExt::with_context_fn` calls its closure
//! even when the result is `Ok`, so every `Headers::get_*` that finds its header formats an
//! error message (with the header's `Debug`) and throws it away, and every `parse_rfc7231`
//! formats one too; a header that is absent builds a whole error (with a backtrace when
//! `RUST_BACKTRACE` is set). A claim reads two headers, a listing parses a date per blob, and
//! signing looks up a dozen: together a measurable share of the client's CPU per request (see
//! `benches/README.md`). These two functions do the same work without the throwaway errors.

use azure_core::http::headers::{HeaderName, Headers};
use time::{format_description::well_known::Rfc2822, OffsetDateTime, UtcOffset};

/// The value of `name`, if present. A request or response has a dozen headers or so: a scan
/// compares a few short strings, cheaper than hashing the name.
pub(crate) fn get<'a>(headers: &'a Headers, name: &HeaderName) -> Option<&'a str> {
    headers
        .iter()
        .find(|(candidate, _)| *candidate == name)
        .map(|(_, value)| value.as_str())
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 7231's IMF-fixdate, which RFC 2822's
/// grammar covers), in UTC.
pub(crate) fn http_date(value: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(value, &Rfc2822)
        .ok()
        .map(|date| date.to_offset(UtcOffset::UTC))
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::time::parse_rfc7231;

    #[test]
    fn present_and_absent() {
        let mut headers = Headers::new();
        headers.insert("etag", "\"0x1\"");
        headers.insert("x-ms-meta-ownerid", "a");
        assert_eq!(
            get(&headers, &HeaderName::from_static("etag")),
            Some("\"0x1\"")
        );
        assert_eq!(get(&headers, &HeaderName::from_static("date")), None);
        // Names are stored lower-cased; callers pass lower-case static names.
        assert_eq!(
            get(&headers, &HeaderName::from_static("x-ms-meta-ownerid")),
            Some("a")
        );
    }

    #[test]
    fn dates_read_as_the_sdk_reads_them() {
        for date in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Tue, 24 Nov 2026 17:45:38 GMT",
            "Sat, 29 Feb 2028 23:59:59 GMT",
        ] {
            assert_eq!(http_date(date), parse_rfc7231(date).ok(), "{date}");
        }
        for bad in [
            "",
            "yesterday",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "2026-11-24T17:45:38Z",
        ] {
            assert_eq!(http_date(bad), None, "{bad}");
        }
    }
}
