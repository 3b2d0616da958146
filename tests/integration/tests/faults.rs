//! Faults of KMS, DynamoDB and DocuSign: each ends with a clear answer, no
//! lost token and no half-written connection.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use docusign_sim::{Endpoint, Fault};
use integration_tests::aws_faults::{target, AwsFault};
use integration_tests::*;
use secrecy::SecretString;
use serde_json::json;
use shared::cipher::{Binding, CipherError, KmsCipher, TokenCipher};
use shared::refresh::{ensure_fresh, Need, RefreshError, Refreshed};
use shared::store::{AUTH_KEY, REFRESH_KEY};
use tokio::time::Instant;

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
    assert!(page.body.contains("upstream_unavailable"), "{}", page.body);
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
    let body =
        json!({"emailSubject": "s", "documents": [{"documentBase64": "JVBERi0xLjQK", "name": "d", "documentId": "1"}]})
            .to_string();
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
    // Long enough to present (`PRESENT_MIN_LEFT`), then write attempts until the deadline.
    let r = ensure_fresh(&app, &t, &need, Instant::now() + Duration::from_secs(14)).await;
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
    assert!(page.body.contains("upstream_unavailable"), "{}", page.body);
    assert_eq!(env.status(&t).await, json!({"connected": false}));
    assert!(env.scan().await.iter().all(|i| i["key"].as_s().unwrap().starts_with("consent#")));
}

#[tokio::test]
async fn a_timeout_on_send_is_not_retried_because_the_envelope_may_exist() {
    let env = TestEnv::start().await;
    let t = tenant();
    env.connect(&t).await;
    env.sim.push_fault(Endpoint::Envelopes, Fault::CloseConnection, 1);
    let body =
        json!({"emailSubject": "s", "documents": [{"documentBase64": "JVBERi0xLjQK", "name": "d", "documentId": "1"}]})
            .to_string();
    let a = env.send(&t, &body, None).await;
    assert_eq!((a.status, a.error_code().as_str()), (503, "upstream_unavailable"), "{}", a.body);
    assert!(a.json()["error"]["message"].as_str().unwrap().contains("may or may not"));
    assert_eq!(env.sim.stats().envelope_calls, 1, "not retried");
}

// ---- DynamoDB throttling and KMS refusals (through the AWS fault proxy) -------------

/// Neither or both connection records, never one without the other.
async fn assert_whole(env: &TestEnv, t: &str) {
    let (auth, refresh) = (env.item(t, AUTH_KEY).await, env.item(t, REFRESH_KEY).await);
    assert_eq!(auth.is_some(), refresh.is_some(), "half a connection: {auth:?} {refresh:?}");
    if let (Some(a), Some(r)) = (auth, refresh) {
        assert_eq!((&a["connection_id"], &a["version"]), (&r["connection_id"], &r["version"]));
    }
}

fn envelope_body() -> String {
    json!({"emailSubject": "s", "documents": [{"documentBase64": "JVBERi0xLjQK", "name": "d", "documentId": "1"}]})
        .to_string()
}

