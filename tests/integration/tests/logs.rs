//! No token, code, state, confirmation, verifier or secret in any log line:
//! the whole journey (connect and confirm, replays, refreshes, a revoked
//! consent, sends with 401 and 429, disconnect) runs with every log line
//! captured, and the capture is searched for every secret the simulator ever
//! issued.
//!
//! Twice: in process at DEBUG for every crate, ours and the libraries'; and
//! through the real function binaries with `AWS_LAMBDA_LOG_LEVEL=TRACE` and
//! `RUST_LOG=trace`, where `lambda_runtime` would log every raw event and the
//! AWS SDK every request body if `shared::telemetry` did not hold every
//! dependency at INFO.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use docusign_sim::{Endpoint, Fault};
use integration_tests::runtime::{scheduled_event, FunctionProcess};
use integration_tests::*;
use serde_json::{json, Value};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_secret_reaches_any_log_line() {
    let capture = Capture::default();
    let writer = capture.clone();
    // This thread's subscriber (the test runs on one thread), not the global
    // one: `TestEnv::start` of a test running beside this one may set that.
    let _capturing = tracing_subscriber::util::SubscriberInitExt::set_default(
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .with_writer(move || writer.clone())
            .finish(),
    );

    let env = TestEnv::start().await;
    let t = random_name("tenant");
    // Connect, with a replayed callback and a forged code on the way.
    let url = env.start_consent(&t).await;
    let state = query_param(&url, "state").unwrap();
    let query = env.visit_consent_page(&url, "").await;
    let code = query_param(&query, "code").unwrap();
    let page = env.call(Route::Callback, "GET", &query, None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let confirmation = callback_confirmation(&page).expect("an approved consent carries a confirmation");
    assert_eq!(env.call(Route::Callback, "GET", &query, None).await.status, 400);
    assert_eq!(env.confirm(&t, &confirmation).await.status, 200);
    // A confirmation used twice, and one from another tenant's admin.
    assert_eq!(env.confirm(&t, &confirmation).await.status, 404);
    assert_eq!(env.confirm(&random_name("tenant"), &confirmation).await.status, 404);
    // Refreshes: scheduled, forced by a 401, and after a 503.
    env.advance(5 * 3600);
    assert_eq!(env.sweep().await.refreshed, 1);
    env.sim.expire_access_tokens("11111111-1111-1111-1111-111111111111");
    let body = json!({
        "emailSubject": "Sign",
        "documents": [{"documentBase64": "JVBERi0xLjQK", "name": "d", "documentId": "1"}],
        "recipients": {"signers": [{"email": "a@example.com", "name": "A", "recipientId": "1"}]},
        "status": "sent"
    })
    .to_string();
    assert_eq!(env.send(&t, &body, Some("log-test")).await.status, 201);
    env.sim.push_fault(Endpoint::Envelopes, Fault::Status { status: 429, body: None, retry_after: Some(1) }, 1);
    assert_eq!(env.send(&t, &body, None).await.status, 201);
    env.advance(5 * 3600);
    env.sim.push_fault(Endpoint::Token, Fault::Status { status: 503, body: None, retry_after: None }, 1);
    assert_eq!(env.sweep().await.failed, 1);
    env.sim.push_fault(Endpoint::Token, Fault::Garbage, 1);
    assert_eq!(env.sweep().await.failed, 1);
    // Revoked consent, then disconnect.
    env.sim.revoke_consent("11111111-1111-1111-1111-111111111111");
    assert_eq!(env.sweep().await.reauth_required, 1);
    assert_eq!(env.call(Route::Connection, "DELETE", "", Some(&admin_token(&t))).await.status, 204);

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logs.lines().count() > 20, "logs were captured");
    assert!(logs.contains("tokens refreshed") && logs.contains("DocuSign connected"));
    let mut secrets = env.sim.issued_secrets();
    secrets.extend([state, code, confirmation, CLIENT_SECRET.to_owned(), JWT_SECRET.to_owned(), admin_token(&t)]);
    assert!(secrets.len() > 8, "{}", secrets.len());
    assert_no_secret_in(&logs, &secrets);
}

fn assert_no_secret_in(logs: &str, secrets: &[String]) {
    for secret in secrets {
        // A bearer token's signature alone is enough to flag a JWT.
        let needle = secret.rsplit('.').next().unwrap_or(secret);
        assert!(needle.len() >= 16, "a secret this short would match by chance");
        if let Some(line) = logs.lines().find(|l| l.contains(needle)) {
            // Name the line's message, never the secret.
            let message: Value = serde_json::from_str(line).unwrap_or_default();
            panic!("a secret issued in this journey appears in a log line: {}", message["fields"]["message"]);
        }
    }
}

/// What the real binaries log with the most verbose level Lambda offers.
fn trace_env(vars: Vec<(String, String)>) -> Vec<(String, String)> {
    vars.into_iter()
        .filter(|(k, _)| k != "RUST_LOG" && k != "AWS_LAMBDA_LOG_LEVEL")
        .chain([("RUST_LOG".to_owned(), "trace".to_owned()), ("AWS_LAMBDA_LOG_LEVEL".to_owned(), "TRACE".to_owned())])
        .collect()
}

fn api_event(method: &str, path: &str, query: &str, token: Option<&str>, body: Option<&str>) -> Value {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(b) = &bearer {
        headers.push(("authorization", b.as_str()));
    }
    let mut event: Value = serde_json::from_str(&apigw_event(method, path, query, &headers, body)).unwrap();
    event["rawQueryString"] = json!(query);
    event
}

