//! Faults of KMS, DynamoDB and DocuSign: each ends with a clear answer, no
//! lost token and no half-written connection.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use docusign_sim::{Endpoint, Fault};
use integration_tests::*;
use secrecy::SecretString;
use serde_json::json;
use shared::cipher::{Binding, CipherError, KmsCipher, TokenCipher};
use shared::refresh::{ensure_fresh, Need, RefreshError, Refreshed};
use shared::store::{AUTH_KEY, REFRESH_KEY};
use tokio::time::Instant;

fn tenant() -> String {
    random_name("tenant")
}

/// The real KMS cipher, whose next `fail_encrypts` encryptions fail.
struct FlakyEncrypt {
    inner: KmsCipher,
    fail_encrypts: AtomicU32,
}

#[async_trait]
impl TokenCipher for FlakyEncrypt {
    async fn encrypt(&self, binding: &Binding<'_>, plaintext: &SecretString) -> Result<Vec<u8>, CipherError> {
        if self.fail_encrypts.load(Ordering::SeqCst) > 0 {
            self.fail_encrypts.fetch_sub(1, Ordering::SeqCst);
            return Err(CipherError::Encrypt("injected KMS failure".into()));
        }
        self.inner.encrypt(binding, plaintext).await
    }
    async fn decrypt(&self, binding: &Binding<'_>, ciphertext: &[u8]) -> Result<SecretString, CipherError> {
        self.inner.decrypt(binding, ciphertext).await
    }
}

#[tokio::test]
async fn kms_unreachable_during_the_callback_stores_nothing() {
    let env = TestEnv::start().await;
    let t = tenant();
    let url = env.start_consent(&t).await;
    let query = env.visit_consent_page(&url, "").await;
    let broken = env.app_with(None, Some(Box::new(env.unreachable_kms().await))).await;
    let page = env.call_app(&broken, Route::Callback, "GET", &query, None).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("temporarily_unavailable"), "{}", page.body);
    assert_eq!(env.status(&t).await, json!({"connected": false}));
}

#[tokio::test]
async fn dynamodb_unreachable_is_a_503_json_error_on_every_route() {
    let env = TestEnv::start().await;
    let t = tenant();
    let broken = env.app_with(Some(&TestEnv::unreachable_endpoint()), None).await;
    for (route, method, token) in [
        (Route::Consent, "POST", admin_token(&t)),
        (Route::Connection, "GET", user_token(&t)),
        (Route::Connection, "DELETE", admin_token(&t)),
    ] {
        let a = env.call_app(&broken, route, method, "", Some(&token)).await;
        assert_eq!((a.status, a.error_code().as_str()), (503, "upstream_unavailable"), "{method}: {}", a.body);
        assert!(a.header("retry-after").is_some());
    }
    let body = json!({"emailSubject": "s", "documents": [{"documentBase64": "JVBERi0xLjQK", "name": "d", "documentId": "1"}]}).to_string();
    let token = user_token(&t);
    let a = env
        .send_call(&broken, Call { token: Some(&token), body: Some(&body), ..Call::new(Route::Envelopes, "POST") })
        .await;
    assert_eq!((a.status, a.error_code().as_str()), (503, "upstream_unavailable"), "{}", a.body);
}

#[tokio::test]
async fn kms_unreachable_during_a_refresh_presents_nothing_and_keeps_the_connection() {
    let env = TestEnv::start().await;
    let t = tenant();
    env.connect(&t).await;
    env.advance(5 * 3600);
    let before = env.item(&t, REFRESH_KEY).await.unwrap();
    let broken = env.app_with(None, Some(Box::new(env.unreachable_kms().await))).await;
    let summary = shared::sweep::sweep(&broken, Instant::now() + Duration::from_secs(60)).await.unwrap();
    assert_eq!((summary.due, summary.failed), (1, 1), "{summary:?}");
    assert_eq!(env.sim.stats().refresh_grants, 0, "the refresh token was never presented");
    assert_eq!(env.item(&t, REFRESH_KEY).await.unwrap()["refresh_token"], before["refresh_token"]);
    assert_eq!(env.sweep().await.refreshed, 1, "the next run refreshes");
}

