//! End-to-end tests of the simulator over real HTTP.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use docusign_sim::{ConsentDecision, Endpoint, Fault, SimAccount, SimConfig, SimUser, Simulator};
use reqwest::{StatusCode, Url};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const CLIENT_ID: &str = "ik-1234-test";
const SECRET: &str = "secret-abc-123";
const REDIRECT: &str = "https://connector.example.com/oauth/callback";
const DEFAULT_SUB: &str = "11111111-1111-1111-1111-111111111111";
const VERIFIER: &str = "dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk";
const DAY: i64 = 24 * 3600;

async fn sim() -> Simulator {
    Simulator::start(SimConfig::new(CLIENT_ID, SECRET, vec![REDIRECT.to_string()])).await.expect("simulator starts")
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn query(url: &Url, name: &str) -> Option<String> {
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// GET /oauth/auth with the usual parameters plus `extra`; returns the response.
async fn auth_request(sim: &Simulator, scope: &str, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut params = vec![
        ("response_type", "code"),
        ("scope", scope),
        ("client_id", CLIENT_ID),
        ("redirect_uri", REDIRECT),
        ("state", "st ate/+=&x"),
    ];
    params.extend_from_slice(extra);
    let url = Url::parse_with_params(&format!("{}/oauth/auth", sim.base_url()), &params).unwrap();
    http().get(url).send().await.unwrap()
}

fn location(resp: &reqwest::Response) -> Url {
    assert_eq!(resp.status(), StatusCode::FOUND);
    let loc = resp.headers()["location"].to_str().unwrap();
    Url::parse(loc).unwrap()
}

/// Consent with PKCE (S256) and return the code.
async fn get_code(sim: &Simulator, scope: &str) -> String {
    let ch = challenge(VERIFIER);
    let resp = auth_request(sim, scope, &[("code_challenge", &ch), ("code_challenge_method", "S256")]).await;
    let loc = location(&resp);
    assert!(loc.as_str().starts_with(REDIRECT));
    assert_eq!(query(&loc, "state").as_deref(), Some("st ate/+=&x"));
    query(&loc, "code").expect("code in redirect")
}

async fn token_request(sim: &Simulator, form: &[(&str, &str)]) -> reqwest::Response {
    http()
        .post(format!("{}/oauth/token", sim.base_url()))
        .basic_auth(CLIENT_ID, Some(SECRET))
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn exchange(sim: &Simulator, code: &str, verifier: &str) -> reqwest::Response {
    token_request(
        sim,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
    )
    .await
}

async fn refresh(sim: &Simulator, token: &str) -> reqwest::Response {
    token_request(sim, &[("grant_type", "refresh_token"), ("refresh_token", token)]).await
}

/// (access_token, refresh_token) after a full consent.
async fn login(sim: &Simulator, scope: &str) -> (String, String) {
    let code = get_code(sim, scope).await;
    let resp = exchange(sim, &code, VERIFIER).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    (body["access_token"].as_str().unwrap().to_string(), body["refresh_token"].as_str().unwrap().to_string())
}

async fn error_of(resp: reqwest::Response) -> (StatusCode, String) {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    let error = body["error"].as_str().or(body["errorCode"].as_str()).unwrap_or("").to_string();
    (status, error)
}

async fn userinfo(sim: &Simulator, token: &str) -> reqwest::Response {
    http().get(format!("{}/oauth/userinfo", sim.base_url())).bearer_auth(token).send().await.unwrap()
}

async fn create_envelope(sim: &Simulator, token: &str, account: &str, body: &Value) -> reqwest::Response {
    http()
        .post(format!("{}/restapi/v2.1/accounts/{account}/envelopes", sim.base_url()))
        .bearer_auth(token)
        .header("Idempotency-Key", "idem-42")
        .json(body)
        .send()
        .await
        .unwrap()
}

fn envelope_body() -> Value {
    json!({
        "emailSubject": "Please sign",
        "documents": [{"documentBase64": "JVBERi0=", "name": "a.pdf", "fileExtension": "pdf", "documentId": "1"}],
        "recipients": {"signers": [{"email": "x@example.com", "name": "X", "recipientId": "1", "routingOrder": "1"}]},
        "status": "sent"
    })
}

// ----- authorization code flow ---------------------------------------------

#[tokio::test]
async fn full_code_flow_with_pkce() {
    let sim = sim().await;
    assert!(sim.base_url().starts_with("http://127.0.0.1:"));
    assert!(!sim.base_url().ends_with('/'));

    let code = get_code(&sim, "signature extended").await;
    let resp = exchange(&sim, &code, VERIFIER).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 28800);
    assert_eq!(body["scope"], "signature extended");
    let access = body["access_token"].as_str().unwrap();
    let refresh_token = body["refresh_token"].as_str().unwrap();
    assert!(access.len() >= 64 && refresh_token.len() >= 64);
    assert!(sim.valid_access_token(access));
    assert!(sim.current_refresh_token_valid(refresh_token));

    let secrets = sim.issued_secrets();
    for s in [SECRET, code.as_str(), access, refresh_token] {
        assert!(secrets.iter().any(|x| x == s));
    }
    let stats = sim.stats();
    assert_eq!((stats.code_grants, stats.token_calls, stats.invalid_grant), (1, 1, 0));

    // userinfo
    let resp = userinfo(&sim, access).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let info: Value = resp.json().await.unwrap();
    assert_eq!(info["sub"], DEFAULT_SUB);
    assert_eq!(info["name"], "Sim Signer");
    assert_eq!(info["given_name"], "Sim");
    assert_eq!(info["family_name"], "Signer");
    assert_eq!(info["email"], "signer@example.com");
    let accounts = info["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 2);
    assert_eq!(accounts[0]["account_id"], "acc-default-1");
    assert_eq!(accounts[0]["is_default"], true);
    assert_eq!(accounts[1]["is_default"], false);
    assert_eq!(accounts[0]["base_uri"], sim.base_url().as_str());
    assert_eq!(sim.stats().userinfo_calls, 1);
}

#[tokio::test]
async fn flow_without_pkce_and_without_state() {
    let sim = sim().await;
    let url = Url::parse_with_params(
        &format!("{}/oauth/auth", sim.base_url()),
        &[("response_type", "code"), ("scope", "signature"), ("client_id", CLIENT_ID), ("redirect_uri", REDIRECT)],
    )
    .unwrap();
    let resp = http().get(url).send().await.unwrap();
    let loc = location(&resp);
    assert!(query(&loc, "state").is_none());
    let code = query(&loc, "code").unwrap();
    let resp =
        token_request(&sim, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT)]).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn wrong_or_missing_verifier_and_redirect_mismatch() {
    let sim = sim().await;
    let code = get_code(&sim, "signature").await;
    let wrong = "x".repeat(43);
    assert_eq!(error_of(exchange(&sim, &code, &wrong).await).await, (StatusCode::BAD_REQUEST, "invalid_grant".into()));
    let resp =
        token_request(&sim, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT)]).await;
    assert_eq!(error_of(resp).await.1, "invalid_grant");
    let resp = token_request(
        &sim,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://evil.example.com/cb"),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(error_of(resp).await.1, "invalid_grant");
    assert_eq!(sim.stats().invalid_grant, 3);
    assert_eq!(sim.stats().code_grants, 0);
}

#[tokio::test]
async fn code_is_single_use_and_expires() {
    let sim = sim().await;
    let code = get_code(&sim, "signature").await;
    assert_eq!(exchange(&sim, &code, VERIFIER).await.status(), StatusCode::OK);
    assert_eq!(
        error_of(exchange(&sim, &code, VERIFIER).await).await,
        (StatusCode::BAD_REQUEST, "invalid_grant".into())
    );

    let code = get_code(&sim, "signature").await;
    sim.advance_clock(121);
    assert_eq!(sim.clock_offset_secs(), 121);
    assert_eq!(error_of(exchange(&sim, &code, VERIFIER).await).await.1, "invalid_grant");
    assert_eq!(sim.stats().code_grants, 1);
}

#[tokio::test]
async fn bad_client_authentication() {
    let sim = sim().await;
    let code = get_code(&sim, "signature").await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    let url = format!("{}/oauth/token", sim.base_url());
    let resp = http().post(&url).form(&form).send().await.unwrap();
    assert_eq!(error_of(resp).await, (StatusCode::UNAUTHORIZED, "invalid_client".into()));
    let resp = http().post(&url).basic_auth(CLIENT_ID, Some("wrong")).form(&form).send().await.unwrap();
    assert_eq!(error_of(resp).await, (StatusCode::UNAUTHORIZED, "invalid_client".into()));
    let resp = http().post(&url).bearer_auth(SECRET).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // The code was not consumed by the failed attempts.
    assert_eq!(exchange(&sim, &code, VERIFIER).await.status(), StatusCode::OK);
    assert_eq!(sim.stats().token_calls, 4);
}

/// A token request authenticated with `secret` instead of [`SECRET`].
async fn token_request_with(sim: &Simulator, secret: &str, form: &[(&str, &str)]) -> reqwest::Response {
    http()
        .post(format!("{}/oauth/token", sim.base_url()))
        .basic_auth(CLIENT_ID, Some(secret))
        .form(form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_rotated_secret_refuses_the_old_one_before_the_grant_is_looked_at() {
    let sim = sim().await;
    let (_, refresh_token) = login(&sim, "signature extended").await;
    let code = get_code(&sim, "signature extended").await;
    const NEW: &str = "secret-rotated-456";
    sim.set_client_secret(NEW);
    assert!(sim.issued_secrets().iter().any(|s| s == NEW), "the new secret is a secret too");

    // The old secret: invalid_client for a refresh and for a code exchange.
    let refresh_form = [("grant_type", "refresh_token"), ("refresh_token", refresh_token.as_str())];
    let code_form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    for _ in 0..2 {
        let resp = token_request_with(&sim, SECRET, &refresh_form).await;
        assert_eq!(resp.headers()["www-authenticate"], "Basic");
        assert_eq!(error_of(resp).await, (StatusCode::UNAUTHORIZED, "invalid_client".into()));
        let resp = token_request_with(&sim, SECRET, &code_form).await;
        assert_eq!(error_of(resp).await, (StatusCode::UNAUTHORIZED, "invalid_client".into()));
    }
    assert!(sim.current_refresh_token_valid(&refresh_token), "not consumed by the refused attempts");
    let stats = sim.stats();
    assert_eq!((stats.invalid_client, stats.invalid_grant, stats.refresh_token_reuse), (4, 0, 0), "{stats:?}");

    // The new secret: the same refresh token and code still work, once.
    let resp = token_request_with(&sim, NEW, &refresh_form).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert!(sim.current_refresh_token_valid(body["refresh_token"].as_str().unwrap()));
    let resp = token_request_with(&sim, NEW, &code_form).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let stats = sim.stats();
    assert_eq!((stats.refresh_grants_ok, stats.code_grants, stats.refresh_token_reuse), (1, 2, 0), "{stats:?}");

    // Through the control API as well.
    let resp: Value = http()
        .post(format!("{}/_sim/options", sim.base_url()))
        .json(&json!({"client_secret": SECRET}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(resp.get("client_secret").is_none(), "the control API never echoes a secret: {resp}");
    let (_, refresh_token) = login(&sim, "signature").await;
    assert_eq!(refresh(&sim, &refresh_token).await.status(), StatusCode::OK);
    let resp = token_request_with(&sim, NEW, &[("grant_type", "refresh_token"), ("refresh_token", "x")]).await;
    assert_eq!(error_of(resp).await.1, "invalid_client");
}

#[tokio::test]
async fn token_answers_can_carry_any_raw_expires_in() {
    let sim = sim().await;
    for raw in [json!(9223372036854775807i64), json!(-1), json!("soon"), json!(1e300), Value::Null, json!([])] {
        sim.set_expires_in_raw(Some(raw.clone()));
        let (_, refresh_token) = {
            let code = get_code(&sim, "signature extended").await;
            let body: Value = exchange(&sim, &code, VERIFIER).await.json().await.unwrap();
            assert_eq!(body["expires_in"], raw, "code exchange");
            assert!(body.as_object().unwrap().contains_key("expires_in"));
            (body["access_token"].as_str().unwrap().to_string(), body["refresh_token"].as_str().unwrap().to_string())
        };
        let body: Value = refresh(&sim, &refresh_token).await.json().await.unwrap();
        assert_eq!(body["expires_in"], raw, "refresh");
        assert!(sim.valid_access_token(body["access_token"].as_str().unwrap()), "the token itself lives 8 hours");
    }
    sim.set_expires_in_raw(None);
    let (_, r) = login(&sim, "signature").await;
    let body: Value = refresh(&sim, &r).await.json().await.unwrap();
    assert_eq!(body["expires_in"], 28800);

    // The control API: present (even null) sets it, `expires_in_normal` clears it.
    let options = |body: Value| {
        let url = format!("{}/_sim/options", sim.base_url());
        async move { http().post(url).json(&body).send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let resp = options(json!({"expires_in_raw": null})).await;
    assert_eq!(resp["expires_in_raw"], Value::Null);
    assert!(resp.as_object().unwrap().contains_key("expires_in_raw"), "{resp}");
    let (_, r) = login(&sim, "signature").await;
    let body: Value = refresh(&sim, &r).await.json().await.unwrap();
    assert!(body.as_object().unwrap().contains_key("expires_in") && body["expires_in"].is_null(), "{body}");
    let resp = options(json!({"expires_in_raw": "soon"})).await;
    assert_eq!(resp["expires_in_raw"], "soon");
    let resp = options(json!({"expires_in_normal": true})).await;
    assert!(resp.get("expires_in_raw").is_none(), "{resp}");
}

#[tokio::test]
async fn form_encoded_client_credentials_are_accepted() {
    let secret = "p:ss w+rd%";
    let sim = Simulator::start(SimConfig::new("id with space", secret, vec![REDIRECT.to_string()])).await.unwrap();
    let header = format!("Basic {}", STANDARD.encode("id+with+space:p%3Ass+w%2Brd%25"));
    let resp = http()
        .post(format!("{}/oauth/token", sim.base_url()))
        .header("authorization", header)
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "nope")])
        .send()
        .await
        .unwrap();
    // Authenticated (so the grant itself is judged): invalid_grant, not invalid_client.
    assert_eq!(error_of(resp).await, (StatusCode::BAD_REQUEST, "invalid_grant".into()));
    // Raw (unencoded) credentials work too.
    let resp = http()
        .post(format!("{}/oauth/token", sim.base_url()))
        .basic_auth("id with space", Some(secret))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp).await, (StatusCode::BAD_REQUEST, "unsupported_grant_type".into()));
}

#[tokio::test]
async fn auth_request_errors_and_decisions() {
    let sim = sim().await;
    let base = format!("{}/oauth/auth", sim.base_url());
    // Unknown client or unregistered redirect: 400 page, never a redirect.
    for (client, redirect) in [("other", REDIRECT), (CLIENT_ID, "https://connector.example.com/oauth/callback/")] {
        let url = Url::parse_with_params(
            &base,
            &[("response_type", "code"), ("scope", "signature"), ("client_id", client), ("redirect_uri", redirect)],
        )
        .unwrap();
        let resp = http().get(url).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert!(resp.headers().get("location").is_none());
        assert!(resp.text().await.unwrap().contains("<html"));
    }
    // plain PKCE is refused with a redirect error.
    let resp = auth_request(
        &sim,
        "signature",
        &[("code_challenge", &challenge(VERIFIER)), ("code_challenge_method", "plain")],
    )
    .await;
    let loc = location(&resp);
    assert_eq!(query(&loc, "error").as_deref(), Some("invalid_request"));
    // Missing scope.
    let resp = auth_request(&sim, "", &[]).await;
    assert_eq!(query(&location(&resp), "error").as_deref(), Some("invalid_request"));

    // Decline.
    sim.set_consent_decision(ConsentDecision::Decline);
    let resp = auth_request(&sim, "signature", &[]).await;
    let raw_location = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(raw_location.contains("error_message=The%20user%20did%20not%20consent"));
    let loc = location(&resp);
    assert_eq!(query(&loc, "error").as_deref(), Some("access_denied"));
    assert_eq!(query(&loc, "state").as_deref(), Some("st ate/+=&x"));
    assert!(query(&loc, "code").is_none());

    // Per-request overrides.
    let other = SimUser {
        sub: "22222222-2222-2222-2222-222222222222".into(),
        name: "Other Person".into(),
        email: "other@example.com".into(),
        accounts: vec![SimAccount {
            account_id: "acc-other".into(),
            account_name: "Other".into(),
            is_default: true,
            base_uri: Some("https://demo.docusign.net".into()),
        }],
    };
    sim.add_user(other.clone());
    let ch = challenge(VERIFIER);
    let resp = auth_request(
        &sim,
        "signature",
        &[("sim_user", &other.sub), ("code_challenge", &ch), ("code_challenge_method", "S256")],
    )
    .await;
    let code = query(&location(&resp), "code").unwrap();
    let body: Value = exchange(&sim, &code, VERIFIER).await.json().await.unwrap();
    let info: Value = userinfo(&sim, body["access_token"].as_str().unwrap()).await.json().await.unwrap();
    assert_eq!(info["sub"], other.sub.as_str());
    assert_eq!(info["accounts"][0]["base_uri"], "https://demo.docusign.net");

    sim.set_consent_decision(ConsentDecision::Approve { user_sub: DEFAULT_SUB.into() });
    let resp = auth_request(&sim, "signature", &[("sim_decision", "decline")]).await;
    assert_eq!(query(&location(&resp), "error").as_deref(), Some("access_denied"));
}

// ----- refresh tokens --------------------------------------------------------

#[tokio::test]
async fn refresh_rotation_and_reuse_detection_revokes_chain() {
    let sim = sim().await;
    let (_, r1) = login(&sim, "signature").await;
    let resp = refresh(&sim, &r1).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    let r2 = body["refresh_token"].as_str().unwrap().to_string();
    let a2 = body["access_token"].as_str().unwrap().to_string();
    assert_ne!(r1, r2);
    assert!(!sim.current_refresh_token_valid(&r1));
    assert!(sim.current_refresh_token_valid(&r2));

    // Reusing r1: invalid_grant, counted, and the whole chain (r2) is revoked.
    assert_eq!(error_of(refresh(&sim, &r1).await).await, (StatusCode::BAD_REQUEST, "invalid_grant".into()));
    assert!(!sim.current_refresh_token_valid(&r2));
    assert_eq!(error_of(refresh(&sim, &r2).await).await.1, "invalid_grant");
    // Access tokens stay valid.
    assert!(sim.valid_access_token(&a2));

    let stats = sim.stats();
    assert_eq!(stats.refresh_grants, 3);
    assert_eq!(stats.refresh_grants_ok, 1);
    assert_eq!(stats.refresh_token_reuse, 1);
    assert_eq!(stats.invalid_grant, 2);

    // Unknown token.
    assert_eq!(error_of(refresh(&sim, "not-a-token").await).await.1, "invalid_grant");
    // A new consent works.
    let (_, r) = login(&sim, "signature").await;
    assert_eq!(refresh(&sim, &r).await.status(), StatusCode::OK);
}

async fn rotate(sim: &Simulator, token: &str) -> String {
    let resp = refresh(sim, token).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    body["refresh_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn refresh_expiry_without_extended_keeps_first_expiry() {
    let sim = sim().await;
    let (_, r1) = login(&sim, "signature").await;
    sim.advance_clock(20 * DAY);
    let r2 = rotate(&sim, &r1).await;
    sim.advance_clock(11 * DAY); // 31 days after consent
    assert!(!sim.current_refresh_token_valid(&r2));
    assert_eq!(error_of(refresh(&sim, &r2).await).await.1, "invalid_grant");
}

#[tokio::test]
async fn refresh_expiry_with_extended_slides() {
    let sim = sim().await;
    let (_, r1) = login(&sim, "signature extended").await;
    sim.advance_clock(20 * DAY);
    let r2 = rotate(&sim, &r1).await;
    sim.advance_clock(20 * DAY); // 40 days after consent, 20 after the last refresh
    let r3 = rotate(&sim, &r2).await;
    sim.advance_clock(31 * DAY); // unused for 31 days
    assert_eq!(error_of(refresh(&sim, &r3).await).await.1, "invalid_grant");
}

#[tokio::test]
async fn access_tokens_expire_after_8_hours() {
    let sim = sim().await;
    let (a, _) = login(&sim, "signature").await;
    sim.advance_clock(8 * 3600 - 5);
    assert!(sim.valid_access_token(&a));
    sim.advance_clock(10);
    assert!(!sim.valid_access_token(&a));
    assert_eq!(error_of(userinfo(&sim, &a).await).await, (StatusCode::UNAUTHORIZED, "invalid_request".into()));
}

#[tokio::test]
async fn revoke_consent_kills_refresh_tokens_not_access_tokens() {
    let sim = sim().await;
    let (a, r) = login(&sim, "signature extended").await;
    sim.revoke_consent(DEFAULT_SUB);
    assert!(!sim.current_refresh_token_valid(&r));
    assert_eq!(error_of(refresh(&sim, &r).await).await.1, "invalid_grant");
    assert_eq!(sim.stats().refresh_token_reuse, 0);
    assert_eq!(userinfo(&sim, &a).await.status(), StatusCode::OK);
    // Consent again.
    let (_, r) = login(&sim, "signature extended").await;
    assert_eq!(refresh(&sim, &r).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn expire_access_tokens_gives_401() {
    let sim = sim().await;
    let (a, r) = login(&sim, "signature").await;
    sim.expire_access_tokens(DEFAULT_SUB);
    assert!(!sim.valid_access_token(&a));
    assert_eq!(userinfo(&sim, &a).await.status(), StatusCode::UNAUTHORIZED);
    let resp = create_envelope(&sim, &a, "acc-default-1", &envelope_body()).await;
    assert_eq!(error_of(resp).await, (StatusCode::UNAUTHORIZED, "USER_AUTHENTICATION_FAILED".into()));
    // A refreshed access token works.
    let body: Value = refresh(&sim, &r).await.json().await.unwrap();
    assert!(sim.valid_access_token(body["access_token"].as_str().unwrap()));
}

#[tokio::test]
async fn string_typed_fields_options() {
    let sim = sim().await;
    sim.set_expires_in_as_string(true);
    sim.set_is_default_as_string(true);
    let code = get_code(&sim, "signature").await;
    let body: Value = exchange(&sim, &code, VERIFIER).await.json().await.unwrap();
    assert_eq!(body["expires_in"], "28800");
    let info: Value = userinfo(&sim, body["access_token"].as_str().unwrap()).await.json().await.unwrap();
    assert_eq!(info["accounts"][0]["is_default"], "true");
    assert_eq!(info["accounts"][1]["is_default"], "false");
}

// ----- envelopes ---------------------------------------------------------------

#[tokio::test]
async fn envelope_creation() {
    let sim = sim().await;
    let (a, _) = login(&sim, "signature").await;
    let resp = create_envelope(&sim, &a, "acc-second-2", &envelope_body()).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let h = resp.headers();
    assert_eq!(h["x-ratelimit-limit"], "3000");
    assert_eq!(h["x-ratelimit-remaining"], "2999");
    assert!(h["x-ratelimit-reset"].to_str().unwrap().parse::<i64>().unwrap() > sim.now().timestamp());
    assert!(h.contains_key("x-burstlimit-limit") && h.contains_key("x-burstlimit-remaining"));
    let body: Value = resp.json().await.unwrap();
    let id = body["envelopeId"].as_str().unwrap();
    assert_eq!(id.len(), 36);
    assert_eq!(body["status"], "sent");
    assert_eq!(body["uri"], format!("/envelopes/{id}"));
    assert!(chrono::DateTime::parse_from_rfc3339(body["statusDateTime"].as_str().unwrap()).is_ok());

    let received = sim.envelopes();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].account_id, "acc-second-2");
    assert_eq!(received[0].access_token_user, DEFAULT_SUB);
    assert_eq!(received[0].envelope_id, id);
    assert_eq!(received[0].idempotency_header.as_deref(), Some("idem-42"));
    assert_eq!(received[0].body, envelope_body());

    // Draft by default.
    let resp = create_envelope(&sim, &a, "acc-default-1", &json!({"emailSubject": "x"})).await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "created");

    // Errors.
    let resp = create_envelope(&sim, "bogus-token", "acc-default-1", &envelope_body()).await;
    assert_eq!(error_of(resp).await, (StatusCode::UNAUTHORIZED, "USER_AUTHENTICATION_FAILED".into()));
    let resp = create_envelope(&sim, &a, "acc-not-mine", &envelope_body()).await;
    assert_eq!(error_of(resp).await, (StatusCode::BAD_REQUEST, "USER_LACKS_MEMBERSHIP".into()));
    let resp = create_envelope(&sim, &a, "acc-default-1", &json!({"emailSubject": "s".repeat(101)})).await;
    assert_eq!(error_of(resp).await, (StatusCode::BAD_REQUEST, "INVALID_REQUEST_BODY".into()));
    let resp = create_envelope(&sim, &a, "acc-default-1", &json!(["not", "an", "object"])).await;
    assert_eq!(error_of(resp).await, (StatusCode::BAD_REQUEST, "INVALID_REQUEST_BODY".into()));
    let resp = http()
        .post(format!("{}/restapi/v2.1/accounts/acc-default-1/envelopes", sim.base_url()))
        .bearer_auth(&a)
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-ratelimit-limit"], "3000");
    assert_eq!(error_of(resp).await.1, "INVALID_REQUEST_BODY");

    assert_eq!(sim.envelopes().len(), 2);
    assert_eq!(sim.stats().envelope_calls, 7);
}

// ----- faults --------------------------------------------------------------------

#[tokio::test]
async fn status_fault_with_default_bodies_and_retry_after() {
    let sim = sim().await;
    let (a, r) = login(&sim, "signature").await;
    sim.push_fault(Endpoint::Token, Fault::Status { status: 503, body: None, retry_after: Some(7) }, 2);
    for _ in 0..2 {
        let resp = refresh(&sim, &r).await;
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()["retry-after"], "7");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "internal_server_error");
        assert!(body["reference_id"].is_string());
    }
    // The faulted requests did not consume the refresh token.
    assert_eq!(refresh(&sim, &r).await.status(), StatusCode::OK);
    let stats = sim.stats();
    assert_eq!((stats.refresh_grants, stats.refresh_grants_ok), (3, 1));

    sim.push_fault(Endpoint::Envelopes, Fault::Status { status: 429, body: None, retry_after: Some(60) }, 1);
    let resp = create_envelope(&sim, &a, "acc-default-1", &envelope_body()).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["x-ratelimit-remaining"], "0");
    assert_eq!(resp.headers()["retry-after"], "60");
    assert_eq!(error_of(resp).await.1, "HOURLY_APIINVOCATION_LIMIT_EXCEEDED");
    assert_eq!(create_envelope(&sim, &a, "acc-default-1", &envelope_body()).await.status(), StatusCode::CREATED);

    // Custom body, until cleared.
    sim.push_fault(
        Endpoint::UserInfo,
        Fault::Status { status: 500, body: Some("{\"custom\":true}".into()), retry_after: None },
        u32::MAX,
    );
    for _ in 0..3 {
        let resp = userinfo(&sim, &a).await;
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(resp.json::<Value>().await.unwrap()["custom"], true);
    }
    sim.clear_faults();
    assert_eq!(userinfo(&sim, &a).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn delay_fault_lets_clients_time_out() {
    let sim = sim().await;
    let (a, _) = login(&sim, "signature").await;
    sim.push_fault(Endpoint::UserInfo, Fault::Delay { ms: 400 }, 2);
    let err = http()
        .get(format!("{}/oauth/userinfo", sim.base_url()))
        .bearer_auth(&a)
        .timeout(Duration::from_millis(100))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    let started = Instant::now();
    let resp = userinfo(&sim, &a).await;
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn garbage_fault_gives_non_json() {
    let sim = sim().await;
    let code = get_code(&sim, "signature").await;
    sim.push_fault(Endpoint::Token, Fault::Garbage, 1);
    let resp = exchange(&sim, &code, VERIFIER).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err());
    // The code was not consumed.
    assert_eq!(exchange(&sim, &code, VERIFIER).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn close_connection_fault() {
    let sim = sim().await;
    let (a, _) = login(&sim, "signature").await;
    sim.push_fault(Endpoint::Envelopes, Fault::CloseConnection, 1);
    let result = http()
        .post(format!("{}/restapi/v2.1/accounts/acc-default-1/envelopes", sim.base_url()))
        .bearer_auth(&a)
        .json(&envelope_body())
        .send()
        .await;
    let failed = match result {
        Err(_) => true,
        Ok(resp) => resp.bytes().await.is_err(),
    };
    assert!(failed, "the connection must be dropped");
    assert!(sim.envelopes().is_empty());
    assert_eq!(create_envelope(&sim, &a, "acc-default-1", &envelope_body()).await.status(), StatusCode::CREATED);

    sim.push_fault(Endpoint::Auth, Fault::Status { status: 503, body: None, retry_after: None }, 1);
    let resp = auth_request(&sim, "signature", &[]).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
}

// ----- interactive consent page --------------------------------------------------

#[tokio::test]
async fn interactive_consent_page() {
    let mut config = SimConfig::new(CLIENT_ID, SECRET, vec![REDIRECT.to_string()]);
    config.interactive = true;
    let sim = Simulator::start(config).await.unwrap();
    let ch = challenge(VERIFIER);
    let resp =
        auth_request(&sim, "signature extended", &[("code_challenge", &ch), ("code_challenge_method", "S256")]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.unwrap();
    for needle in
        ["id=\"accept\"", "id=\"cancel\"", "<select name=\"user\"", "/oauth/auth/decision", "signature", DEFAULT_SUB]
    {
        assert!(html.contains(needle), "page lacks {needle}");
    }
    assert!(html.contains("st ate/+=&amp;x"));

    let post = |decision: &'static str| {
        let ch = ch.clone();
        let url = format!("{}/oauth/auth/decision", sim.base_url());
        async move {
            http()
                .post(url)
                .form(&[
                    ("client_id", CLIENT_ID),
                    ("redirect_uri", REDIRECT),
                    ("response_type", "code"),
                    ("scope", "signature extended"),
                    ("state", "st ate/+=&x"),
                    ("code_challenge", &ch),
                    ("code_challenge_method", "S256"),
                    ("user", DEFAULT_SUB),
                    ("decision", decision),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let loc = location(&post("accept").await);
    assert_eq!(query(&loc, "state").as_deref(), Some("st ate/+=&x"));
    let code = query(&loc, "code").unwrap();
    assert_eq!(exchange(&sim, &code, VERIFIER).await.status(), StatusCode::OK);
    let loc = location(&post("cancel").await);
    assert_eq!(query(&loc, "error").as_deref(), Some("access_denied"));
}

// ----- control API ---------------------------------------------------------------

#[tokio::test]
async fn control_api() {
    let sim = sim().await;
    let base = sim.base_url();
    let c = http();
    let post = |path: &str, body: Value| c.post(format!("{base}{path}")).json(&body).send();

    let new_sub = "33333333-3333-3333-3333-333333333333";
    let resp = post(
        "/_sim/users",
        json!({"sub": new_sub, "name": "Ctl User", "email": "ctl@example.com",
               "accounts": [{"account_id": "acc-ctl", "account_name": "Ctl", "is_default": true}]}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        post("/_sim/consent", json!({"decision": "approve", "user_sub": new_sub})).await.unwrap().status(),
        StatusCode::OK
    );
    let (a, r) = login(&sim, "signature").await;
    let info: Value = userinfo(&sim, &a).await.json().await.unwrap();
    assert_eq!(info["sub"], new_sub);

    post("/_sim/consent", json!({"decision": "decline"})).await.unwrap();
    let resp = auth_request(&sim, "signature", &[]).await;
    assert_eq!(query(&location(&resp), "error").as_deref(), Some("access_denied"));

    let resp: Value = post("/_sim/options", json!({"expires_in_as_string": true})).await.unwrap().json().await.unwrap();
    assert_eq!(resp, json!({"expires_in_as_string": true, "is_default_as_string": false}));
    post("/_sim/options", json!({"is_default_as_string": true})).await.unwrap();
    let info: Value = userinfo(&sim, &a).await.json().await.unwrap();
    assert_eq!(info["accounts"][0]["is_default"], "true");

    // Faults.
    let resp = post(
        "/_sim/faults",
        json!({"endpoint": "envelopes", "fault": {"kind": "status", "status": 503, "body": null, "retry_after": null}, "times": 1}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = create_envelope(&sim, &a, "acc-ctl", &envelope_body()).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    for fault in [json!({"kind": "delay", "ms": 1}), json!({"kind": "garbage"}), json!({"kind": "close"})] {
        let resp = post("/_sim/faults", json!({"endpoint": "userinfo", "fault": fault, "times": 4294967295u64}))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
    let resp =
        post("/_sim/faults", json!({"endpoint": "nowhere", "fault": {"kind": "garbage"}, "times": 1})).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // The delay fault (until cleared) is first in line.
    assert_eq!(userinfo(&sim, &a).await.status(), StatusCode::OK);
    assert_eq!(c.delete(format!("{base}/_sim/faults")).send().await.unwrap().status(), StatusCode::OK);

    assert_eq!(create_envelope(&sim, &a, "acc-ctl", &envelope_body()).await.status(), StatusCode::CREATED);
    let envs: Value = c.get(format!("{base}/_sim/envelopes")).send().await.unwrap().json().await.unwrap();
    assert_eq!(envs[0]["account_id"], "acc-ctl");
    assert_eq!(envs[0]["access_token_user"], new_sub);
    assert_eq!(envs[0]["idempotency_header"], "idem-42");

    let secrets: Vec<String> = c.get(format!("{base}/_sim/secrets")).send().await.unwrap().json().await.unwrap();
    assert!(secrets.contains(&a) && secrets.contains(&r) && secrets.iter().any(|s| s == SECRET));

    // Clock.
    let clock: Value = post("/_sim/clock", json!({"advance_secs": 3600})).await.unwrap().json().await.unwrap();
    assert_eq!(clock["offset_secs"], 3600);
    assert!(chrono::DateTime::parse_from_rfc3339(clock["now"].as_str().unwrap()).is_ok());
    let clock: Value = c.get(format!("{base}/_sim/clock")).send().await.unwrap().json().await.unwrap();
    assert_eq!(clock["offset_secs"], 3600);
    assert_eq!(sim.clock_offset_secs(), 3600);

    // expire-access and revoke.
    post("/_sim/expire-access", json!({"user_sub": new_sub})).await.unwrap();
    assert_eq!(userinfo(&sim, &a).await.status(), StatusCode::UNAUTHORIZED);
    post("/_sim/revoke", json!({"user_sub": new_sub})).await.unwrap();
    assert_eq!(error_of(refresh(&sim, &r).await).await.1, "invalid_grant");

    let stats: Value = c.get(format!("{base}/_sim/stats")).send().await.unwrap().json().await.unwrap();
    assert_eq!(stats["code_grants"], 1);
    assert_eq!(stats["envelope_calls"], 2);
    assert_eq!(stats["refresh_grants"], 1);
    assert_eq!(stats["invalid_grant"], 1);

    let resp = post("/_sim/consent", json!({"decision": "maybe"})).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn dropping_the_simulator_stops_the_server() {
    let sim = sim().await;
    let base = sim.base_url();
    drop(sim);
    let mut stopped = false;
    for _ in 0..50 {
        // A fresh client each time: no pooled connection.
        if http().get(format!("{base}/_sim/stats")).send().await.is_err() {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(stopped);
}

// ----- envelope bodies checked against DocuSign's swagger ------------------------

/// The documents example of docs/DOCUSIGN-FACTS.md: anchor tabs and carbon copies.
fn facts_documents_example() -> Value {
    json!({
        "emailSubject": "Please sign this agreement",
        "documents": [{
            "documentBase64": STANDARD.encode(b"%PDF-1.4\n%fake\n"),
            "name": "Agreement",
            "fileExtension": "pdf",
            "documentId": "1"
        }],
        "recipients": {
            "signers": [{
                "email": "ana@example.com",
                "name": "Ana Signer",
                "recipientId": "1",
                "routingOrder": "1",
                "tabs": {"signHereTabs": [{
                    "anchorString": "/sn1/",
                    "anchorUnits": "pixels",
                    "anchorXOffset": "20",
                    "anchorYOffset": "10"
                }]}
            }],
            "carbonCopies": [{
                "email": "bo@example.com",
                "name": "Bo Copy",
                "recipientId": "2",
                "routingOrder": "2"
            }]
        },
        "status": "sent"
    })
}

/// (status, errorCode, message) of an error answer.
async fn envelope_error(resp: reqwest::Response) -> (StatusCode, String, String) {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    (status, body["errorCode"].as_str().unwrap_or("").to_string(), body["message"].as_str().unwrap_or("").to_string())
}

#[tokio::test]
async fn envelope_bodies_from_the_facts_examples_are_accepted() {
    let sim = sim().await;
    let (a, _) = login(&sim, "signature").await;

    let resp = create_envelope(&sim, &a, "acc-default-1", &facts_documents_example()).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert!(resp.headers().contains_key("x-ratelimit-remaining"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "sent");

    let template = json!({
        "templateId": "5d4a1b0e-7c4f-4c36-9d2a-1f2e3d4c5b6a",
        "templateRoles": [{"email": "ana@example.com", "name": "Ana Signer", "roleName": "Signer"}],
        "status": "sent"
    });
    let resp = create_envelope(&sim, &a, "acc-default-1", &template).await;
    assert_eq!(resp.status(), StatusCode::CREATED);

    let received = sim.envelopes();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].body, facts_documents_example());
    assert_eq!(received[1].body, template);
}

#[tokio::test]
async fn envelope_bodies_are_checked_against_the_swagger() {
    let sim = sim().await;
    let (a, _) = login(&sim, "signature").await;
    let prefix = "The request contained at least one invalid parameter.";

    // Unknown nested property.
    let mut body = facts_documents_example();
    body["recipients"]["signers"][0]["foo"] = json!("bar");
    let resp = create_envelope(&sim, &a, "acc-default-1", &body).await;
    assert!(resp.headers().contains_key("x-ratelimit-limit"));
    assert_eq!(
        envelope_error(resp).await,
        (
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST_BODY".into(),
            format!("{prefix} recipients.signers[0].foo: unknown property")
        )
    );

    // Unknown property deep in the tabs.
    let mut body = facts_documents_example();
    body["recipients"]["signers"][0]["tabs"]["signHereTabs"][0]["anchorOffsetX"] = json!("20");
    let (status, code, message) = envelope_error(create_envelope(&sim, &a, "acc-default-1", &body).await).await;
    assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "INVALID_REQUEST_BODY"));
    assert_eq!(message, format!("{prefix} recipients.signers[0].tabs.signHereTabs[0].anchorOffsetX: unknown property"));

    // Wrong type: a number where DocuSign wants a string.
    let mut body = facts_documents_example();
    body["recipients"]["carbonCopies"][0]["recipientId"] = json!(2);
    assert_eq!(
        envelope_error(create_envelope(&sim, &a, "acc-default-1", &body).await).await,
        (
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST_BODY".into(),
            format!("{prefix} recipients.carbonCopies[0].recipientId: expected a string, got a number")
        )
    );

    // Wrong type: an object where DocuSign wants an array.
    let mut body = facts_documents_example();
    body["recipients"]["signers"] = json!({"email": "ana@example.com"});
    let (status, code, message) = envelope_error(create_envelope(&sim, &a, "acc-default-1", &body).await).await;
    assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "INVALID_REQUEST_BODY"));
    assert!(message.contains("recipients.signers: expected an array"), "{message}");

    // Bad base64.
    let mut body = facts_documents_example();
    body["documents"][0]["documentBase64"] = json!("this is not base64!");
    assert_eq!(
        envelope_error(create_envelope(&sim, &a, "acc-default-1", &body).await).await,
        (
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST_BODY".into(),
            format!("{prefix} documents[0].documentBase64: is not valid base64")
        )
    );

    // Sent with nothing to send.
    let resp = create_envelope(&sim, &a, "acc-default-1", &json!({"emailSubject": "Hi", "status": "sent"})).await;
    let (status, code, message) = envelope_error(resp).await;
    assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "ENVELOPE_IS_INCOMPLETE"));
    assert_eq!(
        message,
        "The Envelope is not Complete. A Complete Envelope Requires Documents, Recipients, Tabs, and a Subject Line."
    );

    // Authentication and membership are still checked first.
    let mut body = facts_documents_example();
    body["foo"] = json!(1);
    let resp = create_envelope(&sim, "bogus-token", "acc-default-1", &body).await;
    assert_eq!(error_of(resp).await, (StatusCode::UNAUTHORIZED, "USER_AUTHENTICATION_FAILED".into()));
    let resp = create_envelope(&sim, &a, "acc-not-mine", &body).await;
    assert_eq!(error_of(resp).await, (StatusCode::BAD_REQUEST, "USER_LACKS_MEMBERSHIP".into()));

    assert!(sim.envelopes().is_empty());
}
