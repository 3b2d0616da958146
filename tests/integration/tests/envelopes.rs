//! Sending envelopes through the contract's route, against moto and the
//! simulator (which checks every body against DocuSign's published schema).

use std::time::{Duration, Instant};

use docusign_sim::{Endpoint, Fault};
use integration_tests::fixtures::documents_envelope;
use integration_tests::*;
use serde_json::{json, Value};

const USER: &str = "11111111-1111-1111-1111-111111111111";

fn template_envelope() -> Value {
    json!({
        "templateId": "8f2c5c1e-0000-4000-8000-000000000001",
        "templateRoles": [{"email": "buyer@example.com", "name": "Bea Buyer", "roleName": "Signer"}],
        "status": "sent"
    })
}

async fn connected() -> (TestEnv, String) {
    let env = TestEnv::start().await;
    let t = tenant();
    env.connect(&t).await;
    (env, t)
}

#[tokio::test]
async fn a_documents_envelope_with_anchor_tabs_and_a_carbon_copy_is_sent_as_it_came() {
    let (env, t) = connected().await;
    let body = documents_envelope().to_string();
    let a = env.send(&t, &body, None).await;
    assert_eq!(a.status, 201, "{}", a.body);
    let summary = a.json();
    for field in ["envelopeId", "status", "statusDateTime", "uri"] {
        assert!(summary[field].is_string(), "{field}: {summary}");
    }
    assert_eq!(summary["status"], "sent");
    let received = env.sim.envelopes();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].body, documents_envelope(), "the body went on unchanged");
    assert_eq!(received[0].account_id, "acc-default-1");
    assert_eq!(received[0].envelope_id, summary["envelopeId"].as_str().unwrap());
    assert_eq!(env.sim.stats().refresh_grants, 0, "no refresh for a fresh token");
}

#[tokio::test]
async fn a_template_envelope_is_sent() {
    let (env, t) = connected().await;
    let a = env.send(&t, &template_envelope().to_string(), None).await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(env.sim.envelopes()[0].body["templateId"], template_envelope()["templateId"]);
}

