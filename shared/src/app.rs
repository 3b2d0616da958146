//! The context every function builds once at cold start and lends to each
//! invocation: configuration and one adapter per port.

use std::sync::Arc;

use crate::auth::JwtVerifier;
use crate::cipher::TokenCipher;
use crate::clock::Clock;
use crate::config::{Config, ConfigError};
use crate::docusign::esign::EsignApi;
use crate::docusign::DocuSignAuth;
use crate::store::idempotency::IdempotencyStore;
use crate::store::TokenStore;

// Building the context needs the AWS adapters (the `aws` feature, on by
// default); the context itself and the use cases taking it do not.
#[cfg(feature = "aws")]
use {
    crate::cipher::{decrypt_config_secret, KmsCipher},
    crate::clock::SystemClock,
    crate::config::Needs,
    crate::store::dynamo::DynamoStore,
};
use {
    crate::config::SecretSource,
    crate::docusign::esign::HttpEsign,
    crate::docusign::oauth::{http_client, DocuSignOAuth, OAuthSettings},
    secrecy::{ExposeSecret, SecretString},
};

pub struct App {
    pub config: Config,
    /// Present for the CRM-facing functions.
    pub jwt: Option<JwtVerifier>,
    pub store: Arc<dyn TokenStore>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub cipher: Box<dyn TokenCipher>,
    pub docusign: Box<dyn DocuSignAuth>,
    pub esign: Box<dyn EsignApi>,
    pub clock: Arc<dyn Clock>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("configuration: {variable} could not be decrypted with KMS")]
    SecretDecrypt {
        variable: &'static str,
        #[source]
        source: crate::cipher::CipherError,
    },
    #[error("configuration: {variable} is unusable: {reason}")]
    Unusable { variable: &'static str, reason: String },
}

/// The adapters behind the ports: DynamoDB, KMS and the system clock in a
/// function ([`App::from_env`]); fakes such as
/// [`crate::store::memory::MemoryStore`] in tests.
pub struct Ports {
    pub store: Arc<dyn TokenStore>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub cipher: Box<dyn TokenCipher>,
    pub clock: Arc<dyn Clock>,
}

/// The configuration's secrets, resolved (decrypted where given as ciphertext).
pub struct Secrets {
    pub docusign: SecretString,
    /// The rotation's second client secret (`DOCUSIGN_SECRET_KEY_NEXT`).
    pub docusign_next: Option<SecretString>,
    pub crm_jwt: Option<SecretString>,
}

impl Secrets {
    /// The secrets the configuration holds in plain text (local runs,
    /// tests); one given as ciphertext is left out.
    pub fn plain(config: &Config) -> Self {
        let plain = |source: Option<&SecretSource>| match source {
            Some(SecretSource::Plain(secret)) => Some(secret.clone()),
            _ => None,
        };
        Self {
            docusign: plain(Some(&config.secret_key)).unwrap_or_else(|| SecretString::from(String::new())),
            docusign_next: plain(config.secret_key_next.as_ref()),
            crm_jwt: plain(config.crm_jwt_secret.as_ref()),
        }
    }
}

impl App {
    /// Builds the context from the configuration, its resolved secrets and
    /// the adapters behind the ports; the DocuSign adapters are HTTP.
    pub fn assemble(config: Config, secrets: Secrets, ports: Ports) -> Result<Self, StartupError> {
        let http = http_client();
        let jwt = crm_jwt_verifier(&config, secrets.crm_jwt.as_ref())?;
        let docusign = DocuSignOAuth::new(
            OAuthSettings {
                oauth_base_url: &config.oauth_base_url,
                integration_key: &config.integration_key,
                secret_key: secrets.docusign,
                secret_key_next: secrets.docusign_next,
                redirect_uri: config.redirect_uri.as_ref().map(|u| u.as_str()),
                scopes: &config.scopes,
            },
            http.clone(),
        )
        .map_err(|e| StartupError::Unusable { variable: "DOCUSIGN_OAUTH_BASE_URL", reason: e.to_string() })?;
        let Ports { store, idempotency, cipher, clock } = ports;
        Ok(Self {
            config,
            jwt,
            store,
            idempotency,
            cipher,
            docusign: Box::new(docusign),
            esign: Box::new(HttpEsign::new(http)),
            clock,
        })
    }
}

