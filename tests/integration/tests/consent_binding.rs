//! A consent completes only when the CRM admin who started it confirms it,
//! and tokens go only to DocuSign's API hosts (`DOCUSIGN_API_HOSTS`).
//! Real handlers, DynamoDB and KMS on moto, DocuSign as the simulator.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use docusign_sim::{SimAccount, SimUser};
use integration_tests::fixtures::documents_envelope;
use integration_tests::runtime::FunctionProcess;
use integration_tests::*;
use secrecy::SecretString;
use serde_json::{json, Value};
use shared::cipher::{Binding, CipherError, KmsCipher, TokenCipher};
use shared::store::{AUTH_KEY, REFRESH_KEY};

const LOOK_ALIKE: &str = "https://eu.docusign.net.attacker.example";

/// A DocuSign user whose only account lives on a host that is not DocuSign's.
fn foreign_user() -> SimUser {
    SimUser {
        sub: "33333333-3333-3333-3333-333333333333".into(),
        name: "Foreign Host".into(),
        email: "foreign@example.com".into(),
        accounts: vec![SimAccount {
            account_id: "acc-foreign-3".into(),
            account_name: "Foreign Account".into(),
            is_default: true,
            base_uri: Some(LOOK_ALIKE.into()),
        }],
    }
}

/// The callback's page for a fresh consent of `tenant`, not confirmed.
async fn approved_page(env: &TestEnv, tenant: &str) -> (Answer, String) {
    let page = env.connect_as(tenant, "").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let confirmation = callback_confirmation(&page).expect("approved");
    (page, confirmation)
}

fn admin_with_sub(tenant: &str, sub: &str) -> String {
    let mut c = claims(tenant, "admin");
    c["sub"] = json!(sub);
    token_with(c, JWT_SECRET)
}

async fn tenant_items(env: &TestEnv, tenant: &str) -> Vec<String> {
    env.scan()
        .await
        .into_iter()
        .filter(|i| i["tenant_id"].as_s().unwrap() == tenant)
        .map(|i| i["key"].as_s().unwrap().clone())
        .collect()
}

// ---- the callback proposes, the admin confirms --------------------------------------

