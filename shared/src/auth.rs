//! Caller authentication: the CRM's HS256 JWT. The tenant comes from the
//! verified token and from nowhere else.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use lambda_http::http::{header::AUTHORIZATION, HeaderMap};
use serde::Deserialize;

use crate::error::ApiError;

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

#[derive(Deserialize)]
struct Claims {
    tenant: String,
    sub: String,
    role: String,
}

/// Verifies bearer tokens with the CRM's shared secret.
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier").finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the CRM JWT secret is unusable (empty)")]
pub struct UnusableSecret;

pub fn is_valid_tenant(tenant: &str) -> bool {
    (1..=64).contains(&tenant.len())
        && tenant.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl JwtVerifier {
    pub fn new(secret: &[u8], audience: &str) -> Result<Self, UnusableSecret> {
        let key = DecodingKey::from_secret(secret).map_err(|_| UnusableSecret)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "aud"]);
        validation.leeway = 0;
        Ok(Self { key, validation })
    }

    /// The caller named by the request's `Authorization: Bearer` token, or 401.
    pub fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let value = headers
            .get(AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("missing Authorization header; send `Authorization: Bearer <CRM JWT>`"))?;
        let value = value
            .to_str()
            .map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::unauthorized("Authorization must be `Bearer <CRM JWT>`"))?;
        self.verify(token)
    }

    pub fn verify(&self, token: &str) -> Result<Caller, ApiError> {
        use jsonwebtoken::errors::ErrorKind;
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(|e| {
            ApiError::unauthorized(match e.kind() {
                ErrorKind::ExpiredSignature => "the CRM token has expired",
                ErrorKind::InvalidAudience => "the CRM token is for another audience",
                ErrorKind::InvalidSignature => "the CRM token's signature does not verify",
                ErrorKind::InvalidAlgorithm => "the CRM token must be signed with HS256",
                ErrorKind::MissingRequiredClaim(_) => "the CRM token lacks a required claim (exp, aud)",
                _ => "the CRM token is malformed or lacks the tenant, sub and role claims",
            })
        })?;
        let Claims { tenant, sub, role } = data.claims;
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
    use jsonwebtoken::{EncodingKey, Header};
    use lambda_http::http::StatusCode;
    use serde_json::{json, Value};

    const SECRET: &[u8] = b"test-secret-test-secret-test-sec";

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }
    fn sign(claims: &Value, alg: Algorithm, secret: &[u8]) -> String {
        jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret).unwrap()).unwrap()
    }
    fn good() -> Value {
        json!({"tenant": "acme-1", "sub": "u1", "role": "admin", "aud": "docusign-connector", "exp": now() + 60})
    }
    fn verifier() -> JwtVerifier {
        JwtVerifier::new(SECRET, "docusign-connector").unwrap()
    }
    fn rejects(token: &str) -> String {
        let e = verifier().verify(token).unwrap_err();
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        e.message
    }

    #[test]
    fn a_good_token_names_the_caller() {
        let c = verifier().verify(&sign(&good(), Algorithm::HS256, SECRET)).unwrap();
        assert_eq!(c, Caller { tenant: "acme-1".into(), user: "u1".into(), role: Role::Admin });
        assert!(c.require_admin().is_ok());
    }

    #[test]
    fn a_user_is_forbidden_admin_actions() {
        let mut claims = good();
        claims["role"] = json!("user");
        let c = verifier().verify(&sign(&claims, Algorithm::HS256, SECRET)).unwrap();
        assert_eq!(c.require_admin().unwrap_err().status, StatusCode::FORBIDDEN);
    }

    #[test]
    fn bad_tokens_are_401() {
        let mut expired = good();
        expired["exp"] = json!(now() - 5);
        assert!(rejects(&sign(&expired, Algorithm::HS256, SECRET)).contains("expired"));
        let mut aud = good();
        aud["aud"] = json!("someone-else");
        assert!(rejects(&sign(&aud, Algorithm::HS256, SECRET)).contains("audience"));
        assert!(rejects(&sign(&good(), Algorithm::HS256, b"another-secret")).contains("signature"));
        assert!(rejects(&sign(&good(), Algorithm::HS512, SECRET)).contains("HS256"));
        for missing in ["exp", "aud", "tenant", "sub", "role"] {
            let mut c = good();
            c.as_object_mut().unwrap().remove(missing);
            rejects(&sign(&c, Algorithm::HS256, SECRET));
        }
        for tenant in ["", "a/b", "x".repeat(65).as_str(), "sp ace"] {
            let mut c = good();
            c["tenant"] = json!(tenant);
            rejects(&sign(&c, Algorithm::HS256, SECRET));
        }
        let mut role = good();
        role["role"] = json!("root");
        rejects(&sign(&role, Algorithm::HS256, SECRET));
        rejects("not.a.jwt");
        rejects("");
    }

    #[test]
    fn alg_none_is_refused() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(good().to_string());
        rejects(&format!("{header}.{body}."));
    }

    #[test]
    fn an_empty_secret_is_unusable() {
        assert!(JwtVerifier::new(b"", "a").is_err());
    }

    #[test]
    fn the_header_must_be_a_bearer_token() {
        let v = verifier();
        let mut h = HeaderMap::new();
        assert_eq!(v.caller(&h).unwrap_err().status, StatusCode::UNAUTHORIZED);
        h.insert(AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(v.caller(&h).unwrap_err().status, StatusCode::UNAUTHORIZED);
        h.insert(AUTHORIZATION, format!("Bearer {}", sign(&good(), Algorithm::HS256, SECRET)).parse().unwrap());
        assert_eq!(v.caller(&h).unwrap().tenant, "acme-1");
    }
}