#[cfg(feature = "aws")]
impl Ports {
    /// DynamoDB for both stores, with the given cipher and clock.
    pub fn dynamo(store: DynamoStore, cipher: Box<dyn TokenCipher>, clock: Arc<dyn Clock>) -> Self {
        let store = Arc::new(store);
        Self { store: store.clone(), idempotency: store, cipher, clock }
    }
}

#[cfg(feature = "aws")]
impl App {
    /// Reads the environment, resolves its secrets with KMS and wires the
    /// AWS adapters: what every function does at cold start.
    pub async fn from_env(needs: Needs) -> Result<Self, StartupError> {
        let config = Config::from_env(needs)?;
        let aws = crate::aws::sdk_config().await;
        let kms = aws_sdk_kms::Client::new(&aws);
        let dynamo = aws_sdk_dynamodb::Client::new(&aws);
        let secret_key = if needs.docusign_secret {
            resolve(&kms, &config.secret_key, "DOCUSIGN_SECRET_KEY").await?
        } else {
            // This function never calls DocuSign's token endpoint: the secret
            // stays undecrypted (no KMS call at cold start, no permission).
            SecretString::from(String::new())
        };
        // The rotation's second secret, only where the first is decrypted. A
        // ciphertext carries the same encryption context as the first
        // (`connector_secret=DOCUSIGN_SECRET_KEY`): the same IAM condition
        // allows it, and at the swap it moves over unchanged.
        let secret_key_next = match (&config.secret_key_next, needs.docusign_secret) {
            (Some(source), true) => Some(resolve(&kms, source, "DOCUSIGN_SECRET_KEY").await.map_err(|e| match e {
                StartupError::Unusable { reason, .. } => {
                    StartupError::Unusable { variable: "DOCUSIGN_SECRET_KEY_NEXT", reason }
                }
                other => other,
            })?),
            _ => None,
        };
        let jwt_secret = match &config.crm_jwt_secret {
            Some(source) => Some(resolve(&kms, source, "CRM_JWT_SECRET").await?),
            None => None,
        };
        let ports = Ports::dynamo(
            DynamoStore::new(dynamo, config.token_table.clone()),
            Box::new(KmsCipher::new(kms, config.token_key_id.clone())),
            Arc::new(SystemClock),
        );
        let secrets = Secrets { docusign: secret_key, docusign_next: secret_key_next, crm_jwt: jwt_secret };
        Self::assemble(config, secrets, ports)
    }
}

/// The CRM callers' verifier: HS256 with the resolved secret and/or the
/// JWKS, or none when neither is configured (functions with no CRM route).
/// A secret shorter than 32 bytes stops the function, naming the variable it
/// came from.
fn crm_jwt_verifier(config: &Config, secret: Option<&SecretString>) -> Result<Option<JwtVerifier>, StartupError> {
    use crate::auth::JwtSettings;
    if secret.is_none() && config.crm_jwt_jwks_url.is_none() {
        return Ok(None);
    }
    let variable = match &config.crm_jwt_secret {
        Some(SecretSource::KmsCiphertext { variable, .. }) => variable,
        _ => "CRM_JWT_SECRET",
    };
    JwtVerifier::from_settings(JwtSettings {
        secret: secret.map(|s| s.expose_secret().as_bytes()),
        jwks_url: config.crm_jwt_jwks_url.as_ref(),
        audience: &config.crm_jwt_audience,
        issuer: config.crm_jwt_issuer.as_deref(),
    })
    .map(Some)
    .map_err(|e| StartupError::Unusable { variable, reason: e.to_string() })
}

#[cfg(feature = "aws")]
async fn resolve(
    kms: &aws_sdk_kms::Client,
    source: &SecretSource,
    plain_name: &'static str,
) -> Result<SecretString, StartupError> {
    match source {
        SecretSource::Plain(secret) => Ok(secret.clone()),
        SecretSource::KmsCiphertext { variable, ciphertext } => decrypt_config_secret(kms, plain_name, ciphertext)
            .await
            .map_err(|source| StartupError::SecretDecrypt { variable, source }),
    }
    .and_then(|s| {
        if s.expose_secret().is_empty() {
            Err(StartupError::Unusable { variable: plain_name, reason: "empty".into() })
        } else {
            Ok(s)
        }
    })
}
