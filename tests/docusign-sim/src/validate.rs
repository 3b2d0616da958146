//! Validation of envelope definitions (`POST .../envelopes` bodies).
//!
//! Every body is checked against DocuSign's published OpenAPI description
//! (`fixtures/esignature-v2.1-create-envelope.swagger.json`, the create
//! envelope operation and every definition it references), recursively from
//! `envelopeDefinition`:
//!
//! - a property the definition does not declare -> `INVALID_REQUEST_BODY`
//!   `<path>: unknown property`;
//! - a value of the wrong JSON type -> `INVALID_REQUEST_BODY` naming the path.
//!   `string` must be a JSON string, `array` an array, `object`/`$ref` an
//!   object; `boolean` accepts `true`/`false` or the strings `"true"`/`"false"`
//!   (any case), `integer`/`number` a JSON number or a numeric string. `null`
//!   is accepted anywhere (DocuSign ignores nulls). A `$ref` to a definition
//!   the file lacks (`offlineAttributes`), or a definition without
//!   `properties`, accepts any object.
//!
//! Then `emailSubject` at most 100 characters, each
//! `documents[].documentBase64` decodes (standard alphabet, padding optional,
//! whitespace ignored as .NET does), and an envelope with `status: "sent"`
//! has documents, a `templateId` or `compositeTemplates`
//! (`ENVELOPE_IS_INCOMPLETE` otherwise).

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::http::StatusCode;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use serde_json::{Map, Value};

/// Longest `emailSubject` DocuSign accepts.
pub(crate) const MAX_EMAIL_SUBJECT_CHARS: usize = 100;

/// DocuSign's OpenAPI description of the create envelope operation.
const SWAGGER: &str = include_str!("../fixtures/esignature-v2.1-create-envelope.swagger.json");

/// The definition a create envelope body follows.
const ROOT_DEFINITION: &str = "envelopeDefinition";

const INVALID_PARAMETER: &str = "The request contained at least one invalid parameter.";

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
        ApiError { status: StatusCode::BAD_REQUEST, error_code: "INVALID_REQUEST_BODY", message: message.into() }
    }

    /// `INVALID_REQUEST_BODY` for one parameter: `<path>: <what>`.
    fn invalid_parameter(path: &str, what: impl std::fmt::Display) -> ApiError {
        ApiError::invalid_body(format!("{INVALID_PARAMETER} {path}: {what}"))
    }

    fn incomplete() -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            error_code: "ENVELOPE_IS_INCOMPLETE",
            message: "The Envelope is not Complete. A Complete Envelope Requires Documents, Recipients, Tabs, and a Subject Line.".to_string(),
        }
    }
}

// ----- the schema ----------------------------------------------------------------

/// What a property's value must be.
#[derive(Debug)]
enum Schema {
    String,
    Boolean,
    Integer,
    Number,
    /// `type: object` without a `$ref`: any object.
    AnyObject,
    Array(Box<Schema>),
    /// `$ref: #/definitions/<name>`.
    Ref(String),
}

/// A definition: its properties, or `None` when it declares none (any object).
#[derive(Debug)]
struct Definition {
    properties: Option<HashMap<String, Schema>>,
}

#[derive(Debug)]
struct Schemas {
    definitions: HashMap<String, Definition>,
}

/// The swagger's definitions, parsed once.
fn schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| Schemas::parse(SWAGGER).unwrap_or_else(|e| panic!("bundled swagger file: {e}")))
}

impl Schemas {
    fn parse(text: &str) -> Result<Schemas, String> {
        let spec: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let definitions = spec["definitions"]
            .as_object()
            .ok_or("no definitions")?
            .iter()
            .map(|(name, definition)| {
                let properties = match definition.get("properties") {
                    None => None,
                    Some(properties) => Some(
                        properties
                            .as_object()
                            .ok_or_else(|| format!("{name}: properties is not an object"))?
                            .iter()
                            .map(|(p, s)| Ok((p.clone(), Schema::parse(s).map_err(|e| format!("{name}.{p}: {e}"))?)))
                            .collect::<Result<HashMap<_, _>, String>>()?,
                    ),
                };
                Ok((name.clone(), Definition { properties }))
            })
            .collect::<Result<HashMap<_, _>, String>>()?;
        if !definitions.contains_key(ROOT_DEFINITION) {
            return Err(format!("no {ROOT_DEFINITION} definition"));
        }
        Ok(Schemas { definitions })
    }
}

impl Schema {
    fn parse(schema: &Value) -> Result<Schema, String> {
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            return reference
                .strip_prefix("#/definitions/")
                .map(|name| Schema::Ref(name.to_string()))
                .ok_or_else(|| format!("unsupported $ref {reference}"));
        }
        match schema.get("type").and_then(Value::as_str) {
            Some("string") => Ok(Schema::String),
            Some("boolean") => Ok(Schema::Boolean),
            Some("integer") => Ok(Schema::Integer),
            Some("number") => Ok(Schema::Number),
            Some("object") => Ok(Schema::AnyObject),
            Some("array") => {
                Ok(Schema::Array(Box::new(Schema::parse(schema.get("items").ok_or("array without items")?)?)))
            }
            _ => Err(format!("unsupported schema {schema}")),
        }
    }
}