#[tokio::test]
async fn a_failing_write_after_docusigns_answer_is_retried_and_the_tokens_land() {
    let env = TestEnv::start().await;
    let t = tenant();
    env.connect(&t).await;
    env.advance(5 * 3600);
    let flaky = FlakyEncrypt { inner: env.kms_cipher().await, fail_encrypts: AtomicU32::new(3) };
    let app = env.app_with(None, Some(Box::new(flaky))).await;
    let need = Need::Due { window: chrono::Duration::hours(4) };
    let r = ensure_fresh(&app, &t, &need, Instant::now() + Duration::from_secs(20)).await.unwrap();
    assert!(matches!(r, Refreshed::Fresh { refreshed_here: true, .. }), "{r:?}");
    assert_eq!(env.item(&t, AUTH_KEY).await.unwrap()["version"].as_n().unwrap(), "2");
    assert_eq!(env.sim.stats().refresh_grants, 1);
    // And the stored refresh token is the live one: the next refresh works.
    env.advance(5 * 3600);
    assert_eq!(env.sweep().await.refreshed, 1);
    assert_eq!(env.sim.stats().refresh_token_reuse, 0);
}

#[tokio::test]
async fn tokens_that_can_never_be_stored_are_not_presented_again() {
    let env = TestEnv::start().await;
    let t = tenant();
    env.connect(&t).await;
    env.advance(5 * 3600);
    let broken = FlakyEncrypt { inner: env.kms_cipher().await, fail_encrypts: AtomicU32::new(u32::MAX) };
    let app = env.app_with(None, Some(Box::new(broken))).await;
    let need = Need::Due { window: chrono::Duration::hours(4) };
    let r = ensure_fresh(&app, &t, &need, Instant::now() + Duration::from_secs(3)).await;
    assert!(matches!(r, Err(RefreshError::TokensLost(_))), "{r:?}");
    assert_eq!(env.item(&t, AUTH_KEY).await.unwrap()["version"].as_n().unwrap(), "1", "nothing half-written");

    // Once the lease has expired, the next run sees that the token was spent.
    env.advance(shared::refresh::LEASE_SECS + 1);
    let run = env.sweep().await;
    assert_eq!(run.reauth_required, 1, "{run:?}");
    let stats = env.sim.stats();
    assert_eq!((stats.refresh_grants, stats.refresh_token_reuse), (1, 0));
}

#[tokio::test]
async fn docusign_garbage_or_a_dropped_connection_fails_the_callback_cleanly() {
    let env = TestEnv::start().await;
    let t = tenant();
    env.sim.push_fault(Endpoint::Token, Fault::Garbage, 1);
    let page = env.connect_as(&t, "").await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("exchange_failed"), "{}", page.body);

    env.sim.push_fault(Endpoint::UserInfo, Fault::CloseConnection, 1);
    let page = env.connect_as(&t, "").await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("temporarily_unavailable"), "{}", page.body);
    assert_eq!(env.status(&t).await, json!({"connected": false}));
    assert!(env.scan().await.iter().all(|i| i["key"].as_s().unwrap().starts_with("consent#")));
}

#[tokio::test]
async fn a_timeout_on_send_is_not_retried_because_the_envelope_may_exist() {
    let env = TestEnv::start().await;
    let t = tenant();
    env.connect(&t).await;
    env.sim.push_fault(Endpoint::Envelopes, Fault::CloseConnection, 1);
    let body = json!({"emailSubject": "s", "documents": [{"documentBase64": "JVBERi0xLjQK", "name": "d", "documentId": "1"}]}).to_string();
    let a = env.send(&t, &body, None).await;
    assert_eq!((a.status, a.error_code().as_str()), (503, "upstream_unavailable"), "{}", a.body);
    assert!(a.json()["error"]["message"].as_str().unwrap().contains("may or may not"));
    assert_eq!(env.sim.stats().envelope_calls, 1, "not retried");
}
