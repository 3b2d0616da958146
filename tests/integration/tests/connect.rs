//! Connecting a tenant, end to end: API Gateway v2.0 events into the real
//! handlers, DynamoDB and KMS over the wire (moto), DocuSign as our simulator.

use docusign_sim::{Endpoint, Fault, SimAccount, SimUser};
use integration_tests::fixtures::documents_envelope;
use integration_tests::*;
use secrecy::ExposeSecret;
use serde_json::json;
use shared::cipher::{Binding, KmsCipher, Record, TokenCipher};
use shared::store::{AUTH_KEY, REFRESH_KEY};

const DEFAULT_USER: &str = "11111111-1111-1111-1111-111111111111";

fn other_user() -> SimUser {
    SimUser {
        sub: "22222222-2222-2222-2222-222222222222".into(),
        name: "Other Signer".into(),
        email: "other@example.com".into(),
        accounts: vec![SimAccount {
            account_id: "acc-other-9".into(),
            account_name: "Other Account".into(),
            is_default: true,
            // The simulator itself, an allowed host in these tests.
            base_uri: None,
        }],
    }
}

#[tokio::test]
async fn consent_url_carries_every_parameter_docusign_needs() {
    let env = TestEnv::start().await;
    let t = tenant();
    let a = env.call(Route::Consent, "POST", "", Some(&admin_token(&t))).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let body = a.json();
    let url = body["authorization_url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/oauth/auth?", env.sim.base_url())), "{url}");
    assert_eq!(query_param(url, "response_type").as_deref(), Some("code"));
    assert_eq!(query_param(url, "scope").as_deref(), Some("signature extended"));
    assert!(url.contains("scope=signature%20extended"), "scopes are %20-separated: {url}");
    assert_eq!(query_param(url, "client_id").as_deref(), Some(CLIENT_ID));
    assert_eq!(query_param(url, "redirect_uri").as_deref(), Some(REDIRECT_URI));
    assert_eq!(query_param(url, "code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(query_param(url, "code_challenge").unwrap().len(), 43);
    let state = query_param(url, "state").unwrap();
    assert!(state.len() >= 40, "{state}");
    let expires = chrono::DateTime::parse_from_rfc3339(body["expires_at"].as_str().unwrap()).unwrap();
    let minutes = (expires.with_timezone(&chrono::Utc) - env.now()).num_seconds();
    assert!((540..=600).contains(&minutes), "state expires within 10 minutes: {minutes}s");

    // A second consent has another state and challenge.
    let again = env.start_consent(&t).await;
    assert_ne!(query_param(&again, "state").unwrap(), state);
    assert_ne!(query_param(&again, "code_challenge"), query_param(url, "code_challenge"));

    // The pending consent is stored by the hash of its state, never the state.
    let items = env.scan().await;
    assert_eq!(items.len(), 2);
    for item in &items {
        let key = item["key"].as_s().unwrap();
        assert!(key.starts_with("consent#") && !key.contains(&state), "{key}");
        assert!(!format!("{item:?}").contains(&state));
    }
}

#[tokio::test]
async fn a_tenant_connects_and_sees_who_is_connected() {
    let env = TestEnv::start().await;
    let t = tenant();
    assert_eq!(env.status(&t).await, json!({"connected": false}));

    let page = env.connect(&t).await;
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
    assert!(page.body.contains("Sim Signer") && page.body.contains("Sim Default Account"), "{}", page.body);
    assert!(page.body.contains("postMessage") && page.body.contains(CRM_ORIGIN));
    assert!(page.body.contains("window.close"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");

    let s = env.status(&t).await;
    assert_eq!(s["connected"], true);
    assert_eq!(s["status"], "active");
    assert_eq!(s["environment"], "sandbox");
    assert_eq!(s["account_id"], "acc-default-1");
    assert_eq!(s["account_name"], "Sim Default Account");
    assert_eq!(s["base_uri"], env.sim.base_url());
    assert_eq!(s["user_name"], "Sim Signer");
    assert_eq!(s["user_email"], "signer@example.com");
    for field in ["connected_at", "last_refreshed_at", "access_token_expires_at", "refresh_token_expires_at"] {
        chrono::DateTime::parse_from_rfc3339(s[field].as_str().unwrap()).unwrap_or_else(|e| panic!("{field}: {e}"));
    }
    let access = chrono::DateTime::parse_from_rfc3339(s["access_token_expires_at"].as_str().unwrap()).unwrap();
    let hours = (access.with_timezone(&chrono::Utc) - env.now()).num_minutes();
    assert!((470..=480).contains(&hours), "8-hour access token: {hours} min");
    let refresh = chrono::DateTime::parse_from_rfc3339(s["refresh_token_expires_at"].as_str().unwrap()).unwrap();
    assert_eq!((refresh.with_timezone(&chrono::Utc) - env.now()).num_days(), 29);

    // The stored access token is the one DocuSign issued, readable only with
    // the tenant's encryption context.
    let cipher = KmsCipher::new(env.kms.clone(), env.key_id.clone());
    let auth = env.item(&t, AUTH_KEY).await.unwrap();
    let ct = auth["access_token"].as_b().unwrap().as_ref().to_vec();
    let token = cipher.decrypt(&Binding { tenant: &t, record: Record::AccessToken }, &ct).await.unwrap();
    assert!(env.sim.valid_access_token(token.expose_secret()));
    assert_eq!(env.sim.stats().code_grants, 1);
    // Both records carry the same version and connection id.
    let refresh_item = env.item(&t, REFRESH_KEY).await.unwrap();
    assert_eq!(auth["version"], refresh_item["version"]);
    assert_eq!(auth["connection_id"], refresh_item["connection_id"]);
}

#[tokio::test]
async fn is_default_and_expires_in_as_strings_are_understood() {
    let env = TestEnv::start().await;
    env.sim.set_expires_in_as_string(true);
    env.sim.set_is_default_as_string(true);
    let t = tenant();
    env.connect(&t).await;
    assert_eq!(env.status(&t).await["account_id"], "acc-default-1");
}

#[tokio::test]
async fn every_caller_problem_is_401_or_403_with_a_json_error() {
    let env = TestEnv::start().await;
    let t = tenant();
    let mut expired = claims(&t, "admin");
    expired["exp"] = json!(chrono::Utc::now().timestamp() - 120); // beyond the 60 s leeway
    let mut wrong_aud = claims(&t, "admin");
    wrong_aud["aud"] = json!("another-app");
    let mut bad_tenant = claims(&t, "admin");
    bad_tenant["tenant"] = json!("../etc");
    let unauthenticated = [
        None,
        Some("garbage".to_owned()),
        Some(token_with(claims(&t, "admin"), "not-the-secret")),
        Some(token_with(expired, JWT_SECRET)),
        Some(token_with(wrong_aud, JWT_SECRET)),
        Some(token_with(bad_tenant, JWT_SECRET)),
    ];
    for token in &unauthenticated {
        for (route, method) in [(Route::Consent, "POST"), (Route::Connection, "GET"), (Route::Connection, "DELETE")] {
            let a = env.call(route, method, "", token.as_deref()).await;
            assert_eq!(a.status, 401, "{token:?} {method}: {}", a.body);
            assert_eq!(a.error_code(), "unauthorized");
            assert!(!a.json()["error"]["message"].as_str().unwrap().is_empty());
        }
    }
    let user = user_token(&t);
    let a = env.call(Route::Consent, "POST", "", Some(&user)).await;
    assert_eq!((a.status, a.error_code().as_str()), (403, "forbidden"));
    let a = env.call(Route::Connection, "DELETE", "", Some(&user)).await;
    assert_eq!((a.status, a.error_code().as_str()), (403, "forbidden"));
    let a = env.call(Route::Connection, "GET", "", Some(&user)).await;
    assert_eq!(a.status, 200);
    // Nothing was stored by any refused call.
    assert!(env.scan().await.is_empty());
}

#[tokio::test]
async fn a_replayed_unknown_or_expired_state_connects_nothing() {
    let env = TestEnv::start().await;
    let t = tenant();
    let url = env.start_consent(&t).await;
    let query = env.visit_consent_page(&url, "").await;
    let page = env.call(Route::Callback, "GET", &query, None).await;
    assert_eq!(page.status, 200);
    assert_eq!(env.confirm(&t, &callback_confirmation(&page).unwrap()).await.status, 200);
    let before = env.status(&t).await;

    let replay = env.call(Route::Callback, "GET", &query, None).await;
    assert_eq!(replay.status, 400);
    assert!(replay.body.contains("state_already_used"), "{}", replay.body);
    assert_eq!(replay.header("cache-control"), Some("no-store"));
    assert_eq!(replay.header("referrer-policy"), Some("no-referrer"));
    assert!(replay.header("content-security-policy").is_some());

    let forged = format!("code=abc&state={t}.{}", "A".repeat(43));
    let unknown = env.call(Route::Callback, "GET", &forged, None).await;
    assert_eq!(unknown.status, 400);
    assert!(unknown.body.contains("unknown_state"));
    let nothing = env.call(Route::Callback, "GET", "", None).await;
    assert_eq!(nothing.status, 400);

    let url = env.start_consent(&t).await;
    let query = env.visit_consent_page(&url, "").await;
    env.advance(11 * 60);
    let late = env.call(Route::Callback, "GET", &query, None).await;
    assert_eq!(late.status, 400);
    assert!(late.body.contains("expired_state"), "{}", late.body);
    // The first connection is untouched by all of this.
    assert_eq!(env.status(&t).await, before);
    assert_eq!(env.sim.stats().code_grants, 1);
}

#[tokio::test]
async fn a_declined_consent_stores_nothing_and_says_so() {
    let env = TestEnv::start().await;
    let t = tenant();
    let page = env.connect_as(&t, "sim_decision=decline").await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("declined"), "{}", page.body);
    let result = callback_result(&page);
    assert_eq!((result["type"].as_str(), result["status"].as_str()), (Some("docusign-consent"), Some("failed")));
    assert_eq!(result["code"], "declined");
    assert!(result["message"].as_str().unwrap().contains("declined"));
    assert_eq!(env.status(&t).await, json!({"connected": false}));
    assert!(env.item(&t, AUTH_KEY).await.is_none());
}

#[tokio::test]
async fn a_failing_token_exchange_stores_nothing_and_keeps_the_old_connection() {
    let env = TestEnv::start().await;
    let t = tenant();
    env.connect(&t).await;
    let before = env.status(&t).await;

    env.sim.push_fault(Endpoint::Token, Fault::Status { status: 500, body: None, retry_after: None }, 1);
    let page = env.connect_as(&t, &format!("sim_user={DEFAULT_USER}")).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("upstream_unavailable"), "{}", page.body);

    // A code DocuSign refuses.
    let url = env.start_consent(&t).await;
    let query = env.visit_consent_page(&url, "").await;
    let state = query_param(&query, "state").unwrap();
    let forged = format!("code=not-a-real-code&state={state}");
    let page = env.call(Route::Callback, "GET", &forged, None).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("exchange_failed"), "{}", page.body);

    assert_eq!(env.status(&t).await, before);
}

