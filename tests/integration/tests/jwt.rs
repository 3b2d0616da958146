//! Caller authentication through the real handlers: the claims' time window
//! (`nbf`, `exp` and their leeway), `iss`, and RS256/ES256 tokens verified
//! with the keys of a JWKS that a loopback "identity provider" serves (and
//! counts the fetches of).
//!
//! The key pairs are fixed test keys under `tests/integration/fixtures/jwt/`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use integration_tests::*;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use shared::App;

const ISSUER: &str = "https://idp.example/";

// ---- keys ------------------------------------------------------------------------

fn der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).expect("fixture PEM")
}

/// The RS256 key the identity provider publishes (kid `rsa-a`).
fn rsa_a() -> EncodingKey {
    EncodingKey::from_rsa_der(&der(include_str!("../fixtures/jwt/rsa-a.pem")))
}
/// An RSA key the identity provider does not publish.
fn rsa_b() -> EncodingKey {
    EncodingKey::from_rsa_der(&der(include_str!("../fixtures/jwt/rsa-b.pem")))
}
/// The ES256 key the identity provider publishes (kid `ec-a`).
fn ec_a() -> EncodingKey {
    EncodingKey::from_ec_der(&der(include_str!("../fixtures/jwt/ec-a.pem")))
}

fn public_jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Jwk {
    let mut jwk = Jwk::from_encoding_key(key, alg).expect("public JWK of a fixture key");
    jwk.common.key_id = Some(kid.to_owned());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk
}

fn published() -> Vec<Jwk> {
    vec![public_jwk(&rsa_a(), Algorithm::RS256, "rsa-a"), public_jwk(&ec_a(), Algorithm::ES256, "ec-a")]
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).expect("sign a test token")
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

// ---- the identity provider ----------------------------------------------------------

/// A loopback server publishing a JWKS and counting how often it is fetched.
struct Idp {
    url: String,
    fetches: Arc<AtomicUsize>,
    keys: Arc<Mutex<Vec<Jwk>>>,
}

impl Idp {
    async fn start(keys: Vec<Jwk>) -> Self {
        #[derive(Clone)]
        struct S {
            fetches: Arc<AtomicUsize>,
            keys: Arc<Mutex<Vec<Jwk>>>,
        }
        async fn jwks(State(s): State<S>) -> axum::Json<JwkSet> {
            s.fetches.fetch_add(1, Ordering::SeqCst);
            axum::Json(JwkSet { keys: s.keys.lock().unwrap().clone() })
        }
        let state = S { fetches: Arc::default(), keys: Arc::new(Mutex::new(keys)) };
        let app = Router::new().route("/.well-known/jwks.json", get(jwks)).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/.well-known/jwks.json", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, fetches: state.fetches, keys: state.keys }
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    fn publish(&self, keys: Vec<Jwk>) {
        *self.keys.lock().unwrap() = keys;
    }
}

// ---- worlds ------------------------------------------------------------------------

/// A CRM-facing function that trusts only the identity provider's JWKS.
async fn jwks_only(env: &TestEnv, idp: &Idp) -> App {
    app(env, &[("CRM_JWT_SECRET", None), ("CRM_JWT_JWKS_URL", Some(&idp.url))]).await
}

/// One that trusts both the shared secret (HS256) and the JWKS.
async fn both(env: &TestEnv, idp: &Idp) -> App {
    app(env, &[("CRM_JWT_JWKS_URL", Some(&idp.url))]).await
}

async fn app(env: &TestEnv, changes: &[(&str, Option<&str>)]) -> App {
    match env.app_with_env(changes).await {
        Ok(app) => app,
        Err(e) => panic!("start-up failed: {e}"),
    }
}

/// `GET /docusign/connection` with `token`.
async fn connection(env: &TestEnv, app: &App, token: &str) -> Answer {
    env.call_app(app, Route::Connection, "GET", "", Some(token)).await
}

fn assert_accepted(a: &Answer) {
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json(), json!({"connected": false}));
}

