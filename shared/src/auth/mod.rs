//! Caller authentication: the CRM's bearer JWT, HS256 with the shared secret
//! (`CRM_JWT_SECRET`) and/or RS256/ES256 with a key of the identity
//! provider's JWKS (`CRM_JWT_JWKS_URL`, chosen by `kid`). The tenant comes
//! from the verified token and from nowhere else.
//!
//! Which key verifies a token is decided by its `alg` before anything else:
//! HS256 only ever meets the shared secret, RS256/ES256 only a JWKS key of
//! that type. So a token "signed" with HMAC over a JWKS public key (algorithm
//! confusion) fails, `none` is never accepted, and HS256 is refused outright
//! when only a JWKS is configured.

mod jwks;

use std::sync::Arc;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use lambda_http::http::{header::AUTHORIZATION, HeaderMap};
use serde::Deserialize;
use url::Url;

use crate::error::ApiError;
use jwks::{Jwks, JwksError};

/// The shortest HS256 secret accepted: a shorter shared secret can be
/// guessed, and whoever guesses it signs an admin token for any tenant.
pub const MIN_SECRET_BYTES: usize = 32;

/// Clock drift allowed between the CRM (or its identity provider) and
/// Lambda when judging `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 60;

/// Tokens longer than this are refused before any parsing.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Admin,
    User,
}

/// Who is calling, as the verified token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub tenant: String,
    pub user: String,
    pub role: Role,
}

impl Caller {
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Admin => Ok(()),
            Role::User => Err(ApiError::forbidden("this action needs the CRM `admin` role")),
        }
    }
}

pub fn is_valid_tenant(tenant: &str) -> bool {
    (1..=64).contains(&tenant.len()) && tenant.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// How the verifier is configured (from `Config`).
#[derive(Clone, Copy, Default)]
pub struct JwtSettings<'a> {
    /// The HS256 shared secret (`CRM_JWT_SECRET`), at least [`MIN_SECRET_BYTES`].
    pub secret: Option<&'a [u8]>,
    /// The identity provider's JWKS (`CRM_JWT_JWKS_URL`), for RS256/ES256.
    pub jwks_url: Option<&'a Url>,
    /// The required `aud` (`CRM_JWT_AUDIENCE`).
    pub audience: &'a str,
    /// The required `iss` (`CRM_JWT_ISSUER`), if any.
    pub issuer: Option<&'a str>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtSetupError {
    #[error(
        "the secret is {0} bytes long and must be at least {MIN_SECRET_BYTES} bytes \
         (whoever guesses a short HS256 secret can sign an admin token for any tenant)"
    )]
    ShortSecret(usize),
    #[error("neither an HS256 secret nor a JWKS URL is configured")]
    NoKeys,
}

/// Verifies the CRM's bearer tokens.
pub struct JwtVerifier {
    /// HS256 with the shared secret.
    secret: Option<Arc<DecodingKey>>,
    /// RS256/ES256 with the JWKS's keys, fetched at first use.
    jwks: Option<Jwks>,
    audience: String,
    issuer: Option<String>,
}

/// Never prints a key: `DecodingKey`'s own `Debug` would print the secret.
impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("hs256", &self.secret.is_some())
            .field("jwks", &self.jwks)
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .finish()
    }
}

/// The claims this connector reads; `exp`, `nbf`, `aud` and `iss` are
/// checked by `jsonwebtoken`'s validation.
#[derive(Deserialize)]
struct Claims {
    tenant: Option<String>,
    sub: Option<String>,
    role: Option<String>,
}

/// The token's header, read before `jsonwebtoken` sees it: to say exactly
/// which algorithm was refused (its own parser rejects `none` as malformed
/// JSON) and to find the key.
#[derive(Deserialize)]
struct RawHeader {
    alg: Option<serde_json::Value>,
    kid: Option<String>,
}

impl JwtVerifier {
    /// An HS256-only verifier with the shared secret.
    pub fn new(secret: &[u8], audience: &str) -> Result<Self, JwtSetupError> {
        Self::from_settings(JwtSettings { secret: Some(secret), audience, ..JwtSettings::default() })
    }

    pub fn from_settings(settings: JwtSettings<'_>) -> Result<Self, JwtSetupError> {
        let secret = match settings.secret {
            Some(s) if s.len() < MIN_SECRET_BYTES => return Err(JwtSetupError::ShortSecret(s.len())),
            Some(s) => Some(Arc::new(DecodingKey::from_secret(s).map_err(|_| JwtSetupError::ShortSecret(0))?)),
            None => None,
        };
        let jwks = settings.jwks_url.map(|url| Jwks::new(url.clone()));
        if secret.is_none() && jwks.is_none() {
            return Err(JwtSetupError::NoKeys);
        }
        Ok(Self { secret, jwks, audience: settings.audience.to_owned(), issuer: settings.issuer.map(str::to_owned) })
    }