#[tokio::test]
async fn brief_dynamodb_throttling_is_absorbed_by_the_sdks_retries() {
    let env = TestEnv::start().await;
    let t = tenant();
    let proxy = env.aws_faults().await;
    let app = env.app_through(&proxy).await;

    // The callback: the state lookup and the proposal's write are each throttled twice.
    proxy.fail(target::UPDATE_ITEM, AwsFault::ProvisionedThroughputExceeded, 2);
    proxy.fail(target::TRANSACT_WRITE, AwsFault::Throttling, 2);
    let url = env.start_consent(&t).await;
    let query = env.visit_consent_page(&url, "").await;
    let page = env.call_app(&app, Route::Callback, "GET", &query, None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!((proxy.seen(target::UPDATE_ITEM), proxy.injected(target::UPDATE_ITEM)), (3, 2), "retried by the SDK");
    assert_eq!((proxy.seen(target::TRANSACT_WRITE), proxy.injected(target::TRANSACT_WRITE)), (3, 2));
    assert_eq!(env.confirm(&t, &callback_confirmation(&page).unwrap()).await.status, 200);
    assert_eq!(env.status(&t).await["status"], "active");

    // The refresh: the due query, the reads and the fenced write throttled.
    env.advance(5 * 3600);
    proxy.fail(target::QUERY, AwsFault::ProvisionedThroughputExceeded, 1);
    proxy.fail(target::TRANSACT_GET, AwsFault::Throttling, 2);
    proxy.fail(target::TRANSACT_WRITE, AwsFault::ProvisionedThroughputExceeded, 2);
    let run = shared::sweep::sweep(&app, Instant::now() + Duration::from_secs(60)).await.unwrap();
    assert_eq!((run.due, run.refreshed), (1, 1), "{run:?}");
    assert_eq!(proxy.injected(target::TRANSACT_WRITE), 4);
    assert_eq!(env.item(&t, AUTH_KEY).await.unwrap()["version"].as_n().unwrap(), "2");
    let stats = env.sim.stats();
    assert_eq!((stats.refresh_grants, stats.refresh_token_reuse), (1, 0));
}

#[tokio::test]
async fn a_throttled_transaction_the_sdk_does_not_retry_is_retried_by_the_refresh() {
    let env = TestEnv::start().await;
    let t = tenant();
    env.connect(&t).await;
    env.advance(5 * 3600);
    let proxy = env.aws_faults().await;
    let app = env.app_through(&proxy).await;
    proxy.fail(target::TRANSACT_WRITE, AwsFault::TransactionThrottled, 2);
    let need = Need::Due { window: chrono::Duration::hours(4) };
    let r = ensure_fresh(&app, &t, &need, Instant::now() + Duration::from_secs(20)).await.unwrap();
    assert!(matches!(r, Refreshed::Fresh { refreshed_here: true, .. }), "{r:?}");
    assert_eq!(proxy.seen(target::TRANSACT_WRITE), 3, "not taken for a fence failure: retried until stored");
    assert_eq!(env.item(&t, AUTH_KEY).await.unwrap()["version"].as_n().unwrap(), "2");
    assert_eq!(env.sim.stats().refresh_grants, 1);
}

#[tokio::test]
async fn persistent_throttling_in_the_callback_is_a_clear_page_and_writes_nothing() {
    let env = TestEnv::start().await;
    let t = tenant();
    env.connect(&t).await;
    let before = env.status(&t).await;
    let before_item = env.item(&t, AUTH_KEY).await.unwrap();
    let proxy = env.aws_faults().await;
    let app = env.app_through(&proxy).await;

    // The state lookup throttled: nothing is used up, so the same link works once it passes.
    proxy.fail(target::UPDATE_ITEM, AwsFault::ProvisionedThroughputExceeded, u32::MAX);
    let url = env.start_consent(&t).await;
    let query = env.visit_consent_page(&url, "").await;
    let page = env.call_app(&app, Route::Callback, "GET", &query, None).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("upstream_unavailable"), "{}", page.body);
    assert_eq!(env.sim.stats().code_grants, 1, "the code was not exchanged");
    proxy.clear();

    // The connection write throttled: DocuSign's tokens for the new consent are dropped.
    proxy.fail(target::TRANSACT_WRITE, AwsFault::Throttling, u32::MAX);
    let page = env.call_app(&app, Route::Callback, "GET", &query, None).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("upstream_unavailable"), "{}", page.body);
    assert_eq!(proxy.seen(target::TRANSACT_WRITE), 3, "the SDK's three attempts");
    assert_eq!(env.sim.stats().code_grants, 2);
    assert_whole(&env, &t).await;
    assert_eq!(env.status(&t).await, before, "the previous connection is intact");
    assert_eq!(env.item(&t, AUTH_KEY).await.unwrap(), before_item);
    // That link is used up now; a new consent connects.
    assert_eq!(env.connect_as(&t, "").await.status, 200);
}