/// 401 `unauthorized`, with a message containing `why`.
fn assert_refused(a: &Answer, why: &str) {
    assert_eq!(a.status, 401, "{}", a.body);
    assert_eq!(a.error_code(), "unauthorized");
    let message = a.json()["error"]["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains(why), "expected {why:?} in {message:?}");
}

// ---- the time window (HS256, the default world) -------------------------------------

#[tokio::test]
async fn a_token_whose_nbf_is_more_than_a_minute_ahead_is_refused() {
    let env = TestEnv::start().await;
    let mut c = claims(&tenant(), "user");
    c["nbf"] = json!(now() + 120);
    let a = connection(&env, &env.app, &token_with(c, JWT_SECRET)).await;
    assert_refused(&a, "not valid yet");
}

#[tokio::test]
async fn a_token_whose_nbf_is_a_few_seconds_ahead_is_accepted() {
    let env = TestEnv::start().await;
    let mut c = claims(&tenant(), "user");
    c["nbf"] = json!(now() + 20);
    assert_accepted(&connection(&env, &env.app, &token_with(c, JWT_SECRET)).await);
}

#[tokio::test]
async fn a_token_expired_a_few_seconds_ago_is_accepted_within_the_leeway() {
    let env = TestEnv::start().await;
    let mut c = claims(&tenant(), "user");
    c["exp"] = json!(now() - 20);
    assert_accepted(&connection(&env, &env.app, &token_with(c, JWT_SECRET)).await);
}

#[tokio::test]
async fn a_token_expired_well_beyond_the_leeway_is_refused() {
    let env = TestEnv::start().await;
    let mut c = claims(&tenant(), "user");
    c["exp"] = json!(now() - 300);
    assert_refused(&connection(&env, &env.app, &token_with(c, JWT_SECRET)).await, "expired");
}

// ---- iss ---------------------------------------------------------------------------

#[tokio::test]
async fn with_an_issuer_configured_a_token_without_iss_is_refused() {
    let env = TestEnv::start().await;
    let app = app(&env, &[("CRM_JWT_ISSUER", Some(ISSUER))]).await;
    let a = connection(&env, &app, &token_with(claims(&tenant(), "user"), JWT_SECRET)).await;
    assert_refused(&a, "lacks the required `iss` claim");
}

#[tokio::test]
async fn with_an_issuer_configured_a_token_from_another_issuer_is_refused() {
    let env = TestEnv::start().await;
    let app = app(&env, &[("CRM_JWT_ISSUER", Some(ISSUER))]).await;
    let mut c = claims(&tenant(), "user");
    c["iss"] = json!("https://attacker.example/");
    assert_refused(&connection(&env, &app, &token_with(c, JWT_SECRET)).await, "another issuer");
}

#[tokio::test]
async fn with_an_issuer_configured_a_token_from_that_issuer_is_accepted() {
    let env = TestEnv::start().await;
    let app = app(&env, &[("CRM_JWT_ISSUER", Some(ISSUER))]).await;
    let mut c = claims(&tenant(), "user");
    c["iss"] = json!(ISSUER);
    assert_accepted(&connection(&env, &app, &token_with(c, JWT_SECRET)).await);
}

// ---- RS256 and ES256 from the JWKS --------------------------------------------------

#[tokio::test]
async fn an_rs256_token_signed_by_a_jwks_key_is_accepted_and_the_jwks_fetched_once() {
    let env = TestEnv::start().await;
    let idp = Idp::start(published()).await;
    let app = jwks_only(&env, &idp).await;
    assert_eq!(idp.fetches(), 0, "the JWKS is fetched at first use, not at start-up");
    let t = tenant();
    let a = connection(&env, &app, &sign(Algorithm::RS256, Some("rsa-a"), &rsa_a(), &claims(&t, "user"))).await;
    assert_accepted(&a);
    // An admin action with the same kind of token: the role is read as well.
    let admin = sign(Algorithm::RS256, Some("rsa-a"), &rsa_a(), &claims(&t, "admin"));
    let a = env.call_app(&app, Route::Connection, "DELETE", "", Some(&admin)).await;
    assert_eq!(a.status, 204, "{}", a.body);
    assert_eq!(idp.fetches(), 1, "the keys are cached");
}

#[tokio::test]
async fn an_es256_token_signed_by_a_jwks_key_is_accepted() {
    let env = TestEnv::start().await;
    let idp = Idp::start(published()).await;
    let app = jwks_only(&env, &idp).await;
    let token = sign(Algorithm::ES256, Some("ec-a"), &ec_a(), &claims(&tenant(), "user"));
    assert_accepted(&connection(&env, &app, &token).await);
}

#[tokio::test]
async fn a_token_signed_with_another_key_under_a_known_kid_is_refused() {
    let env = TestEnv::start().await;
    let idp = Idp::start(published()).await;
    let app = jwks_only(&env, &idp).await;
    let forged = sign(Algorithm::RS256, Some("rsa-a"), &rsa_b(), &claims(&tenant(), "admin"));
    assert_refused(&connection(&env, &app, &forged).await, "signature does not verify");
    // An ES256 token naming the RSA key does not get verified with it either.
    let mixed = sign(Algorithm::ES256, Some("rsa-a"), &ec_a(), &claims(&tenant(), "admin"));
    assert_refused(&connection(&env, &app, &mixed).await, "is signed with ES256, but the JWKS key");
}

#[tokio::test]
async fn a_token_with_an_unknown_kid_is_refused() {
    let env = TestEnv::start().await;
    let idp = Idp::start(published()).await;
    let app = jwks_only(&env, &idp).await;
    let token = sign(Algorithm::RS256, Some("rsa-b"), &rsa_b(), &claims(&tenant(), "user"));
    assert_refused(&connection(&env, &app, &token).await, "not in the identity provider's JWKS");
    let no_kid = sign(Algorithm::RS256, None, &rsa_a(), &claims(&tenant(), "user"));
    assert_refused(&connection(&env, &app, &no_kid).await, "names no key (`kid`)");
}

#[tokio::test]
async fn an_hs256_token_keyed_with_a_jwks_public_key_is_refused() {
    let env = TestEnv::start().await;
    let idp = Idp::start(published()).await;
    let public_pem = include_str!("../fixtures/jwt/rsa-a.pub.pem");
    let jwk = serde_json::to_value(public_jwk(&rsa_a(), Algorithm::RS256, "rsa-a")).unwrap();
    let modulus = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
    // The classic confusion: HMAC over the token with the public key's bytes
    // (PEM, DER or bare modulus), under the key's kid.
    let hmac_keys: [Vec<u8>; 3] = [public_pem.as_bytes().to_vec(), der(public_pem), modulus];
    for (mode, app) in [("JWKS only", jwks_only(&env, &idp).await), ("secret and JWKS", both(&env, &idp).await)] {
        for key in &hmac_keys {
            let token = sign(
                Algorithm::HS256,
                Some("rsa-a"),
                &EncodingKey::from_secret(key).unwrap(),
                &claims(&tenant(), "admin"),
            );
            let a = connection(&env, &app, &token).await;
            let why = if mode == "JWKS only" { "HS256, which is not accepted" } else { "signature does not verify" };
            assert_refused(&a, why);
        }
    }
}

#[tokio::test]
async fn with_only_a_jwks_hs256_tokens_are_refused() {
    let env = TestEnv::start().await;
    let idp = Idp::start(published()).await;
    let app = jwks_only(&env, &idp).await;
    let t = tenant();
    let a = connection(&env, &app, &token_with(claims(&t, "user"), JWT_SECRET)).await;
    assert_refused(&a, "HS256, which is not accepted here; sign it with RS256 or ES256");
    assert_accepted(
        &connection(&env, &app, &sign(Algorithm::RS256, Some("rsa-a"), &rsa_a(), &claims(&t, "user"))).await,
    );
}

#[tokio::test]
async fn with_a_secret_and_a_jwks_hs256_goes_to_the_secret_and_rs256_es256_to_the_jwks() {
    let env = TestEnv::start().await;
    let idp = Idp::start(published()).await;
    let app = both(&env, &idp).await;
    let t = tenant();
    assert_accepted(&connection(&env, &app, &token_with(claims(&t, "user"), JWT_SECRET)).await);
    assert_eq!(idp.fetches(), 0, "an HS256 token needs no JWKS");
    assert_accepted(
        &connection(&env, &app, &sign(Algorithm::RS256, Some("rsa-a"), &rsa_a(), &claims(&t, "user"))).await,
    );
    assert_accepted(&connection(&env, &app, &sign(Algorithm::ES256, Some("ec-a"), &ec_a(), &claims(&t, "user"))).await);
    assert_eq!(idp.fetches(), 1);
    // HS256 with a wrong secret is not rescued by the JWKS.
    let wrong = token_with(claims(&t, "user"), "another-secret-another-secret-another");
    assert_refused(&connection(&env, &app, &wrong).await, "signature does not verify");
}

#[tokio::test]
async fn unknown_kids_cause_at_most_one_refetch_a_minute() {
    let env = TestEnv::start().await;
    let idp = Idp::start(published()).await;
    let app = jwks_only(&env, &idp).await;
    let t = tenant();
    assert_accepted(
        &connection(&env, &app, &sign(Algorithm::RS256, Some("rsa-a"), &rsa_a(), &claims(&t, "user"))).await,
    );
    assert_eq!(idp.fetches(), 1);

    // Junk tokens naming keys nobody published, within the minute.
    for i in 0..5 {
        let junk = sign(Algorithm::RS256, Some(&format!("junk-{i}")), &rsa_b(), &claims(&t, "user"));
        assert_refused(&connection(&env, &app, &junk).await, "not in the identity provider's JWKS");
    }
    assert_eq!(idp.fetches(), 1, "no refetch within a minute of the last fetch");

    // The provider rotates in a new key; a minute later, its first token
    // causes one refetch and is accepted.
    let mut keys = published();
    keys.push(public_jwk(&rsa_b(), Algorithm::RS256, "rsa-b"));
    idp.publish(keys);
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(61)).await;
    tokio::time::resume();
    let rotated = sign(Algorithm::RS256, Some("rsa-b"), &rsa_b(), &claims(&t, "user"));
    assert_accepted(&connection(&env, &app, &rotated).await);
    assert_eq!(idp.fetches(), 2);
    for i in 0..5 {
        let junk = sign(Algorithm::RS256, Some(&format!("junk-again-{i}")), &rsa_b(), &claims(&t, "user"));
        assert_refused(&connection(&env, &app, &junk).await, "not in the identity provider's JWKS");
    }
    assert_eq!(idp.fetches(), 2, "at most one refetch a minute");
}

