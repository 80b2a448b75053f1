//! A storage service whose clock runs ahead of or behind this host's, as the fault proxy plays it:
//! every time the service reports is shifted (the `Date` and `Last-Modified` headers, the
//! modification times in List Blobs pages, the Table service's entity `Timestamp`s and the times
//! its ETags carry), and the times a client sends back in `If-Match` are shifted back, so that
//! conditions still match the entity's real version.

use time::{
    format_description::{well_known::Rfc3339, BorrowedFormatItem},
    macros::format_description,
    Duration, OffsetDateTime, PrimitiveDateTime,
};

/// `Sun, 06 Nov 1994 08:49:37 GMT`, as HTTP dates are written.
const HTTP_DATE: &[BorrowedFormatItem<'static>] = format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

/// Shifts an HTTP date; anything else is left as it is.
fn http_date(value: &str, by: Duration) -> String {
    PrimitiveDateTime::parse(value.trim(), HTTP_DATE)
        .ok()
        .and_then(|date| (date.assume_utc() + by).format(HTTP_DATE).ok())
        .unwrap_or_else(|| value.to_owned())
}

/// Shifts an RFC 3339 time, keeping its seven fractional digits (the Table service's form).
fn rfc3339(value: &str, by: Duration) -> String {
    OffsetDateTime::parse(value, &Rfc3339)
        .ok()
        .map(|t| {
            let t = t + by;
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:07}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.nanosecond() / 100
            )
        })
        .unwrap_or_else(|| value.to_owned())
}

/// Shifts the time inside a Table ETag (`W/"datetime'2026-11-21T10%3A00%3A00.1234567Z'"`).
fn table_etag(value: &str, by: Duration) -> String {
    replace_between(value, "datetime'", "'", |time| {
        rfc3339(&time.replace("%3A", ":"), by).replace(':', "%3A")
    })
}

/// `text` with every value between `start` and `end` replaced by `f(value)`.
fn replace_between(text: &str, start: &str, end: &str, f: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(start) {
        let value_at = at + start.len();
        let Some(length) = rest[value_at..].find(end) else {
            break;
        };
        out.push_str(&rest[..value_at]);
        out.push_str(&f(&rest[value_at..value_at + length]));
        rest = &rest[value_at + length..];
    }
    out.push_str(rest);
    out
}

/// A request head as the service should see it: times in `If-Match` shifted back by `by`.
pub(crate) fn request_head(head: &str, by: Duration) -> String {
    head.split("\r\n")
        .map(|line| match line.split_once(':') {
            Some((name, value)) if name.trim().eq_ignore_ascii_case("if-match") => {
                format!("{name}:{}", table_etag(value, -by))
            }
            _ => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// A whole HTTP/1.1 response as a client of a service running `by` ahead should see it. A chunked
/// body is read whole and sent with its length.
pub(crate) fn response(response: &[u8], by: Duration) -> Vec<u8> {
    let Some(head_end) = crate::proxy::find(response, b"\r\n\r\n") else {
        return response.to_vec();
    };
    let head = String::from_utf8_lossy(&response[..head_end]).into_owned();
    let mut body = response[head_end + 4..].to_vec();
    let chunked = head.lines().any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("transfer-encoding")
                && value.trim().eq_ignore_ascii_case("chunked")
        })
    });
    if chunked {
        body = dechunk(&body);
    }
    let body = match String::from_utf8(body) {
        Ok(text) => {
            let text = replace_between(&text, "<Last-Modified>", "</Last-Modified>", |v| {
                http_date(v, by)
            });
            let text = replace_between(&text, "\"Timestamp\":\"", "\"", |v| rfc3339(v, by));
            table_etag(&text, by).into_bytes()
        }
        Err(binary) => binary.into_bytes(),
    };
    let mut lines: Vec<String> = Vec::new();
    for line in head.split("\r\n") {
        match line.split_once(':') {
            Some((name, value)) => match name.trim().to_ascii_lowercase().as_str() {
                "date" | "last-modified" => lines.push(format!("{name}: {}", http_date(value, by))),
                "etag" => lines.push(format!("{name}:{}", table_etag(value, by))),
                "content-length" | "transfer-encoding" => {}
                _ => lines.push(line.to_owned()),
            },
            None => lines.push(line.to_owned()),
        }
    }
    lines.push(format!("Content-Length: {}", body.len()));
    let mut out = format!("{}\r\n\r\n", lines.join("\r\n")).into_bytes();
    out.extend_from_slice(&body);
    out
}

/// The data of a chunked body.
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut data = Vec::new();
    while let Some(line_end) = crate::proxy::find(body, b"\r\n") {
        let size = std::str::from_utf8(&body[..line_end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        let Some(chunk) = body.get(start..start + size) else {
            break;
        };
        data.extend_from_slice(chunk);
        body = body.get(start + size + 2..).unwrap_or_default();
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_time_the_service_reports_is_shifted() {
        let five = Duration::minutes(5);
        assert_eq!(
            http_date("Sun, 29 Nov 2026 07:48:27 GMT", five),
            "Sun, 29 Nov 2026 07:53:27 GMT"
        );
        assert_eq!(
            rfc3339("2026-11-29T07:58:27.1234567Z", five),
            "2026-11-29T08:03:27.1234567Z"
        );
        let etag = "W/\"datetime'2026-11-29T07%3A48%3A27.1234567Z'\"";
        assert_eq!(
            table_etag(etag, five),
            "W/\"datetime'2026-11-29T07%3A53%3A27.1234567Z'\""
        );
        assert_eq!(table_etag(&table_etag(etag, five), -five), etag);
        let xml = "<Last-Modified>Sun, 29 Nov 2026 07:48:00 GMT</Last-Modified>";
        let mut page =
            b"HTTP/1.1 200 OK\r\nDate: Sun, 29 Nov 2026 07:48:27 GMT\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec();
        for chunk in [&xml[..20], &xml[20..]] {
            page.extend_from_slice(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes());
        }
        page.extend_from_slice(b"0\r\n\r\n");
        let shifted = String::from_utf8(response(&page, -five)).unwrap();
        assert!(
            shifted.contains("Date: Sun, 29 Nov 2026 07:43:27 GMT"),
            "{shifted}"
        );
        assert!(
            shifted
                .ends_with("\r\n\r\n<Last-Modified>Sun, 29 Nov 2026 07:43:00 GMT</Last-Modified>"),
            "{shifted}"
        );
        assert!(
            shifted.contains(&format!("Content-Length: {}", xml.len())),
            "{shifted}"
        );
    }
}