#[tokio::test]
async fn a_fenced_write_throttled_until_the_deadline_keeps_the_mark_and_never_reuses_the_token() {
    let env = TestEnv::start().await;
    let t = tenant();
    env.connect(&t).await;
    env.advance(5 * 3600);
    let proxy = env.aws_faults().await;
    let app = env.app_through(&proxy).await;
    proxy.fail(target::TRANSACT_WRITE, AwsFault::ProvisionedThroughputExceeded, u32::MAX);
    let need = Need::Due { window: chrono::Duration::hours(4) };
    let r = ensure_fresh(&app, &t, &need, Instant::now() + Duration::from_secs(14)).await;
    assert!(matches!(r, Err(RefreshError::TokensLost(_))), "{r:?}");
    assert!(proxy.seen(target::TRANSACT_WRITE) >= 3, "retried: {}", proxy.seen(target::TRANSACT_WRITE));
    assert_eq!(env.sim.stats().refresh_grants_ok, 1, "DocuSign rotated the token");
    assert_whole(&env, &t).await;
    assert_eq!(env.item(&t, AUTH_KEY).await.unwrap()["version"].as_n().unwrap(), "1", "nothing half-written");
    let lease = env.item(&t, shared::store::LEASE_KEY).await.unwrap();
    assert!(lease.contains_key("presented"), "the lease was not released: {lease:?}");

    env.advance(shared::refresh::LEASE_SECS + 1);
    let run = env.sweep().await;
    assert_eq!(run.reauth_required, 1, "{run:?}");
    let stats = env.sim.stats();
    assert_eq!((stats.refresh_grants, stats.refresh_token_reuse), (1, 0));
    assert_eq!(env.item(&t, REFRESH_KEY).await.unwrap()["last_error"].as_s().unwrap(), "refresh_token_lost");
}

#[tokio::test]
async fn throttling_on_send_is_a_503_with_retry_after_and_nothing_reaches_docusign() {
    let env = TestEnv::start().await;
    let t = tenant();
    env.connect(&t).await;
    let proxy = env.aws_faults().await;
    let app = env.app_through(&proxy).await;
    let token = user_token(&t);
    let body = envelope_body();

    // The connection read.
    proxy.fail(target::TRANSACT_GET, AwsFault::ProvisionedThroughputExceeded, u32::MAX);
    let a = env
        .send_call(&app, Call { token: Some(&token), body: Some(&body), ..Call::new(Route::Envelopes, "POST") })
        .await;
    assert_eq!((a.status, a.error_code().as_str()), (503, "upstream_unavailable"), "{}", a.body);
    assert!(a.header("retry-after").is_some());
    proxy.clear();

    // The idempotency claim.
    proxy.fail(target::PUT_ITEM, AwsFault::Throttling, u32::MAX);
    let call = Call {
        token: Some(&token),
        body: Some(&body),
        headers: vec![("idempotency-key", "k-1")],
        ..Call::new(Route::Envelopes, "POST")
    };
    let a = env.send_call(&app, call).await;
    assert_eq!((a.status, a.error_code().as_str()), (503, "upstream_unavailable"), "{}", a.body);
    assert!(a.header("retry-after").is_some());
    assert_eq!(env.sim.stats().envelope_calls, 0, "nothing was sent");
    proxy.clear();

    // Once it passes, the same key sends once.
    let a = env.send(&t, &body, Some("k-1")).await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(env.sim.stats().envelope_calls, 1);
}

#[tokio::test]
async fn kms_refusing_to_decrypt_in_a_refresh_presents_nothing_and_keeps_it_active() {
    let env = TestEnv::start().await;
    let t = tenant();
    env.connect(&t).await;
    env.advance(5 * 3600);
    let proxy = env.aws_faults().await;
    let app = env.app_through(&proxy).await;
    for refusal in [AwsFault::KmsAccessDenied, AwsFault::KmsInvalidState, AwsFault::KmsDisabled] {
        proxy.clear();
        proxy.fail(target::KMS_DECRYPT, refusal.clone(), u32::MAX);
        let run = shared::sweep::sweep(&app, Instant::now() + Duration::from_secs(60)).await.unwrap();
        assert_eq!((run.due, run.failed), (1, 1), "{refusal:?}: {run:?}");
        assert_eq!(env.sim.stats().refresh_grants, 0, "{refusal:?}: never presented");
        assert_eq!(env.status(&t).await["status"], "active");
        assert!(
            env.item(&t, shared::store::LEASE_KEY).await.is_none_or(|l| !l.contains_key("owner")),
            "lease released"
        );
    }
    assert_eq!(proxy.seen(target::KMS_DECRYPT), 3, "a refusal is not retried by the SDK");
    assert_eq!(env.sweep().await.refreshed, 1, "the next run refreshes");
    assert_eq!(env.sim.stats().refresh_token_reuse, 0);
}