#[tokio::test]
async fn a_pinned_account_the_user_lacks_is_refused() {
    let env = TestEnv::with(Options { account_id: Some("acc-nobody-has".into()), ..Options::default() }).await;
    let t = tenant();
    let page = env.connect_as(&t, "").await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("no_usable_account") && page.body.contains("acc-nobody-has"), "{}", page.body);
    assert_eq!(env.status(&t).await, json!({"connected": false}));
}

#[tokio::test]
async fn a_pinned_account_is_used_instead_of_the_default() {
    let env = TestEnv::with(Options { account_id: Some("acc-second-2".into()), ..Options::default() }).await;
    let t = tenant();
    env.connect(&t).await;
    let s = env.status(&t).await;
    assert_eq!(s["account_id"], "acc-second-2");
    assert_eq!(s["account_name"], "Sim Second Account");
}

#[tokio::test]
async fn disconnect_removes_both_records_and_consent_starts_from_scratch() {
    let env = TestEnv::start().await;
    let t = tenant();
    let neighbour = tenant();
    env.connect(&t).await;
    env.connect(&neighbour).await;
    let pending = env.start_consent(&t).await;

    let a = env.call(Route::Connection, "DELETE", "", Some(&admin_token(&t))).await;
    assert_eq!(a.status, 204);
    assert!(a.body.is_empty());
    assert!(env.item(&t, AUTH_KEY).await.is_none());
    assert!(env.item(&t, REFRESH_KEY).await.is_none());
    assert_eq!(env.status(&t).await, json!({"connected": false}));
    // Nothing of this tenant is left (pending consents included); the neighbour is untouched.
    let left: Vec<_> = env.scan().await.into_iter().filter(|i| i["tenant_id"].as_s().unwrap() == &t).collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(env.status(&neighbour).await["status"], "active");

    // A consent started before the disconnect no longer completes.
    let query = env.visit_consent_page(&pending, "").await;
    let page = env.call(Route::Callback, "GET", &query, None).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("unknown_state"));

    // Idempotent.
    assert_eq!(env.call(Route::Connection, "DELETE", "", Some(&admin_token(&t))).await.status, 204);

    // And consent works again, as the first time.
    env.connect(&t).await;
    assert_eq!(env.status(&t).await["status"], "active");
}

