//! The context every function builds once at cold start and lends to each
//! invocation: configuration and one adapter per port.

use std::sync::Arc;

use crate::auth::JwtVerifier;
use crate::cipher::TokenCipher;
use crate::clock::Clock;
use crate::config::{Config, ConfigError};
use crate::docusign::esign::EsignApi;
use crate::docusign::DocuSignAuth;
use crate::envelope::idempotency::IdempotencyStore;
use crate::store::TokenStore;

// Building the context needs the AWS adapters (the `aws` feature, on by
// default); the context itself and the use cases taking it do not.
#[cfg(feature = "aws")]
use {
    crate::cipher::{decrypt_config_secret, KmsCipher},
    crate::clock::SystemClock,
    crate::config::{Needs, SecretSource},
    crate::docusign::esign::HttpEsign,
    crate::docusign::oauth::{http_client, DocuSignOAuth, OAuthSettings},
    crate::store::dynamo::DynamoStore,
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

#[cfg(feature = "aws")]
impl App {
    /// Reads the environment, builds the AWS and DocuSign clients.
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
        let jwt_secret = match &config.crm_jwt_secret {
            Some(source) => Some(resolve(&kms, source, "CRM_JWT_SECRET").await?),
            None => None,
        };
        let store = DynamoStore::new(dynamo, config.token_table.clone());
        let cipher = KmsCipher::new(kms, config.token_key_id.clone());
        Self::assemble(config, secret_key, jwt_secret, Arc::new(store), Box::new(cipher), Arc::new(SystemClock))
    }

    /// Builds the context from resolved secrets and the given store, cipher and clock.
    pub fn assemble(
        config: Config,
        secret_key: SecretString,
        jwt_secret: Option<SecretString>,
        dynamo: Arc<DynamoStore>,
        cipher: Box<dyn TokenCipher>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        let http = http_client();
        let jwt = jwt_secret
            .map(|s| JwtVerifier::new(s.expose_secret().as_bytes(), &config.crm_jwt_audience))
            .transpose()
            .map_err(|e| StartupError::Unusable { variable: "CRM_JWT_SECRET", reason: e.to_string() })?;
        let docusign = DocuSignOAuth::new(
            OAuthSettings {
                oauth_base_url: &config.oauth_base_url,
                integration_key: &config.integration_key,
                secret_key,
                redirect_uri: config.redirect_uri.as_ref().map(|u| u.as_str()),
                scopes: &config.scopes,
            },
            http.clone(),
        )
        .map_err(|e| StartupError::Unusable { variable: "DOCUSIGN_OAUTH_BASE_URL", reason: e.to_string() })?;
        Ok(Self {
            config,
            jwt,
            store: dynamo.clone(),
            idempotency: dynamo,
            cipher,
            docusign: Box::new(docusign),
            esign: Box::new(HttpEsign::new(http)),
            clock,
        })
    }
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
