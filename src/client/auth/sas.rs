//! Appends a shared access signature to every request.

use crate::client::credential::SasToken;
use async_trait::async_trait;
use azure_core::http::{
    policies::{Policy, PolicyResult},
    Context, Request,
};
use std::{fmt, sync::Arc};

pub(crate) struct SasPolicy {
    sas: SasToken,
    /// The SAS's parameter names, decoded.
    names: Vec<String>,
    /// The SAS as this policy appends it, encoded once: every request of a store carries it.
    encoded: String,
}

impl SasPolicy {
    pub(crate) fn new(sas: SasToken) -> Self {
        let names = sas.pairs().map(|(name, _)| name).collect();
        let encoded = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(sas.pairs())
            .finish();
        Self {
            sas,
            names,
            encoded,
        }
    }
}

impl fmt::Debug for SasPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SasPolicy").field("sas", &self.sas).finish()
    }
}

#[async_trait]
impl Policy for SasPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let url = request.url_mut();
        match url.query().filter(|query| !query.is_empty()) {
            None => url.set_query(Some(&self.encoded)),
            Some(query) => {
                // A parameter the request already has (a URL a caller signed) is kept as is.
                let present: Vec<_> = url::form_urlencoded::parse(query.as_bytes())
                    .map(|(name, _)| name)
                    .collect();
                if present
                    .iter()
                    .all(|name| !self.names.iter().any(|n| n == name))
                {
                    let query = format!("{query}&{}", self.encoded);
                    url.set_query(Some(&query));
                } else {
                    let missing: Vec<(String, String)> = self
                        .sas
                        .pairs()
                        .filter(|(name, _)| !present.iter().any(|p| p == name))
                        .collect();
                    drop(present);
                    url.query_pairs_mut().extend_pairs(missing);
                }
            }
        }
        next[0].send(ctx, request, &next[1..]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::http::{AsyncRawResponse, Method, StatusCode, Url};
    use std::sync::Mutex;

    /// The end of the pipeline: keeps the URL it was sent.
    #[derive(Debug, Default)]
    struct Sent(Mutex<Option<Url>>);

    #[async_trait]
    impl Policy for Sent {
        async fn send(
            &self,
            _: &Context,
            request: &mut Request,
            _: &[Arc<dyn Policy>],
        ) -> PolicyResult {
            *self.0.lock().unwrap() = Some(request.url().clone());
            Ok(AsyncRawResponse::from_bytes(
                StatusCode::Ok,
                Default::default(),
                Vec::new(),
            ))
        }
    }

    fn signed(sas: &str, url: &str) -> String {
        let policy = SasPolicy::new(SasToken::new(sas).unwrap());
        let sent = Arc::new(Sent::default());
        let mut request = Request::new(Url::parse(url).unwrap(), Method::Get);
        let next: [Arc<dyn Policy>; 1] = [sent.clone()];
        futures::executor::block_on(policy.send(&Context::new(), &mut request, &next)).unwrap();
        let url = sent.0.lock().unwrap().take().unwrap();
        url.query().unwrap_or_default().to_owned()
    }

    #[test]
    fn appends_the_sas_encoded_once() {
        let sas = "sv=2022-11-02&se=2026-12-01T00:00:00Z&sig=a%2Bb%3D";
        assert_eq!(
            signed(sas, "http://h/c/b"),
            "sv=2022-11-02&se=2026-12-01T00%3A00%3A00Z&sig=a%2Bb%3D"
        );
        assert_eq!(
            signed(sas, "http://h/c?restype=container&comp=list"),
            "restype=container&comp=list&sv=2022-11-02&se=2026-12-01T00%3A00%3A00Z&sig=a%2Bb%3D"
        );
    }

    #[test]
    fn keeps_parameters_the_url_already_has() {
        assert_eq!(
            signed("sv=1&sig=new", "http://h/c/b?comp=metadata&sig=old"),
            "comp=metadata&sig=old&sv=1"
        );
    }
}