#[tokio::test]
async fn reconnecting_as_another_docusign_user_replaces_the_connection_in_one_step_at_confirmation() {
    let env = TestEnv::start().await;
    env.sim.add_user(other_user());
    let t = tenant();
    env.connect(&t).await;
    let first = env.item(&t, AUTH_KEY).await.unwrap();
    let before = env.status(&t).await;

    let page = env.connect_as(&t, "sim_user=22222222-2222-2222-2222-222222222222").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let result = callback_result(&page);
    assert_eq!(result["user_name"], "Other Signer");
    assert_eq!(result["account_name"], "Other Account");

    // Until the admin confirms, the old connection serves: no gap.
    assert_eq!(env.status(&t).await, before);
    let sent = env.send(&t, &documents_envelope().to_string(), None).await;
    assert_eq!(sent.status, 201, "{}", sent.body);
    assert_eq!(env.sim.envelopes().last().unwrap().account_id, "acc-default-1");

    let confirmed = env.confirm(&t, &callback_confirmation(&page).unwrap()).await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    let s = env.status(&t).await;
    assert_eq!(confirmed.json(), s, "the confirmation answers the new status");
    assert_eq!(s["user_name"], "Other Signer");
    assert_eq!(s["account_id"], "acc-other-9");
    assert_eq!(s["base_uri"], env.sim.base_url());
    let second = env.item(&t, AUTH_KEY).await.unwrap();
    assert_ne!(first["connection_id"], second["connection_id"]);
    assert_eq!(second["connection_id"], env.item(&t, REFRESH_KEY).await.unwrap()["connection_id"]);
    let sent = env.send(&t, &documents_envelope().to_string(), None).await;
    assert_eq!(sent.status, 201, "{}", sent.body);
    assert_eq!(env.sim.envelopes().last().unwrap().account_id, "acc-other-9");
}