    /// The caller named by the request's `Authorization: Bearer` token, or 401.
    pub async fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let value = headers.get(AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthorized("missing Authorization header; send `Authorization: Bearer <CRM JWT>`")
        })?;
        let value = value.to_str().map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::unauthorized("Authorization must be `Bearer <CRM JWT>`"))?;
        self.verify(token).await
    }

    /// The caller a token names, or 401 saying what is wrong with it (503
    /// when the JWKS is needed and cannot be fetched).
    ///
    /// An HS256-only verifier never waits: the future is ready at its first poll.
    pub async fn verify(&self, token: &str) -> Result<Caller, ApiError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(ApiError::unauthorized("the CRM token is too long"));
        }
        let header = read_header(token)?;
        let alg = match &header.alg {
            Some(serde_json::Value::String(alg)) => alg.as_str(),
            _ => return Err(ApiError::unauthorized("the CRM token's header has no `alg`")),
        };
        let (algorithm, key) = match alg {
            "HS256" => match &self.secret {
                Some(key) => (Algorithm::HS256, key.clone()),
                None => return Err(self.refused_algorithm(alg)),
            },
            "RS256" | "ES256" => {
                let Some(jwks) = &self.jwks else { return Err(self.refused_algorithm(alg)) };
                let algorithm = if alg == "RS256" { Algorithm::RS256 } else { Algorithm::ES256 };
                let kid = header.kid.as_deref().filter(|k| !k.is_empty()).ok_or_else(|| {
                    ApiError::unauthorized(format!("the CRM token is signed with {alg} but names no key (`kid`)"))
                })?;
                let key = jwks.key(kid).await.map_err(|e| jwks_error(&e))?;
                if key.algorithm != algorithm {
                    return Err(ApiError::unauthorized(format!(
                        "the CRM token is signed with {alg}, but the JWKS key it names (`kid`) is a {:?} key",
                        key.algorithm
                    )));
                }
                (algorithm, key.key)
            }
            _ => return Err(self.refused_algorithm(alg)),
        };
        let data = jsonwebtoken::decode::<Claims>(token, &key, &self.validation(algorithm))
            .map_err(|e| ApiError::unauthorized(rejection(e.kind())))?;
        let Claims { tenant, sub, role } = data.claims;
        let missing = |claim: &str| ApiError::unauthorized(format!("the CRM token lacks the required `{claim}` claim"));
        let tenant = tenant.ok_or_else(|| missing("tenant"))?;
        let sub = sub.ok_or_else(|| missing("sub"))?;
        let role = role.ok_or_else(|| missing("role"))?;
        if !is_valid_tenant(&tenant) {
            return Err(ApiError::unauthorized("the CRM token's tenant must match [A-Za-z0-9_-]{1,64}"));
        }
        if sub.is_empty() {
            return Err(ApiError::unauthorized("the CRM token's sub is empty"));
        }
        let role = match role.as_str() {
            "admin" => Role::Admin,
            "user" => Role::User,
            _ => return Err(ApiError::unauthorized("the CRM token's role must be `admin` or `user`")),
        };
        Ok(Caller { tenant, user: sub, role })
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.set_audience(&[&self.audience]);
        let mut required = vec!["exp", "aud"];
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        validation
    }

    fn accepted(&self) -> &'static str {
        match (self.secret.is_some(), self.jwks.is_some()) {
            (true, true) => "HS256, RS256 or ES256",
            (false, true) => "RS256 or ES256",
            _ => "HS256",
        }
    }

    fn refused_algorithm(&self, alg: &str) -> ApiError {
        let accepted = self.accepted();
        ApiError::unauthorized(if alg.eq_ignore_ascii_case("none") {
            format!("the CRM token is unsigned (`alg: none`), which is never accepted; sign it with {accepted}")
        } else if (1..=10).contains(&alg.len()) && alg.bytes().all(|b| b.is_ascii_alphanumeric()) {
            format!("the CRM token is signed with {alg}, which is not accepted here; sign it with {accepted}")
        } else {
            format!("the CRM token's algorithm is not accepted here; sign it with {accepted}")
        })
    }
}

fn read_header(token: &str) -> Result<RawHeader, ApiError> {
    let malformed = || {
        ApiError::unauthorized("the CRM token is malformed: expected a JWT (three base64url parts separated by dots)")
    };
    let mut parts = token.split('.');
    let header = parts.next().ok_or_else(malformed)?;
    if parts.count() != 2 {
        return Err(malformed());
    }
    let bytes = URL_SAFE_NO_PAD.decode(header).map_err(|_| malformed())?;
    serde_json::from_slice(&bytes).map_err(|_| ApiError::unauthorized("the CRM token's header is not a JSON object"))
}

fn rejection(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => {
            format!("the CRM token has expired (`exp` is more than {LEEWAY_SECS} s in the past)")
        }
        ErrorKind::ImmatureSignature => {
            format!("the CRM token is not valid yet (`nbf` is more than {LEEWAY_SECS} s in the future)")
        }
        ErrorKind::InvalidAudience => "the CRM token is for another audience (`aud`)".into(),
        ErrorKind::InvalidIssuer => "the CRM token comes from another issuer (`iss`)".into(),
        ErrorKind::InvalidSignature => "the CRM token's signature does not verify".into(),
        ErrorKind::InvalidAlgorithm => "the CRM token's algorithm is not accepted here".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the CRM token lacks the required `{claim}` claim"),
        ErrorKind::InvalidClaimFormat(claim) => format!("the CRM token's `{claim}` claim is malformed"),
        ErrorKind::InvalidToken => "the CRM token is malformed".into(),
        // A signature of the wrong length or encoding for the key.
        ErrorKind::InvalidKeyFormat | ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidRsaKey(_) => {
            "the CRM token's signature does not verify".into()
        }
        _ => "the CRM token is malformed or lacks the tenant, sub and role claims".into(),
    }
}

fn jwks_error(error: &JwksError) -> ApiError {
    match error {
        JwksError::UnknownKid => {
            ApiError::unauthorized("the CRM token names a key (`kid`) that is not in the identity provider's JWKS")
        }
        JwksError::Unavailable => ApiError::upstream_unavailable(
            "the CRM identity provider's signing keys (JWKS) could not be fetched; retry shortly",
            5,
        ),
    }
}

#[cfg(test)]
mod tests;