#[tokio::test]
async fn kms_refusing_to_encrypt_in_the_callback_stores_nothing() {
    let env = TestEnv::start().await;
    let t = tenant();
    let proxy = env.aws_faults().await;
    let app = env.app_through(&proxy).await;
    proxy.fail(target::KMS_ENCRYPT, AwsFault::KmsAccessDenied, u32::MAX);
    let url = env.start_consent(&t).await;
    let query = env.visit_consent_page(&url, "").await;
    let page = env.call_app(&app, Route::Callback, "GET", &query, None).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("upstream_unavailable"), "{}", page.body);
    assert_eq!(env.status(&t).await, json!({"connected": false}));
    assert_whole(&env, &t).await;

    // Refusing to decrypt the access token on send: a 503, nothing sent.
    proxy.clear();
    env.connect(&t).await;
    proxy.fail(target::KMS_DECRYPT, AwsFault::KmsDisabled, u32::MAX);
    let token = user_token(&t);
    let body = envelope_body();
    let a = env
        .send_call(&app, Call { token: Some(&token), body: Some(&body), ..Call::new(Route::Envelopes, "POST") })
        .await;
    assert_eq!((a.status, a.error_code().as_str()), (503, "upstream_unavailable"), "{}", a.body);
    assert_eq!(env.sim.stats().envelope_calls, 0);
}

// ---- conditional-check failures: the connection changes under a refresh -------------

/// Runs `during` once DocuSign has received the refresh grant that `refresh`
/// presents (DocuSign answers 2 s later), so it lands between DocuSign's
/// answer and the refresh's fenced write.
async fn while_docusign_answers<R, D>(env: &TestEnv, refresh: R, during: D) -> (R::Output, D::Output)
where
    R: std::future::Future,
    D: std::future::Future,
{
    let during = async {
        while env.sim.stats().refresh_grants == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(env.sim.stats().refresh_grants_ok, 0, "DocuSign has not answered yet");
        during.await
    };
    futures_util::join!(refresh, during)
}

#[tokio::test]
async fn a_disconnect_while_docusign_answers_a_refresh_is_not_undone_by_it() {
    let env = TestEnv::start().await;
    let t = tenant();
    env.connect(&t).await;
    env.advance(5 * 3600);
    env.sim.push_fault(Endpoint::Token, Fault::Delay { ms: 2000 }, 1);

    let need = Need::Due { window: chrono::Duration::hours(4) };
    let refresh = ensure_fresh(&env.app, &t, &need, Instant::now() + Duration::from_secs(20));
    let admin = admin_token(&t);
    let disconnect = env.call(Route::Connection, "DELETE", "", Some(&admin));
    let (refreshed, disconnected) = while_docusign_answers(&env, refresh, disconnect).await;

    assert_eq!(disconnected.status, 204);
    assert!(matches!(refreshed, Ok(Refreshed::NotConnected)), "{refreshed:?}");
    assert_eq!(env.sim.stats().refresh_grants_ok, 1, "DocuSign rotated the token of the removed connection");
    // The fence refused the write: nothing of the tenant came back, not even the lease.
    assert!(env.scan().await.iter().all(|i| i["tenant_id"].as_s().unwrap() != &t), "{:?}", env.scan().await);
    assert_eq!(env.status(&t).await, json!({"connected": false}));
    assert_eq!(env.sweep().await.due, 0);
    env.connect(&t).await;
    assert_eq!(env.status(&t).await["status"], "active");
}

/// The callback of a new consent and its admin's confirmation: a new
/// connection landing.
async fn callback_and_confirm(env: &TestEnv, tenant: &str, query: &str) -> (Answer, Answer) {
    let page = env.call(Route::Callback, "GET", query, None).await;
    let confirmation = callback_confirmation(&page).unwrap_or_default();
    let confirmed = env.confirm(tenant, &confirmation).await;
    (page, confirmed)
}

#[tokio::test]
async fn a_new_consent_landing_while_docusign_answers_a_refresh_is_kept() {
    let env = TestEnv::start().await;
    let t = tenant();
    env.connect(&t).await;
    let old = env.item(&t, AUTH_KEY).await.unwrap()["connection_id"].clone();
    env.advance(5 * 3600);
    let url = env.start_consent(&t).await;
    let query = env.visit_consent_page(&url, "").await;
    env.sim.push_fault(Endpoint::Token, Fault::Delay { ms: 2000 }, 1);

    let need = Need::Due { window: chrono::Duration::hours(4) };
    let refresh = ensure_fresh(&env.app, &t, &need, Instant::now() + Duration::from_secs(20));
    let (refreshed, (page, confirmed)) =
        while_docusign_answers(&env, refresh, callback_and_confirm(&env, &t, &query)).await;

    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    assert_eq!(env.sim.stats().refresh_grants_ok, 1);
    // The refresh did not overwrite the new connection; it found it fresh.
    let Ok(Refreshed::Fresh { connection, refreshed_here: false, .. }) = refreshed else { panic!("{refreshed:?}") };
    let auth = env.item(&t, AUTH_KEY).await.unwrap();
    assert_ne!(auth["connection_id"], old);
    assert_eq!(connection.connection_id, auth["connection_id"].as_s().unwrap().as_str());
    assert_eq!(auth["version"].as_n().unwrap(), "1");
    assert_whole(&env, &t).await;
    assert!(env.item(&t, shared::store::LEASE_KEY).await.is_none_or(|l| !l.contains_key("presented")));
    // The new connection's tokens are the live ones.
    env.advance(5 * 3600);
    assert_eq!(env.sweep().await.refreshed, 1);
    assert_eq!(env.sim.stats().refresh_token_reuse, 0);
}