#[tokio::test]
async fn the_callback_alone_connects_nothing_and_posts_a_confirmation_to_the_crm_origin_only() {
    let env = TestEnv::start().await;
    let t = tenant();
    let (page, confirmation) = approved_page(&env, &t).await;

    let result = callback_result(&page);
    assert_eq!(result["type"], "docusign-consent");
    assert_eq!(result["status"], "approved");
    assert_eq!(result["user_name"], "Sim Signer");
    assert_eq!(result["account_name"], "Sim Default Account");
    assert!(confirmation.len() >= 22, "at least 128 random bits: {confirmation}");
    assert_eq!(page.body.matches(&confirmation).count(), 1, "only in the result message");
    assert!(page.body.contains(&format!("var origin = \"{CRM_ORIGIN}\";")));
    assert!(page.body.contains("window.opener.postMessage(message, origin)"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert!(page.header("content-security-policy").unwrap().contains("default-src 'none'"));

    // A forwarded or stolen consent link ends here: the tenant is not connected.
    assert_eq!(env.status(&t).await, json!({"connected": false}));
    assert!(env.item(&t, AUTH_KEY).await.is_none() && env.item(&t, REFRESH_KEY).await.is_none());
    let a = env.send(&t, &documents_envelope().to_string(), None).await;
    assert_eq!((a.status, a.error_code().as_str()), (409, "not_connected"));
    assert!(env.sim.envelopes().is_empty());
}

#[tokio::test]
async fn the_admin_who_started_the_consent_confirms_it_once() {
    let env = TestEnv::start().await;
    let t = tenant();
    let (_, confirmation) = approved_page(&env, &t).await;

    let a = env.confirm(&t, &confirmation).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let body = a.json();
    assert_eq!(body["connected"], true);
    assert_eq!(body["status"], "active");
    assert_eq!(body["user_name"], "Sim Signer");
    assert_eq!(body, env.status(&t).await, "the same body as GET /docusign/connection");
    // The proposal is gone: the confirmation works once.
    assert!(!tenant_items(&env, &t).await.iter().any(|k| k.starts_with("proposal#")));
    let again = env.confirm(&t, &confirmation).await;
    assert_eq!((again.status, again.error_code().as_str()), (404, "consent_not_found"));
    // And the connection works.
    let sent = env.send(&t, &documents_envelope().to_string(), None).await;
    assert_eq!(sent.status, 201, "{}", sent.body);
    assert_eq!(env.sim.stats().code_grants, 1);
}

#[tokio::test]
async fn every_confirmation_that_cannot_be_accepted_gets_the_same_404() {
    let env = TestEnv::start().await;
    let (t, other) = (tenant(), tenant());
    let (_, confirmation) = approved_page(&env, &t).await;

    let answers = vec![
        ("unknown", env.confirm(&t, &"A".repeat(43)).await),
        ("too short", env.confirm(&t, "x").await),
        ("too long", env.confirm(&t, &"A".repeat(4096)).await),
        ("another tenant's admin", env.confirm(&other, &confirmation).await),
        ("another admin of the tenant", env.confirm_with(&admin_with_sub(&t, "someone-else"), &confirmation).await),
    ];
    let first = &answers[0].1;
    for (case, a) in &answers {
        assert_eq!(a.status, 404, "{case}: {}", a.body);
        assert_eq!(a.body, first.body, "{case}: the same answer, no hint of which check failed");
    }
    assert_eq!(first.error_code(), "consent_not_found");
    assert_eq!(env.status(&t).await, json!({"connected": false}));
    assert_eq!(env.status(&other).await, json!({"connected": false}));

    // None of the refused attempts used it up: its own admin still can.
    assert_eq!(env.confirm(&t, &confirmation).await.status, 200);
    assert_eq!(env.status(&other).await, json!({"connected": false}));
}

#[tokio::test]
async fn a_confirmation_expires_ten_minutes_after_the_callback() {
    let env = TestEnv::start().await;
    let t = tenant();
    let (_, confirmation) = approved_page(&env, &t).await;
    env.advance(10 * 60 + 1);
    let a = env.confirm(&t, &confirmation).await;
    assert_eq!((a.status, a.error_code().as_str()), (404, "consent_not_found"));
    assert_eq!(env.status(&t).await, json!({"connected": false}));

    // Within the ten minutes it is accepted.
    let (_, confirmation) = approved_page(&env, &t).await;
    env.advance(9 * 60);
    assert_eq!(env.confirm(&t, &confirmation).await.status, 200);
}

#[tokio::test]
async fn confirm_refuses_users_missing_tokens_and_bad_bodies_and_changes_nothing() {
    let env = TestEnv::start().await;
    let t = tenant();
    let (_, confirmation) = approved_page(&env, &t).await;
    let body = json!({ "confirmation": confirmation }).to_string();
    let call = |token: Option<String>, body: String| {
        let env = &env;
        async move {
            let call = Call { token: token.as_deref(), body: Some(&body), ..Call::new(Route::Confirm, "POST") };
            env.send_call(&env.app, call).await
        }
    };
    let a = call(Some(user_token(&t)), body.clone()).await;
    assert_eq!((a.status, a.error_code().as_str()), (403, "forbidden"));
    let a = call(None, body.clone()).await;
    assert_eq!((a.status, a.error_code().as_str()), (401, "unauthorized"));
    for (bad, names) in [
        ("not json", "body"),
        ("{}", "confirmation"),
        (r#"{"confirmation": 42}"#, "confirmation"),
        (r#"["x"]"#, "confirmation"),
    ] {
        let a = call(Some(admin_token(&t)), bad.to_owned()).await;
        assert_eq!((a.status, a.error_code().as_str()), (400, "invalid_request"), "{bad}");
        assert!(a.json()["error"]["message"].as_str().unwrap().contains(names), "{bad}: {}", a.body);
    }
    let a = env
        .send_call(
            &env.app,
            Call { token: Some(&admin_token(&t)), body: Some(&body), ..Call::new(Route::Confirm, "GET") },
        )
        .await;
    assert_eq!(a.status, 405);
    assert_eq!(env.status(&t).await, json!({"connected": false}));
    // The proposal survived every refused call.
    assert_eq!(env.confirm(&t, &confirmation).await.status, 200);
}

#[tokio::test]
async fn a_disconnect_cancels_pending_and_proposed_consents() {
    let env = TestEnv::start().await;
    let t = tenant();
    let (_, confirmation) = approved_page(&env, &t).await;
    assert!(tenant_items(&env, &t).await.iter().any(|k| k.starts_with("proposal#")));

    assert_eq!(env.call(Route::Connection, "DELETE", "", Some(&admin_token(&t))).await.status, 204);
    assert!(tenant_items(&env, &t).await.is_empty(), "{:?}", tenant_items(&env, &t).await);
    let a = env.confirm(&t, &confirmation).await;
    assert_eq!((a.status, a.error_code().as_str()), (404, "consent_not_found"));
    assert_eq!(env.status(&t).await, json!({"connected": false}));
}

#[tokio::test]
async fn a_confirmation_racing_a_disconnect_never_brings_the_connection_back() {
    let env = TestEnv::start().await;
    let t = tenant();
    for round in 0..4 {
        let (_, confirmation) = approved_page(&env, &t).await;
        let token = admin_token(&t);
        let (confirmed, disconnected) =
            tokio::join!(env.confirm(&t, &confirmation), env.call(Route::Connection, "DELETE", "", Some(&token)),);
        assert_eq!(disconnected.status, 204, "round {round}");
        assert!(matches!(confirmed.status, 200 | 404), "round {round}: {}", confirmed.body);
        // Whichever came first, the disconnect has the last word.
        assert_eq!(env.status(&t).await, json!({"connected": false}), "round {round}");
        assert!(env.item(&t, AUTH_KEY).await.is_none() && env.item(&t, REFRESH_KEY).await.is_none());
    }
}

#[tokio::test]
async fn a_callback_finishing_after_a_disconnect_proposes_nothing() {
    let env = TestEnv::start().await;
    let t = tenant();
    let url = env.start_consent(&t).await;
    let query = env.visit_consent_page(&url, "").await;
    // The disconnect lands while DocuSign is still answering the exchange.
    env.sim.push_fault(docusign_sim::Endpoint::Token, docusign_sim::Fault::Delay { ms: 800 }, 1);
    let token = admin_token(&t);
    let (page, _) = tokio::join!(env.call(Route::Callback, "GET", &query, None), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        env.call(Route::Connection, "DELETE", "", Some(&token)).await
    });
    assert_eq!(page.status, 400, "{}", page.body);
    assert_eq!(callback_result(&page)["code"], "unknown_state");
    assert!(!tenant_items(&env, &t).await.iter().any(|k| k.starts_with("proposal#")));
    assert_eq!(env.status(&t).await, json!({"connected": false}));
}

// ---- tokens go only to DocuSign's API hosts ---------------------------------------------

#[tokio::test]
async fn an_account_on_a_foreign_host_is_not_usable_at_the_callback() {
    let env = TestEnv::start().await;
    env.sim.add_user(foreign_user());
    let t = tenant();
    let page = env.connect_as(&t, "sim_user=33333333-3333-3333-3333-333333333333").await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert_eq!(callback_result(&page)["code"], "no_usable_account");
    assert!(!tenant_items(&env, &t).await.iter().any(|k| k.starts_with("proposal#")), "nothing proposed");
    assert_eq!(env.status(&t).await, json!({"connected": false}));

    // Pinned to that account: the same.
    let pinned = TestEnv::with(Options { account_id: Some("acc-foreign-3".into()), ..Options::default() }).await;
    pinned.sim.add_user(foreign_user());
    let page = pinned.connect_as(&t, "sim_user=33333333-3333-3333-3333-333333333333").await;
    assert_eq!(page.status, 400, "{}", page.body);
    let result = callback_result(&page);
    assert_eq!(result["code"], "no_usable_account");
    assert!(result["message"].as_str().unwrap().contains("acc-foreign-3"));
    assert!(!tenant_items(&pinned, &t).await.iter().any(|k| k.starts_with("proposal#")));
}

/// A cipher that counts decryptions and otherwise is KMS.
struct CountingCipher {
    inner: KmsCipher,
    decrypts: Arc<AtomicUsize>,
}

#[async_trait]
impl TokenCipher for CountingCipher {
    async fn encrypt(&self, binding: &Binding<'_>, plaintext: &SecretString) -> Result<Vec<u8>, CipherError> {
        self.inner.encrypt(binding, plaintext).await
    }
    async fn decrypt(&self, binding: &Binding<'_>, ciphertext: &[u8]) -> Result<SecretString, CipherError> {
        self.decrypts.fetch_add(1, Ordering::SeqCst);
        self.inner.decrypt(binding, ciphertext).await
    }
}

async fn set_base_uri(env: &TestEnv, tenant: &str, base_uri: &str) {
    env.dynamo
        .update_item()
        .table_name(&env.table)
        .set_key(Some(shared::store::dynamo::key(tenant, AUTH_KEY)))
        .update_expression("SET base_uri = :b")
        .expression_attribute_values(":b", aws_sdk_dynamodb::types::AttributeValue::S(base_uri.to_owned()))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_rewritten_base_uri_gets_no_token_and_no_document() {
    let env = TestEnv::start().await;
    let t = tenant();
    env.connect(&t).await;
    let decrypts = Arc::new(AtomicUsize::new(0));
    let cipher = CountingCipher { inner: env.kms_cipher().await, decrypts: decrypts.clone() };
    let app = env.app_with(None, Some(Box::new(cipher))).await;
    let token_calls = env.sim.stats().token_calls;
    let body = documents_envelope().to_string();

    for rewritten in [
        LOOK_ALIKE,
        "https://eu.docusign.net@attacker.example",
        "http://eu.docusign.net",
        "https://attacker.example",
        "not a url",
    ] {
        set_base_uri(&env, &t, rewritten).await;
        // Also with a token about to expire: nothing is refreshed either.
        env.set_access_expiry(&t, env.now() + chrono::Duration::seconds(30)).await;
        let call = Call { token: Some(&user_token(&t)), body: Some(&body), ..Call::new(Route::Envelopes, "POST") };
        let a = env.send_call(&app, call).await;
        assert_eq!((a.status, a.error_code().as_str()), (409, "connection_unusable"), "{rewritten}: {}", a.body);
        assert!(!a.body.contains("attacker"), "the answer does not echo the stored value");
    }
    assert_eq!(decrypts.load(Ordering::SeqCst), 0, "no token was decrypted");
    assert_eq!(env.sim.stats().token_calls, token_calls, "no refresh was tried");
    assert!(env.sim.envelopes().is_empty(), "nothing was sent");

    // Put back, the connection works again.
    set_base_uri(&env, &t, &env.sim.base_url()).await;
    let call = Call { token: Some(&user_token(&t)), body: Some(&body), ..Call::new(Route::Envelopes, "POST") };
    assert_eq!(env.send_call(&app, call).await.status, 201);
}

#[tokio::test]
async fn a_refused_base_uri_raises_an_alarm_naming_the_tenant_in_the_function_log() {
    let env = TestEnv::start().await;
    let t = tenant();
    env.connect(&t).await;
    set_base_uri(&env, &t, LOOK_ALIKE).await;
    let process = FunctionProcess::spawn("send-envelope", &env.function_env().await).await;
    let bearer = format!("Bearer {}", user_token(&t));
    let body = documents_envelope().to_string();
    let event: Value = serde_json::from_str(&apigw_event(
        "POST",
        "/docusign/envelopes",
        "",
        &[("authorization", bearer.as_str()), ("content-type", "application/json")],
        Some(&body),
    ))
    .unwrap();
    let answer = process.invoke(event, Duration::from_secs(30)).await.expect("the function answers");
    assert_eq!(answer["statusCode"], 409, "{answer}");
    assert!(env.sim.envelopes().is_empty());
    let logs = process.logs();
    let alarm =
        logs.lines().find(|l| l.contains("base_uri_not_allowed")).unwrap_or_else(|| panic!("no alarm line: {logs}"));
    let line: Value = serde_json::from_str(alarm).expect("JSON log line");
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["fields"]["tenant"], t.as_str());
}
