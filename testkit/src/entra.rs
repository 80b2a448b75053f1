//! Entra ID against Azurite: a token credential that mints the JWT-shaped tokens Azurite's
//! `--oauth basic` accepts (it checks the audience, issuer and lifetime, not a signature), and a
//! transport that trusts the throwaway CA `scripts/azurite.sh` made for its HTTPS services.
//!
//! Against Azure, use a real credential from `azure_identity` instead; nothing else changes.

use eventhub_checkpointstore::azure_core::{
    self,
    base64::encode_url_safe,
    credentials::{AccessToken, TokenCredential, TokenRequestOptions},
    http::{ClientOptions, Transport},
    time::{Duration, OffsetDateTime},
};
use std::sync::{Arc, Mutex};

/// The audience Azure Storage expects in a token.
pub const STORAGE_AUDIENCE: &str = "https://storage.azure.com";

/// The HTTPS + OAuth Azurite that `scripts/azurite.sh` started: (blob URL, table URL, CA file).
pub fn https_azurite() -> (String, String, String) {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!(
                "{name} is not set. Run the tests with scripts/test.sh, which starts Azurite over \
                 HTTPS with OAuth beside the plain one."
            )
        })
    };
    (
        var("AZURITE_HTTPS_BLOB_URL"),
        var("AZURITE_HTTPS_TABLE_URL"),
        var("AZURITE_CA_CERT"),
    )
}

/// Client options whose transport trusts the CA in the PEM file `ca_file` (besides the system's
/// roots), as for a private endpoint or Azure Stack Hub with a private CA.
pub fn trusting(ca_file: &str) -> ClientOptions {
    let pem = std::fs::read(ca_file).unwrap_or_else(|e| panic!("cannot read {ca_file}: {e}"));
    let certificate = reqwest::Certificate::from_pem(&pem).expect("a PEM certificate");
    let client = reqwest::Client::builder()
        .add_root_certificate(certificate)
        .build()
        .expect("an HTTP client");
    ClientOptions {
        transport: Some(Transport::new(Arc::new(client))),
        ..Default::default()
    }
}

/// Mints a new JWT-shaped token at every call, valid for `lifetime` from then, for `audience`;
/// records the scopes it was asked for.
#[derive(Debug)]
pub struct AzuriteTokenCredential {
    audience: String,
    lifetime: Duration,
    calls: Mutex<Vec<Vec<String>>>,
}

impl AzuriteTokenCredential {
    /// Tokens for Azure Storage valid for an hour.
    pub fn new() -> Arc<Self> {
        Self::with(STORAGE_AUDIENCE, Duration::hours(1))
    }

    /// Tokens for `audience`, valid for `lifetime` (negative: already expired).
    pub fn with(audience: &str, lifetime: Duration) -> Arc<Self> {
        Arc::new(Self {
            audience: audience.to_owned(),
            lifetime,
            calls: Mutex::new(Vec::new()),
        })
    }

    /// How many tokens it has minted.
    pub fn calls(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    /// The scopes of each call.
    pub fn scopes(&self) -> Vec<Vec<String>> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl TokenCredential for AzuriteTokenCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        self.calls
            .lock()
            .unwrap()
            .push(scopes.iter().map(|s| s.to_string()).collect());
        let now = OffsetDateTime::now_utc();
        let expires_on = now + self.lifetime;
        let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
        let header = encode_url_safe(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = serde_json::json!({
            "aud": self.audience,
            "iss": format!("https://sts.windows.net/{tenant}/"),
            "tid": tenant,
            "oid": "00000000-0000-0000-0000-000000000001",
            "iat": (now - Duration::minutes(1)).unix_timestamp(),
            "nbf": (now - Duration::minutes(1)).unix_timestamp(),
            "exp": expires_on.unix_timestamp(),
        });
        let payload = encode_url_safe(claims.to_string());
        // Azurite does not check the signature; Azure would.
        let token = format!("{header}.{payload}.{}", encode_url_safe(b"unsigned"));
        Ok(AccessToken::new(token, expires_on))
    }
}
