//! No token, code, state, verifier or secret in any log line: the whole
//! journey (connect, replays, refreshes, a revoked consent, sends with 401
//! and 429, disconnect) runs with every log line captured at DEBUG level,
//! ours and the libraries', and the capture is searched for every secret the
//! simulator ever issued.

use std::io::Write;
use std::sync::{Arc, Mutex};

use docusign_sim::{Endpoint, Fault};
use integration_tests::*;
use serde_json::json;

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
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
        .with_writer(move || writer.clone())
        .init();

    let env = TestEnv::start().await;
    let t = random_name("tenant");
    // Connect, with a replayed callback and a forged code on the way.
    let url = env.start_consent(&t).await;
    let state = query_param(&url, "state").unwrap();
    let query = env.visit_consent_page(&url, "").await;
    let code = query_param(&query, "code").unwrap();
    assert_eq!(env.call(Route::Callback, "GET", &query, None).await.status, 200);
    assert_eq!(env.call(Route::Callback, "GET", &query, None).await.status, 400);
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
    secrets.extend([state, code, CLIENT_SECRET.to_owned(), JWT_SECRET.to_owned(), admin_token(&t)]);
    assert!(secrets.len() > 8, "{}", secrets.len());
    for secret in &secrets {
        // A bearer token's signature alone is enough to flag a JWT.
        let needle = secret.rsplit('.').next().unwrap_or(secret);
        assert!(!logs.contains(needle), "a secret issued in this journey appears in the logs");
    }
}
