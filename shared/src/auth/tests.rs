use super::*;
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use futures_util::FutureExt as _;
use jsonwebtoken::{EncodingKey, Header};
use lambda_http::http::StatusCode;
use serde_json::{json, Value};

const SECRET: &[u8] = b"test-secret-test-secret-test-sec";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}
fn sign(claims: &Value, alg: Algorithm, secret: &[u8]) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret).unwrap()).unwrap()
}
fn good() -> Value {
    json!({"tenant": "acme-1", "sub": "u1", "role": "admin", "aud": "docusign-connector", "exp": now() + 600})
}
fn verifier() -> JwtVerifier {
    JwtVerifier::new(SECRET, "docusign-connector").unwrap()
}
/// HS256 verification never waits, so it needs no runtime.
fn verify(v: &JwtVerifier, token: &str) -> Result<Caller, ApiError> {
    v.verify(token).now_or_never().expect("HS256 verification is ready at once")
}
fn rejects(token: &str) -> String {
    let e = verify(&verifier(), token).unwrap_err();
    assert_eq!(e.status, StatusCode::UNAUTHORIZED);
    e.message
}

#[test]
fn a_good_token_names_the_caller() {
    let c = verify(&verifier(), &sign(&good(), Algorithm::HS256, SECRET)).unwrap();
    assert_eq!(c, Caller { tenant: "acme-1".into(), user: "u1".into(), role: Role::Admin });
    assert!(c.require_admin().is_ok());
}

#[test]
fn a_user_is_forbidden_admin_actions() {
    let mut claims = good();
    claims["role"] = json!("user");
    let c = verify(&verifier(), &sign(&claims, Algorithm::HS256, SECRET)).unwrap();
    assert_eq!(c.require_admin().unwrap_err().status, StatusCode::FORBIDDEN);
}

#[test]
fn bad_tokens_are_401_saying_what_is_wrong() {
    let mut expired = good();
    expired["exp"] = json!(now() - 120);
    assert!(rejects(&sign(&expired, Algorithm::HS256, SECRET)).contains("expired"));
    let mut aud = good();
    aud["aud"] = json!("someone-else");
    assert!(rejects(&sign(&aud, Algorithm::HS256, SECRET)).contains("audience"));
    assert!(rejects(&sign(&good(), Algorithm::HS256, b"another-secret-another-secret-xx")).contains("signature"));
    assert!(rejects(&sign(&good(), Algorithm::HS512, SECRET)).contains("HS512, which is not accepted"));
    for missing in ["exp", "aud", "tenant", "sub", "role"] {
        let mut c = good();
        c.as_object_mut().unwrap().remove(missing);
        let message = rejects(&sign(&c, Algorithm::HS256, SECRET));
        assert!(message.contains(&format!("`{missing}`")), "{missing}: {message}");
    }
    for tenant in ["", "a/b", "x".repeat(65).as_str(), "sp ace"] {
        let mut c = good();
        c["tenant"] = json!(tenant);
        rejects(&sign(&c, Algorithm::HS256, SECRET));
    }
    let mut role = good();
    role["role"] = json!("root");
    rejects(&sign(&role, Algorithm::HS256, SECRET));
    rejects("not.a.jwt");
    assert!(rejects("").contains("malformed"));
    assert!(rejects("a.b").contains("malformed"));
}

#[test]
fn an_unsigned_token_is_refused_as_such() {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(good().to_string());
    let message = rejects(&format!("{header}.{body}."));
    assert!(message.contains("alg: none") && message.contains("never accepted"), "{message}");
}

#[test]
fn rs256_is_refused_when_no_jwks_is_configured() {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"k1"}"#);
    let body = URL_SAFE_NO_PAD.encode(good().to_string());
    let message = rejects(&format!("{header}.{body}.c2ln"));
    assert!(message.contains("RS256, which is not accepted here; sign it with HS256"), "{message}");
}

#[test]
fn nbf_and_exp_get_a_minute_of_leeway() {
    let mut soon = good();
    soon["nbf"] = json!(now() + 30);
    assert!(verify(&verifier(), &sign(&soon, Algorithm::HS256, SECRET)).is_ok());
    let mut later = good();
    later["nbf"] = json!(now() + 120);
    assert!(rejects(&sign(&later, Algorithm::HS256, SECRET)).contains("not valid yet"));
    let mut just_expired = good();
    just_expired["exp"] = json!(now() - 30);
    assert!(verify(&verifier(), &sign(&just_expired, Algorithm::HS256, SECRET)).is_ok());
}

#[test]
fn the_issuer_is_checked_when_configured() {
    let v = JwtVerifier::from_settings(JwtSettings {
        secret: Some(SECRET),
        audience: "docusign-connector",
        issuer: Some("https://crm.example"),
        ..JwtSettings::default()
    })
    .unwrap();
    let missing = verify(&v, &sign(&good(), Algorithm::HS256, SECRET)).unwrap_err();
    assert!(missing.message.contains("`iss`"), "{}", missing.message);
    let mut wrong = good();
    wrong["iss"] = json!("https://evil.example");
    assert!(verify(&v, &sign(&wrong, Algorithm::HS256, SECRET)).unwrap_err().message.contains("issuer"));
    let mut right = good();
    right["iss"] = json!("https://crm.example");
    assert!(verify(&v, &sign(&right, Algorithm::HS256, SECRET)).is_ok());
    // Without CRM_JWT_ISSUER, any iss (or none) is fine.
    assert!(verify(&verifier(), &sign(&wrong, Algorithm::HS256, SECRET)).is_ok());
}

#[test]
fn a_secret_shorter_than_32_bytes_is_refused() {
    assert_eq!(JwtVerifier::new(&SECRET[..31], "a").unwrap_err(), JwtSetupError::ShortSecret(31));
    assert_eq!(JwtVerifier::new(b"", "a").unwrap_err(), JwtSetupError::ShortSecret(0));
    assert!(JwtVerifier::new(SECRET, "a").is_ok());
    let none = JwtVerifier::from_settings(JwtSettings { audience: "a", ..JwtSettings::default() });
    assert_eq!(none.unwrap_err(), JwtSetupError::NoKeys);
}

#[test]
fn debug_output_never_shows_the_secret() {
    let v = JwtVerifier::from_settings(JwtSettings {
        secret: Some(SECRET),
        jwks_url: Some(&Url::parse("https://idp.example/.well-known/jwks.json").unwrap()),
        audience: "docusign-connector",
        issuer: Some("https://idp.example/"),
    })
    .unwrap();
    let printed = format!("{v:?}");
    let secret = std::str::from_utf8(SECRET).unwrap();
    assert!(!printed.contains(secret) && !printed.contains("116, 101, 115, 116"), "{printed}");
    assert!(printed.contains("hs256: true") && printed.contains("idp.example"), "{printed}");
}

#[test]
fn the_header_must_be_a_bearer_token() {
    let v = verifier();
    let caller = |h: &HeaderMap| v.caller(h).now_or_never().unwrap();
    let mut h = HeaderMap::new();
    assert_eq!(caller(&h).unwrap_err().status, StatusCode::UNAUTHORIZED);
    h.insert(AUTHORIZATION, "Basic abc".parse().unwrap());
    assert_eq!(caller(&h).unwrap_err().status, StatusCode::UNAUTHORIZED);
    h.insert(AUTHORIZATION, format!("Bearer {}", sign(&good(), Algorithm::HS256, SECRET)).parse().unwrap());
    assert_eq!(caller(&h).unwrap().tenant, "acme-1");
}
