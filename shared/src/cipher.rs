//! Token encryption. Every token value is stored only as KMS ciphertext under
//! an encryption context naming the tenant and the record, so a ciphertext
//! copied into another tenant's record does not decrypt.

use async_trait::async_trait;
#[cfg(feature = "aws")]
use aws_sdk_kms::primitives::Blob;
#[cfg(feature = "aws")]
use secrecy::ExposeSecret;
use secrecy::SecretString;

pub use crate::error::BoxError;

/// What a ciphertext is, as the KMS encryption context names it. The
/// values are fixed forever: every stored token was encrypted under them, so
/// renaming a DynamoDB key must never change them (a test pins them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record {
    /// The access token (`docusign_auth` record, and proposals).
    AccessToken,
    /// The refresh token (`docusign_refresh` record, and proposals).
    RefreshToken,
    /// A pending consent's PKCE verifier.
    ConsentVerifier,
}

impl Record {
    /// The `record` value of the encryption context.
    pub fn context_value(self) -> &'static str {
        match self {
            Self::AccessToken => "docusign_auth",
            Self::RefreshToken => "docusign_refresh",
            Self::ConsentVerifier => "consent",
        }
    }
}

/// Where a ciphertext belongs; becomes the KMS encryption context
/// `{tenant_id: <tenant>, record: <record>}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding<'a> {
    pub tenant: &'a str,
    pub record: Record,
}

#[derive(Debug, thiserror::Error)]
pub enum CipherError {
    #[error("KMS could not encrypt")]
    Encrypt(#[source] BoxError),
    #[error("KMS could not decrypt (wrong record, tenant or key, or KMS unavailable)")]
    Decrypt(#[source] BoxError),
    #[error("decrypted value is not UTF-8")]
    NotUtf8,
}

#[async_trait]
pub trait TokenCipher: Send + Sync {
    async fn encrypt(&self, binding: &Binding<'_>, plaintext: &SecretString) -> Result<Vec<u8>, CipherError>;
    async fn decrypt(&self, binding: &Binding<'_>, ciphertext: &[u8]) -> Result<SecretString, CipherError>;
}

/// AWS KMS, with `TOKEN_KEY_ID`.
#[cfg(feature = "aws")]
pub struct KmsCipher {
    client: aws_sdk_kms::Client,
    key_id: String,
}

#[cfg(feature = "aws")]
impl KmsCipher {
    pub fn new(client: aws_sdk_kms::Client, key_id: impl Into<String>) -> Self {
        Self { client, key_id: key_id.into() }
    }
}

#[cfg(feature = "aws")]
#[async_trait]
impl TokenCipher for KmsCipher {
    async fn encrypt(&self, binding: &Binding<'_>, plaintext: &SecretString) -> Result<Vec<u8>, CipherError> {
        let out = self
            .client
            .encrypt()
            .key_id(&self.key_id)
            .plaintext(Blob::new(plaintext.expose_secret().as_bytes()))
            .encryption_context("tenant_id", binding.tenant)
            .encryption_context("record", binding.record.context_value())
            .send()
            .await
            .map_err(|e| CipherError::Encrypt(Box::new(e)))?;
        out.ciphertext_blob
            .map(Blob::into_inner)
            .ok_or_else(|| CipherError::Encrypt("KMS returned no ciphertext".into()))
    }

    async fn decrypt(&self, binding: &Binding<'_>, ciphertext: &[u8]) -> Result<SecretString, CipherError> {
        let out = self
            .client
            .decrypt()
            // Named, so KMS refuses a ciphertext made under any other key.
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(ciphertext))
            .encryption_context("tenant_id", binding.tenant)
            .encryption_context("record", binding.record.context_value())
            .send()
            .await
            .map_err(|e| CipherError::Decrypt(Box::new(e)))?;
        plaintext(out)
    }
}

#[cfg(feature = "aws")]
fn plaintext(out: aws_sdk_kms::operation::decrypt::DecryptOutput) -> Result<SecretString, CipherError> {
    let plain =
        out.plaintext.map(Blob::into_inner).ok_or_else(|| CipherError::Decrypt("KMS returned no plaintext".into()))?;
    String::from_utf8(plain).map(SecretString::from).map_err(|_| CipherError::NotUtf8)
}

/// The encryption-context key of configuration secrets: encrypt them with
/// `--encryption-context connector_secret=DOCUSIGN_SECRET_KEY` (or
/// `CRM_JWT_SECRET`), so IAM can allow each function only the secrets it uses.
pub const CONFIG_SECRET_CONTEXT: &str = "connector_secret";

/// Decrypts a configuration secret given as KMS ciphertext.
#[cfg(feature = "aws")]
pub async fn decrypt_config_secret(
    client: &aws_sdk_kms::Client,
    name: &str,
    ciphertext: &[u8],
) -> Result<SecretString, CipherError> {
    let out = client
        .decrypt()
        .ciphertext_blob(Blob::new(ciphertext))
        .encryption_context(CONFIG_SECRET_CONTEXT, name)
        .send()
        .await
        .map_err(|e| CipherError::Decrypt(Box::new(e)))?;
    plaintext(out)
}

#[cfg(test)]
mod record_tests {
    use super::Record;

    #[test]
    fn the_encryption_context_values_never_change() {
        // Every stored ciphertext depends on these exact strings.
        assert_eq!(Record::AccessToken.context_value(), "docusign_auth");
        assert_eq!(Record::RefreshToken.context_value(), "docusign_refresh");
        assert_eq!(Record::ConsentVerifier.context_value(), "consent");
    }
}
