//! Validation of envelope definitions (`POST .../envelopes` bodies).
//!
//! Kept apart from the handler so it can grow towards the full
//! `envelopeDefinition` schema.

use axum::http::StatusCode;
use serde_json::Value;

/// Longest `emailSubject` DocuSign accepts.
pub(crate) const MAX_EMAIL_SUBJECT_CHARS: usize = 100;

/// An eSignature error answer: `{"errorCode", "message"}` with a status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error_code}: {message}")]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub error_code: &'static str,
    pub message: String,
}

impl ApiError {
    pub(crate) fn invalid_body(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            error_code: "INVALID_REQUEST_BODY",
            message: message.into(),
        }
    }
}

/// Parses and checks an envelope definition.
pub(crate) fn parse_envelope_definition(body: &[u8]) -> Result<Value, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| {
        ApiError::invalid_body("The request body is missing or improperly formatted. Unable to parse the request body as JSON.")
    })?;
    validate_envelope_definition(&value)?;
    Ok(value)
}

pub(crate) fn validate_envelope_definition(value: &Value) -> Result<(), ApiError> {
    let Some(object) = value.as_object() else {
        return Err(ApiError::invalid_body(
            "The request body is missing or improperly formatted. The envelope definition must be a JSON object.",
        ));
    };
    if let Some(subject) = object.get("emailSubject") {
        let Some(subject) = subject.as_str() else {
            return Err(ApiError::invalid_body("The request body is missing or improperly formatted. emailSubject must be a string."));
        };
        if subject.chars().count() > MAX_EMAIL_SUBJECT_CHARS {
            return Err(ApiError::invalid_body(format!(
                "The request body is missing or improperly formatted. The email subject exceeds the maximum length of {MAX_EMAIL_SUBJECT_CHARS} characters."
            )));
        }
    }
    if let Some(status) = object.get("status") {
        if !status.is_string() {
            return Err(ApiError::invalid_body(
                "The request body is missing or improperly formatted. status must be a string.",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subject_length() {
        let ok = json!({ "emailSubject": "é".repeat(100) });
        assert!(validate_envelope_definition(&ok).is_ok());
        let long = json!({ "emailSubject": "x".repeat(101) });
        assert_eq!(
            validate_envelope_definition(&long).unwrap_err().error_code,
            "INVALID_REQUEST_BODY"
        );
    }

    #[test]
    fn not_an_object() {
        assert!(parse_envelope_definition(b"[1,2]").is_err());
        assert!(parse_envelope_definition(b"nope").is_err());
        assert!(parse_envelope_definition(b"{}").is_ok());
    }
}