#[tokio::test]
async fn concurrent_first_uses_fetch_the_jwks_once() {
    let env = TestEnv::start().await;
    let idp = Idp::start(published()).await;
    let app = jwks_only(&env, &idp).await;
    let tokens: Vec<String> = (0..8)
        .map(|i| {
            let (alg, kid, key) =
                if i % 2 == 0 { (Algorithm::RS256, "rsa-a", rsa_a()) } else { (Algorithm::ES256, "ec-a", ec_a()) };
            sign(alg, Some(kid), &key, &claims(&tenant(), "user"))
        })
        .collect();
    let answers = futures_util::future::join_all(tokens.iter().map(|t| connection(&env, &app, t))).await;
    answers.iter().for_each(assert_accepted);
    assert_eq!(idp.fetches(), 1);
}

#[tokio::test]
async fn an_unreachable_jwks_answers_503_not_a_verdict_on_the_token() {
    let env = TestEnv::start().await;
    let closed = format!("{}/.well-known/jwks.json", TestEnv::unreachable_endpoint());
    let app = app(&env, &[("CRM_JWT_SECRET", None), ("CRM_JWT_JWKS_URL", Some(&closed))]).await;
    let token = sign(Algorithm::RS256, Some("rsa-a"), &rsa_a(), &claims(&tenant(), "user"));
    let a = connection(&env, &app, &token).await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert_eq!(a.error_code(), "upstream_unavailable");
    assert!(a.header("retry-after").is_some());
}

