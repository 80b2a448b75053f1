//! Pipeline policies that authorize requests with a [`StorageCredential`].
//!
//! The official blob crate only knows Entra ID tokens; Shared Key signing (Blob and Table
//! layouts) and SAS are ours.

mod sas;
mod shared_key;

use crate::client::credential::StorageCredential;
use crate::client::Service;
use crate::error::{Error, Result};
use azure_core::http::{
    policies::{auth::BearerTokenAuthorizationPolicy, Policy},
    Url,
};
use std::sync::Arc;

/// The scope of Azure Storage's data plane for Entra ID tokens.
const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";

/// The policy that authorizes every try of a request, or `None` for anonymous access. It must run
/// after every policy that adds headers, since Shared Key signs them.
pub(crate) fn policy_for(
    credential: &StorageCredential,
    endpoint: &Url,
    service: Service,
) -> Result<Option<Arc<dyn Policy>>> {
    Ok(match credential {
        StorageCredential::Token(token) => {
            // A bearer token sent in clear text is a stolen token; the official clients refuse too.
            if endpoint.scheme() != "https" {
                return Err(Error::invalid_input(format!(
                    "an Entra ID credential needs an https endpoint, not {}://",
                    endpoint.scheme()
                )));
            }
            Some(Arc::new(BearerTokenAuthorizationPolicy::new(
                token.clone(),
                vec![STORAGE_SCOPE],
            )))
        }
        StorageCredential::SharedKey(key) => Some(Arc::new(shared_key::SharedKeyPolicy::new(
            key.clone(),
            service,
        ))),
        StorageCredential::Sas(sas) => Some(Arc::new(sas::SasPolicy::new(sas.clone()))),
        StorageCredential::Anonymous => None,
    })
}