// ----- checking ------------------------------------------------------------------

/// Parses and checks an envelope definition.
pub(crate) fn parse_envelope_definition(body: &[u8]) -> Result<Value, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| {
        ApiError::invalid_body(
            "The request body is missing or improperly formatted. Unable to parse the request body as JSON.",
        )
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
    let schemas = schemas();
    check_object(schemas, "", object, ROOT_DEFINITION)?;

    if let Some(subject) = object.get("emailSubject").and_then(Value::as_str) {
        if subject.chars().count() > MAX_EMAIL_SUBJECT_CHARS {
            return Err(ApiError::invalid_body(format!(
                "The request body is missing or improperly formatted. The email subject exceeds the maximum length of {MAX_EMAIL_SUBJECT_CHARS} characters."
            )));
        }
    }

    if let Some(documents) = object.get("documents").and_then(Value::as_array) {
        for (i, document) in documents.iter().enumerate() {
            if let Some(content) = document.get("documentBase64").and_then(Value::as_str) {
                if !decodes(content) {
                    return Err(ApiError::invalid_parameter(
                        &format!("documents[{i}].documentBase64"),
                        "is not valid base64",
                    ));
                }
            }
        }
    }

    let sent = object.get("status").and_then(Value::as_str) == Some("sent");
    let non_empty_array = |name: &str| object.get(name).and_then(Value::as_array).is_some_and(|a| !a.is_empty());
    let has_template = object.get("templateId").and_then(Value::as_str).is_some_and(|t| !t.trim().is_empty());
    if sent && !non_empty_array("documents") && !has_template && !non_empty_array("compositeTemplates") {
        return Err(ApiError::incomplete());
    }
    Ok(())
}