// ---- start-up ------------------------------------------------------------------------

#[tokio::test]
async fn a_crm_jwt_secret_of_31_bytes_stops_the_function_naming_the_variable() {
    let env = TestEnv::start().await;
    let short = &JWT_SECRET[..31];
    let error = match env.app_with_env(&[("CRM_JWT_SECRET", Some(short))]).await {
        Ok(_) => panic!("a 31-byte secret was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(error.contains("CRM_JWT_SECRET") && error.contains("at least 32 bytes"), "{error}");
    assert!(!error.contains(short), "the error must not print the secret: {error}");
}

#[tokio::test]
async fn a_jwks_url_over_plain_http_to_another_host_stops_the_function_naming_the_variable() {
    let env = TestEnv::start().await;
    let error = match env.app_with_env(&[("CRM_JWT_JWKS_URL", Some("http://idp.example/jwks.json"))]).await {
        Ok(_) => panic!("a plain-http JWKS URL was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(error.contains("CRM_JWT_JWKS_URL"), "{error}");
}

#[tokio::test]
async fn a_31_byte_secret_plain_or_as_kms_ciphertext_stops_every_crm_facing_function() {
    use aws_sdk_kms::primitives::Blob;
    use integration_tests::runtime::FunctionProcess;
    let env = TestEnv::start().await;
    let short = &JWT_SECRET[..31];
    let ciphertext = env
        .kms
        .encrypt()
        .key_id(&env.key_id)
        .plaintext(Blob::new(short.as_bytes()))
        .encryption_context("connector_secret", "CRM_JWT_SECRET")
        .send()
        .await
        .unwrap();
    let ciphertext = base64::engine::general_purpose::STANDARD.encode(ciphertext.ciphertext_blob.unwrap().into_inner());
    let base: Vec<(String, String)> =
        env.function_env().await.into_iter().filter(|(k, _)| k != "CRM_JWT_SECRET").collect();
    for (variable, value) in [("CRM_JWT_SECRET", short.to_owned()), ("CRM_JWT_SECRET_CIPHERTEXT", ciphertext)] {
        let mut vars = base.clone();
        vars.push((variable.to_owned(), value));
        for function in ["consent-start", "connection", "send-envelope"] {
            let mut p = FunctionProcess::spawn(function, &vars).await;
            let status =
                p.exit_status(Duration::from_secs(20)).await.unwrap_or_else(|| panic!("{function} kept running"));
            assert!(!status.success(), "{function} exits with an error");
            let logs = p.logs();
            assert!(
                logs.contains(variable) && logs.contains("at least 32 bytes"),
                "{function} names {variable}: {logs}"
            );
            assert!(!logs.contains(short), "{function} printed the secret: {logs}");
        }
    }
}
