//! Property tests of every parser that takes outside input: whatever a
//! caller, DocuSign or API Gateway sends, they answer (an error or a value)
//! and never panic. Case counts are bounded so the suite stays fast; set
//! PROPTEST_CASES to run more.

use lambda_http::aws_lambda_events::query_map::QueryMap;
use lambda_http::RequestExt;
use proptest::prelude::*;
use serde_json::{json, Value};
use shared::auth::JwtVerifier;
use shared::envelope::validate::validate_envelope;
use shared::gateway::request_from_event;

fn config() -> ProptestConfig {
    ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() }
}

/// Arbitrary JSON, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("documents".to_owned()),
                    Just("documentBase64".to_owned()),
                    Just("documentId".to_owned()),
                    Just("name".to_owned()),
                    Just("recipients".to_owned()),
                    Just("signers".to_owned()),
                    Just("tabs".to_owned()),
                    Just("templateId".to_owned()),
                    Just("templateRoles".to_owned()),
                    Just("emailSubject".to_owned()),
                    Just("status".to_owned()),
                    "[a-zA-Z]{1,12}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn envelope_validation_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = validate_envelope(&bytes);
    }

    #[test]
    fn envelope_validation_never_panics_on_json(value in json_value()) {
        let body = value.to_string();
        match validate_envelope(body.as_bytes()) {
            // What passes goes on unchanged.
            Ok(parsed) => prop_assert_eq!(parsed, value),
            Err(e) => prop_assert!(e.status.as_u16() == 400 || e.status.as_u16() == 413),
        }
    }

    #[test]
    fn jwt_verification_never_panics(token in ".{0,300}", parts in prop::collection::vec("[A-Za-z0-9_-]{0,60}", 0..5)) {
        let v = JwtVerifier::new(b"0123456789abcdef0123456789abcdef", "docusign-connector").unwrap();
        // HS256-only verification never waits: ready at its first poll.
        use futures_util::FutureExt as _;
        prop_assert!(v.verify(&token).now_or_never().unwrap().is_err());
        let joined = parts.join(".");
        prop_assert!(v.verify(&joined).now_or_never().unwrap().is_err());
    }

    // Any query, path and body, as API Gateway passes them through: the
    // request the handlers see has the same query parameters.
    // (lambda_http 1.3's own conversion panics on a space in the raw query;
    // `shared::gateway` repairs the event first.)
    #[test]
    fn api_gateway_events_with_any_query_and_body_convert_or_fail_cleanly(
        query in ".{0,200}",
        path in ".{0,40}",
        body in ".{0,200}",
        method in prop_oneof![Just("GET"), Just("POST"), Just("DELETE"), Just("PATCH")],
    ) {
        let event = json!({
            "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
            "headers": {"content-type": "application/json", "host": "api.example.com"},
            "requestContext": {"http": {"method": method, "path": "/docusign/callback", "protocol": "HTTP/1.1", "sourceIp": "1.2.3.4", "userAgent": "x"},
                               "accountId": "1", "apiId": "a", "domainName": "d", "domainPrefix": "d", "requestId": "r",
                               "routeKey": "$default", "stage": "$default", "time": "t", "timeEpoch": 0},
            "body": body, "isBase64Encoded": false
        });
        let event = serde_json::from_value(event).unwrap();
        let request = request_from_event(event, lambda_http::Context::default()).unwrap();
        prop_assert_eq!(request.query_string_parameters(), query.parse::<QueryMap>().unwrap());
        prop_assert_eq!(request.body().as_ref(), body.as_bytes());
        prop_assert_eq!(request.method().as_str(), method);
    }
}
