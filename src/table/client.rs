//! The thin layer between the store and the Table service: each function is one Table REST
//! operation on one table, sent through an `azure_core` pipeline (retries, transport,
//! authorization policy), with errors mapped to ours. Not a general Tables client: only what the
//! store needs.

use super::entity::{self, Entity, Page};
use crate::client::{headers, Rest};
use crate::error::{Error, Result};
use crate::shell::Version;
use crate::store::ServiceTime;
use azure_core::http::{headers::Headers, ClientOptions, Etag, Method, Request, Url};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde_json::Value;

/// What must be percent-encoded inside the parentheses of an entity's address.
const KEY_ENCODE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\\')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'|');

/// One table of one account.
pub(crate) struct Table {
    rest: Rest,
    /// The account URL, ending without `/`.
    account: Url,
    name: String,
    /// The table's own URL, for callers to show.
    url: Url,
}

impl Table {
    /// `client_options` must already carry the transport and the authorization policy.
    pub(crate) fn new(
        account: Url,
        name: String,
        client_options: ClientOptions,
        version: &str,
    ) -> Self {
        let mut table = Self {
            rest: Rest::new(client_options, version),
            url: account.clone(),
            account,
            name,
        };
        table.url = table.at(&table.name);
        table
    }

    /// The table's URL.
    pub(crate) fn url(&self) -> &Url {
        &self.url
    }

    fn at(&self, resource: &str) -> Url {
        let mut url = self.account.clone();
        let path = format!("{}/{resource}", url.path().trim_end_matches('/'));
        url.set_path(&path);
        url
    }

    /// Create Table; `false` when it already existed.
    pub(crate) async fn create_if_missing(&self) -> Result<bool> {
        let mut request = self.request(self.at("Tables"), Method::Post);
        request.insert_header("prefer", "return-no-content");
        set_json(&mut request, &serde_json::json!({ "TableName": self.name }));
        match self.rest.send(&mut request, &[201, 204]).await {
            Ok(_) => Ok(true),
            Err(e) if e.error_code() == Some("TableAlreadyExists") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every entity of `partition_key`, following continuation headers (one request per 1,000
    /// entities). Each entity goes to `on_entity` as its page is read.
    pub(crate) async fn query(
        &self,
        partition_key: &str,
        mut on_entity: impl FnMut(Entity),
    ) -> Result<Option<ServiceTime>> {
        let filter = format!(
            "PartitionKey eq {}",
            super::keys::odata_literal(partition_key)
        );
        let mut next: Option<(String, Option<String>)> = None;
        loop {
            let mut url = self.at(&format!("{}()", self.name));
            {
                let mut query = url.query_pairs_mut();
                query.append_pair("$filter", &filter);
                if let Some((partition, row)) = &next {
                    query.append_pair("NextPartitionKey", partition);
                    if let Some(row) = row {
                        query.append_pair("NextRowKey", row);
                    }
                }
            }
            let mut request = self.request(url, Method::Get);
            let response = self.rest.send(&mut request, &[200]).await?;
            let page: Page =
                serde_json::from_slice(response.body()).map_err(|e| Error::UnexpectedResponse {
                    message: format!("a query page is not the expected JSON: {e}"),
                })?;
            page.value.into_iter().for_each(&mut on_entity);
            let header = |name: &'static str| {
                headers::get(
                    response.headers(),
                    &azure_core::http::headers::HeaderName::from_static(name),
                )
                .map(str::to_owned)
            };
            match header("x-ms-continuation-nextpartitionkey") {
                Some(partition) => next = Some((partition, header("x-ms-continuation-nextrowkey"))),
                None => return Ok(ServiceTime::from_headers(response.headers())),
            }
        }
    }

    /// Insert Entity: fails with 409 `EntityAlreadyExists` when it exists. The response carries
    /// the entity (`Prefer: return-content`), so its Timestamp comes without another request.
    pub(crate) async fn insert(&self, body: &Value) -> Result<Version> {
        let mut request = self.request(self.url.clone(), Method::Post);
        request.insert_header("prefer", "return-content");
        set_json(&mut request, body);
        let response = self.rest.send(&mut request, &[201]).await?;
        let returned: Option<Entity> = serde_json::from_slice(response.body()).ok();
        let mut written = written_from(response.headers());
        if let Some(timestamp) = returned.as_ref().and_then(Entity::timestamp) {
            written.last_modified = Some(timestamp);
        }
        Ok(written)
    }

    /// Query Entity (one entity by its keys), or `None` when it does not exist.
    pub(crate) async fn get(&self, partition_key: &str, row_key: &str) -> Result<Option<Entity>> {
        let mut request = self.request(self.entity_url(partition_key, row_key), Method::Get);
        match self.rest.send(&mut request, &[200]).await {
            Ok(response) => serde_json::from_slice(response.body())
                .map(Some)
                .map_err(|e| Error::UnexpectedResponse {
                    message: format!("an entity is not the expected JSON: {e}"),
                }),
            Err(err) if err.error_code() == Some("ResourceNotFound") => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Whether the table exists (Query Tables for its name).
    pub(crate) async fn exists(&self) -> Result<bool> {
        let address = format!(
            "Tables({})",
            utf8_percent_encode(&super::keys::odata_literal(&self.name), KEY_ENCODE)
        );
        let mut request = self.request(self.at(&address), Method::Get);
        match self.rest.send(&mut request, &[200]).await {
            Ok(_) => Ok(true),
            Err(err) if err.status() == Some(404) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Update Entity (replace) with `If-Match: etag`, or Insert Or Replace Entity without one.
    /// The response has no body; the new ETag carries the new Timestamp.
    pub(crate) async fn replace(
        &self,
        partition_key: &str,
        row_key: &str,
        body: &Value,
        if_match: Option<&Etag>,
    ) -> Result<Version> {
        let mut request = self.request(self.entity_url(partition_key, row_key), Method::Put);
        if let Some(etag) = if_match {
            request.insert_header("if-match", etag.to_string());
        }
        set_json(&mut request, body);
        let response = self.rest.send(&mut request, &[204]).await?;
        Ok(written_from(response.headers()))
    }

    /// The address of one entity: `{table}(PartitionKey='…',RowKey='…')`.
    fn entity_url(&self, partition_key: &str, row_key: &str) -> Url {
        self.at(&format!(
            "{}(PartitionKey={},RowKey={})",
            self.name,
            utf8_percent_encode(&super::keys::odata_literal(partition_key), KEY_ENCODE),
            utf8_percent_encode(&super::keys::odata_literal(row_key), KEY_ENCODE),
        ))
    }

    /// A request with the service version and the OData headers every Table call carries.
    fn request(&self, url: Url, method: Method) -> Request {
        let mut request = self.rest.request(url, method);
        request.insert_header("accept", "application/json;odata=minimalmetadata");
        request.insert_header("dataserviceversion", "3.0");
        request.insert_header("maxdataserviceversion", "3.0;NetFx");
        request
    }
}

fn set_json(request: &mut Request, body: &Value) {
    request.insert_header("content-type", "application/json");
    request.set_body(azure_core::Bytes::from(body.to_string()));
}

fn written_from(response: &Headers) -> Version {
    let etag = headers::get(response, &azure_core::http::headers::ETAG).map(str::to_owned);
    Version {
        last_modified: etag.as_deref().and_then(entity::timestamp_of_etag),
        etag: etag.map(Etag::from),
    }
}