#[tokio::test]
async fn invalid_bodies_are_400_naming_the_field_and_nothing_is_sent() {
    let (env, t) = connected().await;
    let mut no_id = documents_envelope();
    no_id["documents"][0].as_object_mut().unwrap().remove("documentId");
    let mut bad_b64 = documents_envelope();
    bad_b64["documents"][0]["documentBase64"] = json!("not base64!!");
    let mut long_subject = documents_envelope();
    long_subject["emailSubject"] = json!("x".repeat(101));
    let mut voided = documents_envelope();
    voided["status"] = json!("voided");
    let mut numeric = documents_envelope();
    numeric["recipients"]["signers"][0]["recipientId"] = json!(1);
    let cases: Vec<(String, &str)> = vec![
        ("not json".into(), "body"),
        ("[1,2]".into(), "body"),
        ("{}".into(), "documents"),
        (no_id.to_string(), "documents[0].documentId"),
        (bad_b64.to_string(), "documents[0].documentBase64"),
        (long_subject.to_string(), "emailSubject"),
        (voided.to_string(), "status"),
        (numeric.to_string(), "recipients.signers[0].recipientId"),
        (json!({"templateId": "t"}).to_string(), "templateRoles"),
    ];
    for (body, field) in cases {
        let a = env.send(&t, &body, None).await;
        assert_eq!(a.status, 400, "{field}: {}", a.body);
        assert_eq!(a.error_code(), "invalid_request");
        let message = a.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(message.starts_with(field), "{field}: {message}");
    }
    let huge = format!(r#"{{"emailSubject":"x","padding":"{}"}}"#, "a".repeat(6 * 1024 * 1024));
    let a = env.send(&t, &huge, None).await;
    assert_eq!((a.status, a.error_code().as_str()), (413, "payload_too_large"));
    assert_eq!(env.sim.stats().envelope_calls, 0, "nothing reached DocuSign");
}

#[tokio::test]
async fn a_tenant_without_a_connection_gets_409_not_connected() {
    let env = TestEnv::start().await;
    let a = env.send(&tenant(), &documents_envelope().to_string(), None).await;
    assert_eq!((a.status, a.error_code().as_str()), (409, "not_connected"));
}

#[tokio::test]
async fn a_connection_needing_consent_gets_409_reauth_required_without_a_call() {
    let (env, t) = connected().await;
    env.sim.revoke_consent(USER);
    env.advance(5 * 3600);
    env.sweep().await;
    let calls = env.sim.stats();
    let a = env.send(&t, &documents_envelope().to_string(), None).await;
    assert_eq!((a.status, a.error_code().as_str()), (409, "reauth_required"));
    assert_eq!(env.sim.stats(), calls);
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_before_sending() {
    let (env, t) = connected().await;
    env.advance(9 * 3600);
    let a = env.send(&t, &documents_envelope().to_string(), None).await;
    assert_eq!(a.status, 201, "{}", a.body);
    let stats = env.sim.stats();
    assert_eq!((stats.refresh_grants, stats.envelope_calls), (1, 1));
    assert_eq!(env.status(&t).await["status"], "active");
}

#[tokio::test]
async fn a_401_causes_one_refresh_and_one_retry_never_a_loop() {
    let (env, t) = connected().await;
    env.sim.expire_access_tokens(USER);
    let a = env.send(&t, &documents_envelope().to_string(), None).await;
    assert_eq!(a.status, 201, "{}", a.body);
    let stats = env.sim.stats();
    assert_eq!((stats.refresh_grants, stats.envelope_calls), (1, 2));

    env.sim.push_fault(Endpoint::Envelopes, Fault::Status { status: 401, body: None, retry_after: None }, u32::MAX);
    let a = env.send(&t, &documents_envelope().to_string(), None).await;
    assert_eq!((a.status, a.error_code().as_str()), (502, "docusign_error"), "{}", a.body);
    assert_eq!(a.json()["error"]["docusign_error_code"], "USER_AUTHENTICATION_FAILED");
    let stats = env.sim.stats();
    assert_eq!((stats.refresh_grants, stats.envelope_calls), (2, 4), "one refresh and one retry");
}

#[tokio::test]
async fn a_429_once_is_retried_and_sent() {
    let (env, t) = connected().await;
    env.sim.push_fault(Endpoint::Envelopes, Fault::Status { status: 429, body: None, retry_after: Some(1) }, 1);
    let a = env.send(&t, &documents_envelope().to_string(), None).await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(env.sim.stats().envelope_calls, 2);
    assert_eq!(env.sim.envelopes().len(), 1);
}

#[tokio::test]
async fn a_429_that_persists_is_answered_429_within_the_deadline() {
    let (env, t) = connected().await;
    env.sim.push_fault(Endpoint::Envelopes, Fault::Status { status: 429, body: None, retry_after: Some(1) }, u32::MAX);
    let token = user_token(&t);
    let body = documents_envelope().to_string();
    let started = Instant::now();
    let call = Call {
        token: Some(&token),
        body: Some(&body),
        budget: Some(Duration::from_secs(6)),
        ..Call::new(Route::Envelopes, "POST")
    };
    let a = env.send_call(&env.app, call).await;
    assert!(started.elapsed() < Duration::from_secs(6), "answered within the deadline: {:?}", started.elapsed());
    assert_eq!((a.status, a.error_code().as_str()), (429, "rate_limited"), "{}", a.body);
    assert!(a.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    assert!(env.sim.stats().envelope_calls >= 2, "it did retry");
    assert!(env.sim.envelopes().is_empty());
}

#[tokio::test]
async fn docusign_5xx_that_persists_is_503_with_retry_after() {
    let (env, t) = connected().await;
    env.sim.push_fault(Endpoint::Envelopes, Fault::Status { status: 503, body: None, retry_after: None }, u32::MAX);
    let token = user_token(&t);
    let body = documents_envelope().to_string();
    let call = Call {
        token: Some(&token),
        body: Some(&body),
        budget: Some(Duration::from_secs(5)),
        ..Call::new(Route::Envelopes, "POST")
    };
    let a = env.send_call(&env.app, call).await;
    assert_eq!((a.status, a.error_code().as_str()), (503, "upstream_unavailable"), "{}", a.body);
    assert!(a.header("retry-after").is_some());
}

#[tokio::test]
async fn docusign_400_is_502_docusign_error_with_its_code() {
    let (env, t) = connected().await;
    let mut body = documents_envelope();
    // Passes our checks (we pass on what DocuSign knows) but not DocuSign's schema.
    body["recipients"]["signers"][0]["favouriteColour"] = json!("blue");
    let a = env.send(&t, &body.to_string(), None).await;
    assert_eq!((a.status, a.error_code().as_str()), (502, "docusign_error"), "{}", a.body);
    let error = &a.json()["error"];
    assert_eq!(error["docusign_error_code"], "INVALID_REQUEST_BODY");
    assert!(error["docusign_message"].as_str().unwrap().contains("favouriteColour"));
}

#[tokio::test]
async fn an_idempotent_repeat_returns_the_first_answer_and_sends_nothing() {
    let (env, t) = connected().await;
    let body = documents_envelope().to_string();
    let first = env.send(&t, &body, Some("quote-Q-1001-send-1")).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let again = env.send(&t, &body, Some("quote-Q-1001-send-1")).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.json(), first.json());
    assert_eq!(env.sim.envelopes().len(), 1);

    let mut other = documents_envelope();
    other["emailSubject"] = json!("Another quote");
    let conflict = env.send(&t, &other.to_string(), Some("quote-Q-1001-send-1")).await;
    assert_eq!((conflict.status, conflict.error_code().as_str()), (422, "idempotency_conflict"));
    assert_eq!(env.sim.envelopes().len(), 1);

    // The same key in another tenant is another key.
    let t2 = tenant();
    env.connect(&t2).await;
    assert_eq!(env.send(&t2, &body, Some("quote-Q-1001-send-1")).await.status, 201);
    assert_eq!(env.sim.envelopes().len(), 2);

    let bad = env.send(&t, &body, Some("has space")).await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn concurrent_duplicates_send_one_envelope() {
    let (env, t) = connected().await;
    env.sim.push_fault(Endpoint::Envelopes, Fault::Delay { ms: 700 }, 1);
    let body = documents_envelope().to_string();
    let (a, b) = tokio::join!(env.send(&t, &body, Some("dup-key")), env.send(&t, &body, Some("dup-key")));
    assert_eq!(env.sim.envelopes().len(), 1, "one envelope");
    assert_eq!((a.status, b.status), (201, 201), "{} / {}", a.body, b.body);
    assert_eq!(a.json(), b.json(), "the duplicate got the first answer");
}

#[tokio::test]
async fn a_transient_failure_frees_the_key_for_a_retry() {
    let (env, t) = connected().await;
    env.sim.push_fault(Endpoint::Envelopes, Fault::Status { status: 503, body: None, retry_after: None }, u32::MAX);
    let token = user_token(&t);
    let body = documents_envelope().to_string();
    let call = Call {
        token: Some(&token),
        body: Some(&body),
        headers: vec![("idempotency-key", "retry-me")],
        budget: Some(Duration::from_secs(4)),
        ..Call::new(Route::Envelopes, "POST")
    };
    assert_eq!(env.send_call(&env.app, call).await.status, 503);
    env.sim.clear_faults();
    let a = env.send(&t, &body, Some("retry-me")).await;
    assert_eq!(a.status, 201, "{}", a.body);
}

#[tokio::test]
async fn the_account_chosen_at_connect_time_is_the_one_used() {
    let env = TestEnv::with(Options { account_id: Some("acc-second-2".into()), ..Options::default() }).await;
    let t = tenant();
    env.connect(&t).await;
    assert_eq!(env.send(&t, &documents_envelope().to_string(), None).await.status, 201);
    assert_eq!(env.sim.envelopes()[0].account_id, "acc-second-2");
}

#[tokio::test]
async fn sending_needs_a_valid_crm_token_but_no_admin_role() {
    let (env, t) = connected().await;
    let body = documents_envelope().to_string();
    let call = Call { body: Some(&body), ..Call::new(Route::Envelopes, "POST") };
    let a = env.send_call(&env.app, call).await;
    assert_eq!(a.status, 401);
    let admin = admin_token(&t);
    let call = Call { token: Some(&admin), body: Some(&body), ..Call::new(Route::Envelopes, "POST") };
    assert_eq!(env.send_call(&env.app, call).await.status, 201);
}

/// `fields` (raw `"name":value` JSON) put before the fixture's own fields, so
/// that a name the fixture also has appears twice, the fixture's last.
fn with_leading_fields(fixture: &Value, fields: &str) -> String {
    let body = fixture.to_string();
    format!("{{{fields},{}", &body[1..])
}

#[tokio::test]
async fn with_a_duplicate_key_docusign_receives_exactly_the_body_that_was_validated() {
    let (env, t) = connected().await;
    // Given a body whose first emailSubject is 300 characters (invalid) and
    // whose last is valid, and whose first documents do not decode.
    let long = "x".repeat(300);
    let body = with_leading_fields(
        &documents_envelope(),
        &format!(
            r#""emailSubject":"{long}","documents":[{{"documentBase64":"not base64!!","documentId":"9","name":"Unchecked"}}]"#
        ),
    );
    let validated: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(validated, documents_envelope(), "serde_json keeps the last of each key");

    // When it is sent, then it is sent, and what DocuSign received is the
    // validated value, serialized: each key once, no trace of the first ones.
    let a = env.send(&t, &body, None).await;
    assert_eq!(a.status, 201, "{}", a.body);
    let received = env.sim.last_envelope_body().expect("DocuSign received a body");
    assert_eq!(received, serde_json::to_vec(&validated).unwrap(), "the serialization of what was validated");
    let text = String::from_utf8(received).unwrap();
    assert_eq!(text.matches("\"emailSubject\"").count(), 1, "{text}");
    assert_eq!(text.matches("\"documents\"").count(), 1, "{text}");
    assert!(!text.contains(&long) && !text.contains("not base64") && !text.contains("Unchecked"));
    assert_eq!(env.sim.envelopes()[0].body, documents_envelope());
}

#[tokio::test]
async fn with_a_duplicate_key_whose_last_value_is_invalid_nothing_is_sent() {
    let (env, t) = connected().await;
    // Given a valid first emailSubject and a 300-character last one.
    let mut fixture = documents_envelope();
    fixture.as_object_mut().unwrap().remove("emailSubject");
    let body = fixture.to_string();
    let body = format!(
        r#"{{"emailSubject":"Valid subject",{},"emailSubject":"{}"}}"#,
        &body[1..body.len() - 1],
        "x".repeat(300)
    );
    // When it is sent, then it is refused for the value that was validated,
    // and nothing reaches DocuSign.
    let a = env.send(&t, &body, None).await;
    assert_eq!((a.status, a.error_code().as_str()), (400, "invalid_request"), "{}", a.body);
    assert_eq!(a.json()["error"]["message"], "emailSubject: must be at most 100 characters (got 300)");
    // And the same with a last status that is not allowed.
    let body = documents_envelope().to_string();
    let body = format!(r#"{},"status":"voided"}}"#, &body[..body.len() - 1]);
    let a = env.send(&t, &body, None).await;
    assert_eq!((a.status, a.error_code().as_str()), (400, "invalid_request"), "{}", a.body);
    assert_eq!(env.sim.stats().envelope_calls, 0, "nothing reached DocuSign");
    assert_eq!(env.sim.last_envelope_body(), None);
}

#[tokio::test]
async fn a_six_mb_body_of_tiny_items_is_refused_before_it_is_parsed() {
    let (env, t) = connected().await;
    // Given bodies under 6 MB made of millions of tiny values.
    let mut zeros = String::from(r#"{"documents":[0"#);
    while zeros.len() < 6 * 1024 * 1024 - 8 {
        zeros.push_str(",0");
    }
    zeros.push_str("]}");
    let nested = "[".repeat(6 * 1024 * 1024 - 16);
    let mut keys = String::from("{");
    while keys.len() < 6 * 1024 * 1024 - 16 {
        keys.push_str(r#""a":{},"#);
    }
    keys.push_str(r#""a":{}}"#);
    for (body, message) in [
        (&zeros, "body: holds more than 150000 JSON values (an object counting 5); an envelope never needs that many"),
        (&keys, "body: holds more than 150000 JSON values (an object counting 5); an envelope never needs that many"),
        (&nested, "body: nests arrays and objects more than 64 levels deep; an envelope never needs that many"),
    ] {
        // When each is sent, then it is a 400 naming the problem.
        let a = env.send(&t, body, None).await;
        assert_eq!((a.status, a.error_code().as_str()), (400, "invalid_request"), "{}", a.body);
        assert_eq!(a.json()["error"]["message"], message);
    }
    assert_eq!(env.sim.stats().envelope_calls, 0, "nothing reached DocuSign");
}
