//! The real function binaries, as Lambda runs them: start-up configuration
//! and API Gateway v2.0 events through the Runtime API.

use std::time::Duration;

use aws_sdk_kms::primitives::Blob;
use base64::Engine as _;
use integration_tests::runtime::FunctionProcess;
use integration_tests::*;
use serde_json::{json, Value};

fn without(vars: &[(String, String)], name: &str) -> Vec<(String, String)> {
    vars.iter().filter(|(k, _)| k != name).cloned().collect()
}

fn event(method: &str, path: &str, token: Option<&str>) -> Value {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![];
    if let Some(b) = &bearer {
        headers.push(("authorization", b.as_str()));
    }
    serde_json::from_str(&apigw_event(method, path, "", &headers, None)).unwrap()
}

#[tokio::test]
async fn a_missing_or_invalid_variable_stops_start_up_naming_it() {
    let env = TestEnv::start().await;
    let vars = env.function_env().await;
    let cases = [
        ("connection", without(&vars, "TOKEN_TABLE"), "TOKEN_TABLE"),
        ("connection", without(&vars, "CRM_JWT_SECRET"), "CRM_JWT_SECRET"),
        ("consent-start", without(&vars, "DOCUSIGN_REDIRECT_URI"), "DOCUSIGN_REDIRECT_URI"),
        ("token-refresh", without(&vars, "DOCUSIGN_INTEGRATION_KEY"), "DOCUSIGN_INTEGRATION_KEY"),
        (
            "send-envelope",
            vars.iter().cloned().chain([("DOCUSIGN_ENVIRONMENT".to_owned(), "staging".to_owned())]).collect(),
            "DOCUSIGN_ENVIRONMENT",
        ),
    ];
    for (function, env_vars, variable) in cases {
        let mut p = FunctionProcess::spawn(function, &env_vars).await;
        let status = p.exit_status(Duration::from_secs(20)).await.unwrap_or_else(|| panic!("{function} kept running"));
        assert!(!status.success(), "{function} exits with an error");
        let logs = p.logs();
        assert!(logs.contains(variable), "{function} names {variable}: {logs}");
    }
}

#[tokio::test]
async fn secrets_given_as_kms_ciphertext_are_decrypted_at_start_up() {
    let env = TestEnv::start().await;
    let encrypt = |name: &'static str, value: &'static str| {
        let kms = env.kms.clone();
        let key = env.key_id.clone();
        async move {
            let out = kms
                .encrypt()
                .key_id(key)
                .plaintext(Blob::new(value.as_bytes()))
                .encryption_context("connector_secret", name)
                .send()
                .await
                .unwrap();
            base64::engine::general_purpose::STANDARD.encode(out.ciphertext_blob.unwrap().into_inner())
        }
    };
    let jwt_ct = encrypt("CRM_JWT_SECRET", JWT_SECRET).await;
    let mut vars = without(&env.function_env().await, "CRM_JWT_SECRET");
    vars.push(("CRM_JWT_SECRET_CIPHERTEXT".into(), jwt_ct.clone()));
    let p = FunctionProcess::spawn("connection", &vars).await;
    let t = random_name("tenant");
    let answer = p.invoke(event("GET", "/docusign/connection", Some(&user_token(&t))), Duration::from_secs(20)).await;
    let answer = answer.unwrap_or_else(|e| panic!("{e}: {}", p.logs()));
    assert_eq!(answer["statusCode"], 200, "{answer}");
    assert_eq!(serde_json::from_str::<Value>(answer["body"].as_str().unwrap()).unwrap(), json!({"connected": false}));
    let a = p.invoke(event("GET", "/docusign/connection", None), Duration::from_secs(20)).await.unwrap();
    assert_eq!(a["statusCode"], 401);

    // A ciphertext made for the other secret does not decrypt as this one.
    let wrong = encrypt("DOCUSIGN_SECRET_KEY", JWT_SECRET).await;
    let mut vars = without(&env.function_env().await, "CRM_JWT_SECRET");
    vars.push(("CRM_JWT_SECRET_CIPHERTEXT".into(), wrong));
    let mut p = FunctionProcess::spawn("connection", &vars).await;
    let status = p.exit_status(Duration::from_secs(20)).await.expect("stops at start-up");
    assert!(!status.success());
    assert!(p.logs().contains("CRM_JWT_SECRET_CIPHERTEXT"), "{}", p.logs());
}

#[tokio::test]
async fn each_api_function_answers_api_gateway_events_through_the_runtime_api() {
    let env = TestEnv::start().await;
    let vars = env.function_env().await;
    let t = random_name("tenant");
    let consent = FunctionProcess::spawn("consent-start", &vars).await;
    let a = consent
        .invoke(event("POST", "/docusign/consent", Some(&admin_token(&t))), Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(a["statusCode"], 200, "{a}");
    let url = serde_json::from_str::<Value>(a["body"].as_str().unwrap()).unwrap()["authorization_url"]
        .as_str()
        .unwrap()
        .to_owned();

    // Started before the consent page gives its code (a code lives 2 minutes).
    let callback = FunctionProcess::spawn("oauth-callback", &vars).await;
    let query = env.visit_consent_page(&url, "").await;
    let mut e: Value = serde_json::from_str(&apigw_event("GET", "/docusign/callback", &query, &[], None)).unwrap();
    e["rawQueryString"] = json!(query);
    let page = callback.invoke(e, Duration::from_secs(20)).await.unwrap();
    assert_eq!(page["statusCode"], 200, "{page}");
    assert!(page["headers"]["content-security-policy"].is_string(), "{page}");
    let html = page["body"].as_str().unwrap();
    assert!(html.contains("Sim Signer"));

    // The admin confirms through the same consent-start function.
    let page = Answer { status: 200, headers: Default::default(), body: html.to_owned() };
    let confirmation = callback_confirmation(&page).expect("an approved page");
    let admin = format!("Bearer {}", admin_token(&t));
    let body = json!({ "confirmation": confirmation }).to_string();
    let e: Value = serde_json::from_str(&apigw_event(
        "POST",
        "/docusign/consent/confirm",
        "",
        &[("authorization", &admin)],
        Some(&body),
    ))
    .unwrap();
    let confirmed = consent.invoke(e, Duration::from_secs(20)).await.unwrap();
    assert_eq!(confirmed["statusCode"], 200, "{confirmed}");
    assert_eq!(env.status(&t).await["status"], "active");

    let send = FunctionProcess::spawn("send-envelope", &vars).await;
    let body = json!({
        "emailSubject": "Sign",
        "documents": [{"documentBase64": "JVBERi0xLjQK", "name": "d", "documentId": "1"}],
        "recipients": {"signers": [{"email": "a@example.com", "name": "A", "recipientId": "1"}]},
        "status": "sent"
    })
    .to_string();
    let token = user_token(&t);
    let bearer = format!("Bearer {token}");
    let e: Value = serde_json::from_str(&apigw_event(
        "POST",
        "/docusign/envelopes",
        "",
        &[("authorization", &bearer)],
        Some(&body),
    ))
    .unwrap();
    let sent = send.invoke(e, Duration::from_secs(25)).await.unwrap();
    assert_eq!(sent["statusCode"], 201, "{sent}");
    assert_eq!(env.sim.envelopes().len(), 1);

    let connection = FunctionProcess::spawn("connection", &vars).await;
    let gone = connection
        .invoke(event("DELETE", "/docusign/connection", Some(&admin_token(&t))), Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(gone["statusCode"], 204, "{gone}");
    assert_eq!(env.status(&t).await, json!({"connected": false}));
}