#[tokio::test]
async fn a_callback_for_a_consent_started_in_another_environment_is_refused() {
    let env = TestEnv::start().await;
    let t = tenant();
    let url = env.start_consent(&t).await;
    let query = env.visit_consent_page(&url, "").await;
    let production = env.reconfigured(Options { environment: Some("production"), ..Options::default() }).await;
    let page = env.call_app(&production, Route::Callback, "GET", &query, None).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("environment_mismatch"), "{}", page.body);
    assert_eq!(env.status(&t).await, json!({"connected": false}));
}

#[tokio::test]
async fn no_item_holds_a_token_code_state_or_secret_in_plain_text() {
    let env = TestEnv::start().await;
    let t = tenant();
    let url = env.start_consent(&t).await;
    let state = query_param(&url, "state").unwrap();
    let query = env.visit_consent_page(&url, "").await;
    let code = query_param(&query, "code").unwrap();
    let page = env.call(Route::Callback, "GET", &query, None).await;
    assert_eq!(page.status, 200);
    let confirmation = callback_confirmation(&page).unwrap();
    env.start_consent(&t).await; // a pending one too
                                 // A proposed connection is stored too (tokens as ciphertext, the
                                 // confirmation as a hash) until it is confirmed.
    assert!(env.scan().await.iter().any(|i| i["key"].as_s().unwrap().starts_with("proposal#")));

    let mut secrets = env.sim.issued_secrets();
    secrets.extend([state, code, confirmation, CLIENT_SECRET.to_owned(), JWT_SECRET.to_owned()]);
    assert!(secrets.len() >= 6);
    for item in env.scan().await {
        for (name, value) in &item {
            let text = match value {
                aws_sdk_dynamodb::types::AttributeValue::B(b) => String::from_utf8_lossy(b.as_ref()).into_owned(),
                other => format!("{other:?}"),
            };
            for secret in &secrets {
                assert!(!text.contains(secret.as_str()), "attribute {name} holds a secret in plain text");
            }
        }
    }
}

#[tokio::test]
async fn a_ciphertext_copied_to_another_tenant_does_not_decrypt() {
    let env = TestEnv::start().await;
    let (victim, thief) = (tenant(), tenant());
    env.connect(&victim).await;
    let cipher = KmsCipher::new(env.kms.clone(), env.key_id.clone());
    let ct = env.item(&victim, REFRESH_KEY).await.unwrap()["refresh_token"].as_b().unwrap().as_ref().to_vec();
    assert!(cipher.decrypt(&Binding { tenant: &victim, record: Record::RefreshToken }, &ct).await.is_ok());
    assert!(cipher.decrypt(&Binding { tenant: &thief, record: Record::RefreshToken }, &ct).await.is_err());
    assert!(cipher.decrypt(&Binding { tenant: &victim, record: Record::AccessToken }, &ct).await.is_err());
}

#[tokio::test]
async fn wrong_methods_get_a_json_405() {
    let env = TestEnv::start().await;
    let t = tenant();
    let a = env.call(Route::Consent, "GET", "", Some(&admin_token(&t))).await;
    assert_eq!(a.status, 405);
    assert_eq!(a.error_code(), "method_not_allowed");
    let a = env.call(Route::Connection, "PUT", "", Some(&admin_token(&t))).await;
    assert_eq!(a.status, 405);
}
