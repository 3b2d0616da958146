//! The errors callers see. Every route answers failures as
//! `{"error": {"code", "message", ...}}`; the variant decides the status.

use lambda_http::http::StatusCode;

/// Any error, boxed, for the sources of the typed errors.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `a: b: c` from an error and its sources.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

use serde_json::{json, Map, Value};

use crate::cipher::CipherError;
use crate::store::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
    /// Extra members of the `error` object (e.g. DocuSign's error code).
    pub extra: Vec<(&'static str, String)>,
    /// What went wrong underneath, for the log only: `http` logs it once,
    /// where the answer is rendered. Never in the body.
    pub cause: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None, extra: Vec::new(), cause: None }
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    /// The one answer to every confirmation that cannot be accepted.
    pub fn consent_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "consent_not_found",
            "no consent awaits this confirmation for you; start connecting DocuSign again",
        )
    }
    pub fn method_not_allowed(allowed: &str) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", format!("this route accepts {allowed}"))
    }
    pub fn payload_too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }
    /// A 409 with a code of the caller's choosing.
    pub fn new_conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    pub fn not_connected() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "not_connected",
            "this tenant has no DocuSign connection; an admin must connect DocuSign first",
        )
    }
    pub fn reauth_required() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "reauth_required",
            "DocuSign no longer accepts this connection's grant; an admin must connect DocuSign again",
        )
    }
    /// The stored connection names a host no token may go to.
    pub fn connection_unusable() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "connection_unusable",
            "the stored DocuSign connection points at a host that is not an allowed DocuSign API host; nothing was sent; an admin must connect DocuSign again",
        )
    }
    pub fn idempotency_conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_conflict", message)
    }
    pub fn rate_limited(retry_after: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "DocuSign is rate limiting this account; retry after the indicated delay",
        );
        e.retry_after = Some(retry_after);
        e
    }
    pub fn docusign_error(code: impl Into<String>, message: impl Into<String>) -> Self {
        let mut e = Self::new(
            StatusCode::BAD_GATEWAY,
            "docusign_error",
            "DocuSign refused the request; see docusign_error_code and docusign_message",
        );
        e.extra = vec![("docusign_error_code", code.into()), ("docusign_message", message.into())];
        e
    }
    /// DocuSign, or an AWS service we depend on, could not be reached in time.
    /// A failure of our own dependencies (DynamoDB, KMS): 503, with the
    /// cause chain kept for the log.
    pub fn dependency(what: &str, error: &(dyn std::error::Error + 'static)) -> Self {
        let mut e =
            Self::upstream_unavailable("a storage or key service is temporarily unavailable; try again shortly", 2);
        e.cause = Some(format!("{what}: {}", chain(error)));
        e
    }
    pub fn upstream_unavailable(message: impl Into<String>, retry_after: u64) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, "upstream_unavailable", message);
        e.retry_after = Some(retry_after);
        e
    }

    pub fn body(&self) -> Value {
        let mut error = Map::new();
        error.insert("code".into(), json!(self.code));
        error.insert("message".into(), json!(self.message));
        for (k, v) in &self.extra {
            error.insert((*k).into(), json!(v));
        }
        json!({ "error": error })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::dependency("token store", &e)
    }
}

impl From<CipherError> for ApiError {
    fn from(e: CipherError) -> Self {
        Self::dependency("token cipher", &e)
    }
}