/// Standard base64 as .NET reads it: whitespace ignored, padding optional.
fn decodes(content: &str) -> bool {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    let compact: Vec<u8> = content.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    LENIENT.decode(compact).is_ok()
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn check_object(schemas: &Schemas, path: &str, object: &Map<String, Value>, definition: &str) -> Result<(), ApiError> {
    // A reference the file does not define, or a definition without
    // properties: any object.
    let Some(properties) = schemas.definitions.get(definition).and_then(|d| d.properties.as_ref()) else {
        return Ok(());
    };
    for (name, value) in object {
        let here = join(path, name);
        let Some(schema) = properties.get(name) else {
            return Err(ApiError::invalid_parameter(&here, "unknown property"));
        };
        check_value(schemas, &here, value, schema)?;
    }
    Ok(())
}

fn check_value(schemas: &Schemas, path: &str, value: &Value, schema: &Schema) -> Result<(), ApiError> {
    if value.is_null() {
        return Ok(());
    }
    let expected = match schema {
        Schema::String if value.is_string() => return Ok(()),
        Schema::String => "a string",
        Schema::Boolean => match value {
            Value::Bool(_) => return Ok(()),
            Value::String(s) if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") => return Ok(()),
            _ => "a boolean (true, false, \"true\" or \"false\")",
        },
        Schema::Integer => match value {
            Value::Number(n) if n.is_i64() || n.is_u64() => return Ok(()),
            Value::String(s) if s.trim().parse::<i64>().is_ok() => return Ok(()),
            _ => "an integer",
        },
        Schema::Number => match value {
            Value::Number(_) => return Ok(()),
            Value::String(s) if s.trim().parse::<f64>().is_ok() => return Ok(()),
            _ => "a number",
        },
        Schema::AnyObject if value.is_object() => return Ok(()),
        Schema::AnyObject => "an object",
        Schema::Array(items) => match value.as_array() {
            Some(elements) => {
                for (i, element) in elements.iter().enumerate() {
                    check_value(schemas, &format!("{path}[{i}]"), element, items)?;
                }
                return Ok(());
            }
            None => "an array",
        },
        Schema::Ref(definition) => match value.as_object() {
            Some(object) => return check_object(schemas, path, object, definition),
            None => "an object",
        },
    };
    Err(ApiError::invalid_parameter(path, format!("expected {expected}, got {}", kind(value))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(value: Value) -> String {
        let error = validate_envelope_definition(&value).unwrap_err();
        assert_eq!(error.error_code, "INVALID_REQUEST_BODY", "{error}");
        error.message
    }

    #[test]
    fn swagger_parses_with_the_definitions_used() {
        let schemas = schemas();
        assert!(schemas.definitions.len() > 100);
        for name in
            ["envelopeDefinition", "document", "recipients", "signer", "carbonCopy", "tabs", "signHere", "templateRole"]
        {
            assert!(schemas.definitions[name].properties.is_some(), "{name}");
        }
        // Every reference resolves, except the one the published file lacks.
        for definition in schemas.definitions.values() {
            for schema in definition.properties.iter().flat_map(|p| p.values()) {
                let mut schema = schema;
                while let Schema::Array(items) = schema {
                    schema = items;
                }
                if let Schema::Ref(name) = schema {
                    assert!(schemas.definitions.contains_key(name) || name == "offlineAttributes", "{name}");
                }
            }
        }
    }

    #[test]
    fn subject_length() {
        let ok = json!({ "emailSubject": "é".repeat(100) });
        assert!(validate_envelope_definition(&ok).is_ok());
        let long = json!({ "emailSubject": "x".repeat(101) });
        assert_eq!(validate_envelope_definition(&long).unwrap_err().error_code, "INVALID_REQUEST_BODY");
    }

    #[test]
    fn not_an_object() {
        assert!(parse_envelope_definition(b"[1,2]").is_err());
        assert!(parse_envelope_definition(b"nope").is_err());
        assert!(parse_envelope_definition(b"{}").is_ok());
    }

    #[test]
    fn unknown_properties_at_any_depth() {
        assert_eq!(
            message(json!({"emailSubjct": "x"})),
            "The request contained at least one invalid parameter. emailSubjct: unknown property"
        );
        assert_eq!(
            message(json!({"recipients": {"signers": [{"recipientId": "1", "tabs": {"signHereTabs": [{"anchorString": "x", "anchorFoo": "1"}]}}]}})),
            "The request contained at least one invalid parameter. recipients.signers[0].tabs.signHereTabs[0].anchorFoo: unknown property"
        );
    }

    #[test]
    fn json_types() {
        assert_eq!(
            message(json!({"recipients": {"signers": [{"recipientId": 1}]}})),
            "The request contained at least one invalid parameter. recipients.signers[0].recipientId: expected a string, got a number"
        );
        assert_eq!(
            message(json!({"documents": {"documentId": "1"}})),
            "The request contained at least one invalid parameter. documents: expected an array, got an object"
        );
        assert_eq!(
            message(json!({"notification": "soon"})),
            "The request contained at least one invalid parameter. notification: expected an object, got a string"
        );
        assert_eq!(
            message(json!({"documents": [{"signerMustAcknowledgeUseAccountDefault": "maybe"}]})),
            "The request contained at least one invalid parameter. documents[0].signerMustAcknowledgeUseAccountDefault: expected a boolean (true, false, \"true\" or \"false\"), got a string"
        );
        // Booleans as JSON booleans or strings; nulls ignored.
        for flag in [json!(true), json!("false"), json!("True"), json!(null)] {
            let body = json!({"documents": [{"signerMustAcknowledgeUseAccountDefault": flag}], "emailBlurb": null});
            assert!(validate_envelope_definition(&body).is_ok(), "{flag}");
        }
        // An array of strings.
        assert!(
            validate_envelope_definition(&json!({"recipients": {"signers": [{"excludedDocuments": ["1"]}]}})).is_ok()
        );
        assert_eq!(
            message(json!({"recipients": {"signers": [{"excludedDocuments": [1]}]}})),
            "The request contained at least one invalid parameter. recipients.signers[0].excludedDocuments[0]: expected a string, got a number"
        );
        // A reference the file does not define accepts any object.
        assert!(validate_envelope_definition(
            &json!({"recipients": {"witnesses": [{"offlineAttributes": {"anything": 1}}]}})
        )
        .is_ok());
    }

    #[test]
    fn documents_and_completeness() {
        let doc = |content: &str| json!({"status": "sent", "emailSubject": "s", "documents": [{"documentBase64": content, "name": "a.pdf", "documentId": "1"}]});
        for good in ["JVBERi0=", "JVBERi0", "JVBE\r\nRi0="] {
            assert!(validate_envelope_definition(&doc(good)).is_ok(), "{good}");
        }
        for bad in ["not base64!", "A", "JVBERi0-"] {
            assert_eq!(
                message(doc(bad)),
                "The request contained at least one invalid parameter. documents[0].documentBase64: is not valid base64"
            );
        }
        for incomplete in [
            json!({"status": "sent"}),
            json!({"status": "sent", "documents": []}),
            json!({"status": "sent", "templateId": ""}),
        ] {
            let error = validate_envelope_definition(&incomplete).unwrap_err();
            assert_eq!(error.error_code, "ENVELOPE_IS_INCOMPLETE");
            assert_eq!(error.status, StatusCode::BAD_REQUEST);
        }
        assert!(validate_envelope_definition(&json!({"status": "created"})).is_ok());
        assert!(validate_envelope_definition(
            &json!({"status": "sent", "templateId": "t", "templateRoles": [{"roleName": "R"}]})
        )
        .is_ok());
        assert!(validate_envelope_definition(&json!({"status": "sent", "compositeTemplates": [{"serverTemplates": [{"templateId": "t", "sequence": "1"}]}]})).is_ok());
    }
}
