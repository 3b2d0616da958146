//! DocuSign: the OAuth port the use cases need, and its HTTP adapter.

use async_trait::async_trait;
use oauth2::PkceCodeChallenge;
use secrecy::SecretString;

use crate::error::BoxError;

pub mod environment;
pub mod esign;
pub mod hosts;
pub mod oauth;
pub mod wire;

/// DocuSign's documented access-token life (8 hours): the lifetime used when
/// `expires_in` is missing or unusable.
pub const DEFAULT_ACCESS_SECS: u64 = 8 * 3600;
/// DocuSign does not state the refresh token's life; it documents 30 days.
pub const REFRESH_TOKEN_DAYS: i64 = 30;
/// The shortest access-token life believed: 1 second.
pub const MIN_ACCESS_SECS: u64 = 1;
/// The longest access-token life believed: 30 days. Anything longer is taken
/// for a fault and replaced by [`DEFAULT_ACCESS_SECS`].
pub const MAX_ACCESS_SECS: u64 = 30 * 24 * 3600;

/// Tokens from DocuSign's token endpoint.
#[derive(Debug)]
pub struct TokenGrant {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    /// How long the access token lives, always within
    /// [`MIN_ACCESS_SECS`]`..=`[`MAX_ACCESS_SECS`]: `now + lifetime` never
    /// overflows. From `expires_in`, read leniently
    /// ([`wire::access_lifetime`]); [`DEFAULT_ACCESS_SECS`] when it is
    /// missing, not a number, not positive or absurd.
    pub lifetime: chrono::Duration,
}

/// `/oauth/userinfo`, reduced to what the connector uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    pub sub: String,
    pub name: String,
    pub email: String,
    pub accounts: Vec<Account>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub account_id: String,
    pub account_name: String,
    pub base_uri: String,
    pub is_default: bool,
}

impl UserInfo {
    /// The account a connection acts for: the pinned one if configured,
    /// else the user's default.
    pub fn choose_account(&self, pinned: Option<&str>) -> Option<&Account> {
        match pinned {
            Some(id) => self.accounts.iter().find(|a| a.account_id == id),
            None => self.accounts.iter().find(|a| a.is_default),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// DocuSign answered with an OAuth error (`invalid_grant`, ...).
    #[error("DocuSign refused: {code}")]
    Rejected { code: String, description: Option<String> },
    /// DocuSign answered 5xx or 429.
    #[error("DocuSign unavailable (HTTP {status})")]
    Unavailable { status: u16, retry_after: Option<u64> },
    /// No answer: connection refused or reset, timeout.
    #[error("DocuSign could not be reached")]
    Network(#[source] BoxError),
    /// An answer we cannot use (never quoted: it may hold a token).
    #[error("DocuSign's answer was unusable: {0}")]
    InvalidResponse(&'static str),
}

impl OAuthError {
    /// The grant itself is no longer good: only a new consent helps.
    pub fn needs_reauth(&self) -> bool {
        match self {
            Self::Rejected { code, description } => {
                matches!(code.as_str(), "invalid_grant" | "consent_required")
                    || description.as_deref().is_some_and(|d| d.contains("consent_required"))
            }
            _ => false,
        }
    }

    /// DocuSign refused *our client* (`invalid_client`: the secret is wrong or
    /// was removed; `unauthorized_client`: the integration key may not use
    /// this grant). Our configuration, not the tenant's consent: client
    /// authentication comes before the grant is looked at (RFC 6749 §5.2),
    /// so the code or refresh token presented is not spent.
    pub fn client_rejected(&self) -> bool {
        matches!(self, Self::Rejected { code, .. } if matches!(code.as_str(), "invalid_client" | "unauthorized_client"))
    }

    /// A short class for logs and bookkeeping; never holds a secret.
    pub fn class(&self) -> String {
        match self {
            Self::Rejected { code, .. } => sanitize_code(code),
            Self::Unavailable { status, .. } => format!("upstream_{status}"),
            Self::Network(_) => "network".to_owned(),
            Self::InvalidResponse(_) => "invalid_response".to_owned(),
        }
    }
}

/// Keeps an error code printable and bounded whatever the server sent.
pub fn sanitize_code(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(64).collect()
}

/// DocuSign's account server: consent URL, token endpoint, userinfo.
#[async_trait]
pub trait DocuSignAuth: Send + Sync {
    fn authorize_url(&self, state: &str, challenge: &PkceCodeChallenge) -> String;
    async fn exchange_code(&self, code: &str, verifier: &SecretString) -> Result<TokenGrant, OAuthError>;
    async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenGrant, OAuthError>;
    async fn userinfo(&self, access_token: &SecretString) -> Result<UserInfo, OAuthError>;
}