#[tokio::test]
async fn a_send_whose_refresh_races_a_reconnect_uses_the_new_connection() {
    let env = TestEnv::start().await;
    let t = tenant();
    env.connect(&t).await;
    env.advance(9 * 3600); // the stored access token has expired: the send must refresh
    let url = env.start_consent(&t).await;
    let query = env.visit_consent_page(&url, "").await;
    env.sim.push_fault(Endpoint::Token, Fault::Delay { ms: 2000 }, 1);

    let body = envelope_body();
    let send = env.send(&t, &body, None);
    let (sent, (page, confirmed)) = while_docusign_answers(&env, send, callback_and_confirm(&env, &t, &query)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    assert_eq!(sent.status, 201, "{}", sent.body);
    assert_eq!(env.sim.stats().envelope_calls, 1);
    assert_eq!(env.item(&t, AUTH_KEY).await.unwrap()["version"].as_n().unwrap(), "1", "the new connection, untouched");
}

#[tokio::test]
async fn concurrent_callbacks_with_the_same_state_propose_once() {
    let env = TestEnv::start().await;
    let t = tenant();
    let url = env.start_consent(&t).await;
    let query = env.visit_consent_page(&url, "").await;
    let other = env.reconfigured(Options::default()).await;
    let (a, b) = futures_util::join!(
        env.call(Route::Callback, "GET", &query, None),
        env.call_app(&other, Route::Callback, "GET", &query, None)
    );
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [200, 400], "{} / {}", a.body, b.body);
    let loser = if a.status == 400 { &a } else { &b };
    assert!(loser.body.contains("state_already_used"), "{}", loser.body);
    assert_eq!(env.sim.stats().code_grants, 1, "the code was exchanged once");
    let winner = if a.status == 200 { &a } else { &b };
    assert_eq!(env.confirm(&t, &callback_confirmation(winner).unwrap()).await.status, 200);
    assert_whole(&env, &t).await;
    assert_eq!(env.status(&t).await["status"], "active");
}

// ---- the Lambda deadline arriving mid-refresh -------------------------------------------

/// DocuSign answers a refresh grant only after our 10 s HTTP timeout, and
/// processes it (rotates the token) all the same. The sweep starts a refresh
/// only with `START_MARGIN` left, so the timeout ends the refresh before the
/// Lambda deadline: the connection stays active, nothing half-written, the
/// lease released. The spent token is then presented again by the next run:
/// under strict rotation that is a reuse, DocuSign refuses it, and the
/// connection is `reauth_required` (documented in the README's fault table).
#[tokio::test]
async fn docusign_answering_a_refresh_after_our_timeout_ends_before_the_deadline_and_the_next_run_decides() {
    let env = TestEnv::start().await;
    let t = tenant();
    env.connect(&t).await;
    env.advance(5 * 3600);
    env.sim.push_fault(Endpoint::Token, Fault::Delay { ms: 11_000 }, 1);
    let budget = shared::sweep::START_MARGIN + Duration::from_secs(1);
    let started = Instant::now();
    let run = shared::sweep::sweep(&env.app, started + budget).await.unwrap();
    assert!(started.elapsed() < budget, "the refresh outlasted the invocation: {:?}", started.elapsed());
    assert_eq!((run.due, run.failed), (1, 1), "{run:?}");
    assert_whole(&env, &t).await;
    assert_eq!(env.status(&t).await["status"], "active");
    let refresh = env.item(&t, REFRESH_KEY).await.unwrap();
    assert_eq!(
        (refresh["version"].as_n().unwrap().as_str(), refresh["last_error"].as_s().unwrap().as_str()),
        ("1", "network")
    );
    assert!(env.item(&t, shared::store::LEASE_KEY).await.is_none_or(|l| !l.contains_key("owner")), "lease released");

    let rotated = async {
        while env.sim.stats().refresh_grants_ok == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), rotated)
        .await
        .expect("DocuSign processed the grant after our timeout");
    let run = env.sweep().await;
    assert_eq!(run.reauth_required, 1, "{run:?}");
    assert_eq!(env.sim.stats().refresh_token_reuse, 1, "the spent token was presented again");
    assert_eq!(env.item(&t, REFRESH_KEY).await.unwrap()["last_error"].as_s().unwrap(), "invalid_grant");
    assert_whole(&env, &t).await;
}

