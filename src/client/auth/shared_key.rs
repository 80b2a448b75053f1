//! Azure Storage "Shared Key" authorization, in the Blob service's layout (service versions
//! 2015-02-21 and later, where a zero Content-Length is signed as an empty string) and the Table
//! service's shorter one.

use crate::client::credential::SharedKeyCredential;
use crate::client::Service;
use async_trait::async_trait;
use azure_core::{
    http::{
        headers::{HeaderName, Headers},
        policies::{Policy, PolicyResult},
        Context, Method, Request, Url,
    },
    time::{to_rfc7231, OffsetDateTime},
};
use std::{collections::BTreeMap, sync::Arc};

/// The standard headers of the string-to-sign, in order. `Date` is always empty: `x-ms-date` is
/// sent instead and signed among the canonicalized headers.
const SIGNED_HEADERS: [&str; 11] = [
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
];

#[derive(Debug)]
pub(crate) struct SharedKeyPolicy {
    credential: SharedKeyCredential,
    service: Service,
}

impl SharedKeyPolicy {
    pub(crate) fn new(credential: SharedKeyCredential, service: Service) -> Self {
        Self {
            credential,
            service,
        }
    }
}

#[async_trait]
impl Policy for SharedKeyPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        // Signed per try: the date must be fresh and the retry policy may have changed the request.
        request.insert_header("x-ms-date", to_rfc7231(&OffsetDateTime::now_utc()));
        let to_sign = match self.service {
            Service::Blob => string_to_sign(
                self.credential.account(),
                &request.method(),
                request.url(),
                request.headers(),
                request.body().len().unwrap_or(0),
            ),
            Service::Table => table_string_to_sign(
                self.credential.account(),
                &request.method(),
                request.url(),
                request.headers(),
            ),
        };
        let signature = azure_core::hmac::hmac_sha256(&to_sign, self.credential.key())?;
        request.insert_header(
            "authorization",
            format!("SharedKey {}:{signature}", self.credential.account()),
        );
        next[0].send(ctx, request, &next[1..]).await
    }
}

/// The Blob service's string-to-sign for `request`.
fn string_to_sign(
    account: &str,
    method: &Method,
    url: &Url,
    headers: &Headers,
    body_len: u64,
) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(method.as_ref());
    out.push('\n');
    for name in SIGNED_HEADERS {
        let value = crate::client::headers::get(headers, &HeaderName::from_static(name));
        match name {
            // The transport sends Content-Length from the body when no header is set; either way a
            // zero length is signed as empty.
            "content-length" => {
                let len = value
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(body_len);
                if len > 0 {
                    out.push_str(&len.to_string());
                }
            }
            _ => out.push_str(value.unwrap_or_default().trim()),
        }
        out.push('\n');
    }
    let canonical_headers: BTreeMap<&str, &str> = headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("x-ms-"))
        .map(|(name, value)| (name.as_str(), value.as_str().trim()))
        .collect();
    for (name, value) in canonical_headers {
        out.push_str(name);
        out.push(':');
        out.push_str(value);
        out.push('\n');
    }
    out.push('/');
    out.push_str(account);
    out.push_str(url.path());
    let mut params: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in url.query_pairs() {
        params
            .entry(name.to_lowercase())
            .or_default()
            .push(value.into_owned());
    }
    for (name, mut values) in params {
        values.sort();
        out.push('\n');
        out.push_str(&name);
        out.push(':');
        out.push_str(&values.join(","));
    }
    out
}

/// The Table service's string-to-sign: verb, Content-MD5, Content-Type, the date (`x-ms-date`),
/// and the resource with only its `comp` parameter.
fn table_string_to_sign(account: &str, method: &Method, url: &Url, headers: &Headers) -> String {
    let header = |name: &'static str| {
        crate::client::headers::get(headers, &HeaderName::from_static(name))
            .unwrap_or_default()
            .trim()
    };
    let mut out = format!(
        "{}\n{}\n{}\n{}\n/{account}{}",
        method.as_ref(),
        header("content-md5"),
        header("content-type"),
        header("x-ms-date"),
        url.path()
    );
    if let Some((_, comp)) = url.query_pairs().find(|(name, _)| name == "comp") {
        out.push_str("?comp=");
        out.push_str(&comp);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_to_sign_follows_the_blob_service_layout() {
        let url = Url::parse(
            "http://127.0.0.1:10000/devstoreaccount1/c/ns/eh/%24default/ownership/0?comp=metadata&timeout=30",
        )
        .unwrap();
        let mut headers = Headers::new();
        headers.insert("x-ms-version", "2019-07-07");
        headers.insert("x-ms-date", "Sat, 21 Nov 2026 10:00:00 GMT");
        headers.insert("x-ms-meta-ownerid", " owner ");
        headers.insert("if-match", "\"0x8D1\"");
        headers.insert("content-length", "0");
        headers.insert("user-agent", "not signed");
        let signed = string_to_sign("devstoreaccount1", &Method::Put, &url, &headers, 0);
        assert_eq!(
            signed,
            "PUT\n\n\n\n\n\n\n\n\"0x8D1\"\n\n\n\n\
             x-ms-date:Sat, 21 Nov 2026 10:00:00 GMT\nx-ms-meta-ownerid:owner\nx-ms-version:2019-07-07\n\
             /devstoreaccount1/devstoreaccount1/c/ns/eh/%24default/ownership/0\ncomp:metadata\ntimeout:30"
        );
    }

    #[test]
    fn query_values_are_decoded_grouped_and_sorted() {
        let url = Url::parse("https://a.blob.core.windows.net/c?restype=container&comp=list&include=metadata&prefix=ns%2Feh%2F%24default%2F&Marker=b&marker=a").unwrap();
        let signed = string_to_sign("a", &Method::Get, &url, &Headers::new(), 0);
        assert!(signed.ends_with(
            "/a/c\ncomp:list\ninclude:metadata\nmarker:a,b\nprefix:ns/eh/$default/\nrestype:container"
        ));
    }

    #[test]
    fn table_string_to_sign_follows_the_table_service_layout() {
        let url = Url::parse(
            "http://127.0.0.1:10002/devstoreaccount1/checkpoints(PartitionKey='ns%20eh%20%24default%20Ownership',RowKey='0')?timeout=30",
        )
        .unwrap();
        let mut headers = Headers::new();
        headers.insert("x-ms-date", "Sat, 21 Nov 2026 10:00:00 GMT");
        headers.insert("content-type", "application/json");
        headers.insert("if-match", "W/\"datetime'2026'\"");
        let signed = table_string_to_sign("devstoreaccount1", &Method::Put, &url, &headers);
        assert_eq!(
            signed,
            "PUT\n\napplication/json\nSat, 21 Nov 2026 10:00:00 GMT\n\
             /devstoreaccount1/devstoreaccount1/checkpoints(PartitionKey='ns%20eh%20%24default%20Ownership',RowKey='0')"
        );
        let url = Url::parse("https://a.table.core.windows.net/?restype=service&comp=properties")
            .unwrap();
        assert!(table_string_to_sign("a", &Method::Get, &url, &headers)
            .ends_with("\n/a/?comp=properties"));
    }

    #[test]
    fn nonzero_body_length_is_signed_without_header() {
        let url = Url::parse("https://a.blob.core.windows.net/c/b").unwrap();
        let signed = string_to_sign("a", &Method::Put, &url, &Headers::new(), 5);
        assert!(signed.starts_with("PUT\n\n\n5\n"));
    }
}
