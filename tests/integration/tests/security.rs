//! What an attacker could try at each route: another tenant's state, tokens
//! in other algorithms, oversized inputs, redirects.

use integration_tests::*;
use serde_json::json;

#[tokio::test]
async fn a_state_moved_to_another_tenant_connects_nothing() {
    let env = TestEnv::start().await;
    let (victim, attacker) = (tenant(), tenant());
    let url = env.start_consent(&attacker).await;
    let query = env.visit_consent_page(&url, "").await;
    // The attacker rewrites the tenant part of its own state to the victim's.
    let state = query_param(&query, "state").unwrap();
    let (_, random) = state.split_once('.').unwrap();
    let code = query_param(&query, "code").unwrap();
    let forged = format!("code={code}&state={victim}.{random}");
    let page = env.call(Route::Callback, "GET", &forged, None).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("unknown_state"));
    assert_eq!(env.status(&victim).await, json!({"connected": false}));
    assert_eq!(env.status(&attacker).await, json!({"connected": false}));
}

#[tokio::test]
async fn tokens_signed_otherwise_or_for_another_tenant_get_nothing_of_the_victim() {
    let env = TestEnv::start().await;
    let victim = tenant();
    env.connect(&victim).await;
    // HS512 with the right secret, and alg none.
    let hs512 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &claims(&victim, "admin"),
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()).unwrap(),
    )
    .unwrap();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let none = format!(
        "{}.{}.",
        b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(claims(&victim, "admin").to_string())
    );
    let empty_key = token_with(claims(&victim, "admin"), "x"); // wrong (and short) key
    for token in [hs512, none, empty_key] {
        let a = env.call(Route::Connection, "DELETE", "", Some(&token)).await;
        assert_eq!(a.status, 401, "{}", a.body);
    }
    // A valid token of another tenant sees only its own (empty) connection.
    let other = env.call(Route::Connection, "GET", "", Some(&user_token(&tenant()))).await;
    assert_eq!(other.json(), json!({"connected": false}));
    assert_eq!(env.status(&victim).await["status"], "active");
}

#[tokio::test]
async fn oversized_inputs_are_refused_on_every_route_without_a_5xx() {
    let env = TestEnv::start().await;
    let t = tenant();
    let huge_token = "a".repeat(64 * 1024);
    for (route, method) in [(Route::Consent, "POST"), (Route::Connection, "GET"), (Route::Envelopes, "POST")] {
        let a = env.call(route, method, "", Some(&huge_token)).await;
        assert_eq!(a.status, 401);
    }
    let long_state = format!("code=c&state={t}.{}", "A".repeat(20_000));
    let a = env.call(Route::Callback, "GET", &long_state, None).await;
    assert_eq!(a.status, 400);
    let big = "x".repeat(1024 * 1024);
    let token = admin_token(&t);
    let a = env
        .send_call(&env.app, Call { token: Some(&token), body: Some(&big), ..Call::new(Route::Consent, "POST") })
        .await;
    assert_eq!(a.status, 200, "the consent route ignores a body: {}", a.body);
    let a = env.send(&t, &format!("{{\"emailSubject\":\"{big}\"}}"), None).await;
    assert_eq!(a.status, 400);
}

#[tokio::test]
async fn no_route_ever_redirects_and_every_html_answer_carries_the_security_headers() {
    let env = TestEnv::start().await;
    let t = tenant();
    let url = env.start_consent(&t).await;
    let ok = env.visit_consent_page(&url, "").await;
    let answers = vec![
        env.call(Route::Callback, "GET", &ok, None).await,
        env.call(Route::Callback, "GET", &ok, None).await,
        env.call(Route::Callback, "GET", "error=access_denied", None).await,
        env.call(Route::Callback, "GET", "state=https://evil.example/&code=x", None).await,
        env.call(Route::Callback, "GET", "", None).await,
        env.call(Route::Connection, "GET", "", Some(&user_token(&t))).await,
        env.call(Route::Consent, "POST", "", Some(&admin_token(&t))).await,
    ];
    for a in answers {
        assert!(a.header("location").is_none(), "no redirect: {}", a.status);
        assert!(a.status < 500, "{}", a.body);
        assert_eq!(a.header("cache-control"), Some("no-store"));
        if a.header("content-type").is_some_and(|c| c.starts_with("text/html")) {
            assert_eq!(a.header("referrer-policy"), Some("no-referrer"));
            assert_eq!(a.header("x-frame-options"), Some("DENY"));
            let csp = a.header("content-security-policy").unwrap();
            assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
            assert!(!a.body.contains("evil.example"));
        }
    }
}