async fn invoke(p: &FunctionProcess, event: Value) -> Value {
    p.invoke(event, Duration::from_secs(30)).await.unwrap_or_else(|e| panic!("{e}\n{}", p.logs_tail(30)))
}

fn body_of(answer: &Value) -> Value {
    serde_json::from_str(answer["body"].as_str().unwrap_or_default()).unwrap_or_default()
}

/// The consent result embedded in the callback page of a function's answer.
fn confirmation_in(answer: &Value) -> String {
    let page = Answer {
        status: answer["statusCode"].as_u64().unwrap() as u16,
        headers: Default::default(),
        body: answer["body"].as_str().unwrap().to_owned(),
    };
    callback_confirmation(&page).unwrap_or_else(|| panic!("no confirmation in {}", page.body))
}

#[tokio::test]
async fn no_secret_reaches_any_log_line_of_the_real_functions_at_trace() {
    let env = TestEnv::start().await;
    let vars = trace_env(env.function_env().await);
    let t = random_name("tenant");
    let admin = admin_token(&t);
    let consent = FunctionProcess::spawn("consent-start", &vars).await;
    let callback = FunctionProcess::spawn("oauth-callback", &vars).await;
    let send = FunctionProcess::spawn("send-envelope", &vars).await;
    let connection = FunctionProcess::spawn("connection", &vars).await;
    let refresh = FunctionProcess::spawn("token-refresh", &vars).await;

    // Connect: consent, DocuSign's page, the callback (and its replay), the
    // confirmation (and its replay).
    let started = invoke(&consent, api_event("POST", "/docusign/consent", "", Some(&admin), None)).await;
    assert_eq!(started["statusCode"], 200, "{started}");
    let url = body_of(&started)["authorization_url"].as_str().unwrap().to_owned();
    let state = query_param(&url, "state").unwrap();
    let query = env.visit_consent_page(&url, "").await;
    let code = query_param(&query, "code").unwrap();
    let page = invoke(&callback, api_event("GET", "/docusign/callback", &query, None, None)).await;
    assert_eq!(page["statusCode"], 200, "{page}");
    let confirmation = confirmation_in(&page);
    let replay = invoke(&callback, api_event("GET", "/docusign/callback", &query, None, None)).await;
    assert_eq!(replay["statusCode"], 400);
    let body = json!({ "confirmation": confirmation }).to_string();
    let confirm = api_event("POST", "/docusign/consent/confirm", "", Some(&admin), Some(&body));
    let confirmed = invoke(&consent, confirm.clone()).await;
    assert_eq!(confirmed["statusCode"], 200, "{confirmed}");
    assert_eq!(invoke(&consent, confirm).await["statusCode"], 404);

    // Use the connection: a send, the status, a scheduled refresh.
    let envelope = json!({
        "emailSubject": "Sign",
        "documents": [{"documentBase64": "JVBERi0xLjQK", "name": "d", "documentId": "1"}],
        "recipients": {"signers": [{"email": "a@example.com", "name": "A", "recipientId": "1"}]},
        "status": "sent"
    })
    .to_string();
    let user = user_token(&t);
    let sent = invoke(&send, api_event("POST", "/docusign/envelopes", "", Some(&user), Some(&envelope))).await;
    assert_eq!(sent["statusCode"], 201, "{sent}");
    let status = invoke(&connection, api_event("GET", "/docusign/connection", "", Some(&user), None)).await;
    assert_eq!(body_of(&status)["status"], "active", "{status}");
    env.set_access_expiry(&t, chrono::Utc::now() + chrono::Duration::hours(1)).await;
    let summary = invoke(&refresh, scheduled_event()).await;
    assert_eq!(summary["refreshed"], 1, "{summary}");
    let gone = invoke(&connection, api_event("DELETE", "/docusign/connection", "", Some(&admin), None)).await;
    assert_eq!(gone["statusCode"], 204, "{gone}");

    let processes = [&consent, &callback, &send, &connection, &refresh];
    let logs: String = processes.iter().map(|p| p.logs()).collect();
    let lines: Vec<Value> = logs
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("a log line that is not JSON: {l:.80}")))
        .collect();
    assert!(lines.len() > 10, "logs were captured: {}", lines.len());
    assert!(logs.contains("DocuSign connected"), "{logs}");
    // The level reached our crates (a DEBUG line of shared::telemetry)...
    let level_of = |line: &Value| line["level"].as_str().unwrap_or_default().to_owned();
    assert!(
        lines.iter().any(|l| level_of(l) == "DEBUG" && l["target"] == "shared::telemetry"),
        "our crates log at the configured level"
    );
    // ...and no dependency logged below INFO (lambda_runtime's raw events,
    // the AWS SDK's request bodies).
    for line in &lines {
        let level = level_of(line);
        if level == "DEBUG" || level == "TRACE" {
            let target = line["target"].as_str().unwrap_or_default();
            assert!(shared::telemetry::is_ours(target), "{target} logged at {level}");
        }
    }
    assert!(!logs.contains("raw JSON event"));

    let mut secrets = env.sim.issued_secrets();
    secrets.extend([state, code, confirmation, CLIENT_SECRET.to_owned(), JWT_SECRET.to_owned(), admin, user]);
    assert!(secrets.len() > 8, "{}", secrets.len());
    assert_no_secret_in(&logs, &secrets);
}
