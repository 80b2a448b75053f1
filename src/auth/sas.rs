//! Appends a shared access signature to every request.

use crate::credential::SasToken;
use async_trait::async_trait;
use azure_core::http::{
    policies::{Policy, PolicyResult},
    Context, Request,
};
use std::{fmt, sync::Arc};

pub(crate) struct SasPolicy {
    sas: SasToken,
}

impl SasPolicy {
    pub(crate) fn new(sas: SasToken) -> Self {
        Self { sas }
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
        // Retries send the same request again: only add what is not there yet.
        let present: Vec<String> = request
            .url()
            .query_pairs()
            .map(|(name, _)| name.into_owned())
            .collect();
        let missing: Vec<(String, String)> = self
            .sas
            .pairs()
            .filter(|(name, _)| !present.contains(name))
            .collect();
        if !missing.is_empty() {
            request.url_mut().query_pairs_mut().extend_pairs(missing);
        }
        next[0].send(ctx, request, &next[1..]).await
    }
}