/// AWS is so slow that, once the lease is taken, too little time is left for
/// DocuSign's answer and the write: the refresh token is not presented, the
/// tenant is `left` for the next run, which refreshes it.
#[tokio::test]
async fn a_sweep_whose_deadline_comes_too_near_before_presenting_presents_nothing() {
    let env = TestEnv::start().await;
    let t = tenant();
    env.connect(&t).await;
    env.advance(5 * 3600);
    let proxy = env.aws_faults().await;
    let app = env.app_through(&proxy).await;
    proxy.fail(target::UPDATE_ITEM, AwsFault::Delay(Duration::from_secs(6)), 1); // taking the lease
    let budget = shared::sweep::START_MARGIN + Duration::from_secs(1);
    let started = Instant::now();
    let run = shared::sweep::sweep(&app, started + budget).await.unwrap();
    assert!(started.elapsed() < budget);
    assert_eq!((run.due, run.left, run.failed), (1, 1, 0), "{run:?}");
    assert_eq!(env.sim.stats().refresh_grants, 0, "not presented");
    assert!(env.item(&t, shared::store::LEASE_KEY).await.is_none_or(|l| !l.contains_key("owner")), "lease released");
    assert_eq!(env.item(&t, REFRESH_KEY).await.unwrap().get("last_error"), None, "nothing failed");
    let run = env.sweep().await;
    assert_eq!(run.refreshed, 1, "{run:?}");
    assert_eq!(env.sim.stats().refresh_token_reuse, 0);
}

/// A send whose stored access token has expired needs a refresh, but its
/// invocation has less time left than DocuSign may take to answer: it does
/// not present the refresh token (Lambda would end the invocation holding
/// DocuSign's only copy of the new tokens, and the connection would need a
/// new consent). It answers 503 with Retry-After before its deadline; the
/// next run refreshes. A token still valid for a while is sent with instead.
#[tokio::test]
async fn a_send_with_too_little_time_left_for_a_refresh_does_not_present_the_token() {
    let env = TestEnv::start().await;
    let t = tenant();
    env.connect(&t).await;
    env.advance(9 * 3600);
    env.sim.push_fault(Endpoint::Token, Fault::Delay { ms: 8000 }, 1);
    let token = user_token(&t);
    let body = envelope_body();
    let budget = Duration::from_secs(9);
    let call =
        Call { token: Some(&token), body: Some(&body), budget: Some(budget), ..Call::new(Route::Envelopes, "POST") };
    let started = Instant::now();
    let a = env.send_call(&env.app, call).await;
    assert!(started.elapsed() < budget, "answered after the deadline: {:?}", started.elapsed());
    assert_eq!((a.status, a.error_code().as_str()), (503, "upstream_unavailable"), "{}", a.body);
    assert!(a.header("retry-after").is_some());
    let stats = env.sim.stats();
    assert_eq!((stats.refresh_grants, stats.envelope_calls), (0, 0), "{stats:?}");
    assert_whole(&env, &t).await;
    assert_eq!(env.status(&t).await["status"], "active");

    env.sim.clear_faults();
    assert_eq!(env.sweep().await.refreshed, 1, "the next run refreshes");
    assert_eq!(env.sim.stats().refresh_token_reuse, 0);

    // Three minutes left on the access token (inside the 5-minute margin):
    // no time to refresh, so the send goes ahead with it.
    env.advance(8 * 3600 - 3 * 60);
    let call =
        Call { token: Some(&token), body: Some(&body), budget: Some(budget), ..Call::new(Route::Envelopes, "POST") };
    let a = env.send_call(&env.app, call).await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(env.sim.stats().refresh_grants, 1, "no second refresh");
}
