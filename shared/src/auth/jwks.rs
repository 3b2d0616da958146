//! The identity provider's signing keys (`CRM_JWT_JWKS_URL`), fetched at
//! first use, not at cold start, and cached by the warm function.
//!
//! - One fetch at a time: concurrent first uses wait for the same fetch
//!   instead of each asking the identity provider (no stampede).
//! - A token whose `kid` is not in the cached set causes at most one refetch
//!   per [`REFETCH_INTERVAL`]: junk tokens cannot make us hammer the
//!   identity provider, and a key the provider has just added is found
//!   within a minute.
//! - Keys older than [`MAX_AGE`] are fetched again at the next use (a key the
//!   provider withdrew stops working); if that fetch fails, the keys held
//!   stay in use.
//! - Only RSA keys (RS256) and P-256 EC keys (ES256) are taken from the set.
//!   Symmetric (`oct`) keys are ignored: a JWKS never supplies an HMAC key.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::time::Instant;
use url::Url;

/// At most one refetch for unknown `kid`s per this interval.
pub(super) const REFETCH_INTERVAL: Duration = Duration::from_secs(60);
/// While no key set was ever fetched, a failed fetch is retried after this.
const RETRY_INTERVAL: Duration = Duration::from_secs(5);
/// Keys are fetched again at the first use after this age.
const MAX_AGE: Duration = Duration::from_secs(3600);
/// The whole fetch (connect, answer, body) must finish within this.
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// A JWKS is a few kilobytes; anything beyond this is refused.
const MAX_BODY_BYTES: usize = 256 * 1024;
/// RSA keys shorter than this are ignored.
const MIN_RSA_MODULUS_BYTES: usize = 256;

#[derive(Debug, PartialEq, Eq)]
pub(super) enum JwksError {
    /// The keys are known, and none has this `kid`.
    UnknownKid,
    /// No key set could be fetched yet.
    Unavailable,
}

/// A usable key of the set.
#[derive(Clone)]
pub(super) struct JwksKey {
    pub algorithm: Algorithm,
    pub key: Arc<DecodingKey>,
}

struct KeySet {
    keys: HashMap<String, JwksKey>,
    fetched_at: Instant,
}

impl KeySet {
    fn is_fresh(&self) -> bool {
        self.fetched_at.elapsed() < MAX_AGE
    }
}

pub(super) struct Jwks {
    url: Url,
    /// The URL as logged and printed: scheme, host and path only, nothing a
    /// query string or userinfo might carry.
    shown: String,
    http: reqwest::Client,
    /// The keys last fetched; read without waiting.
    keys: RwLock<Option<Arc<KeySet>>>,
    /// Held while deciding on and making a fetch; the last attempt's time.
    fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks").field("url", &self.shown).finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("request failed: {0}")]
    Http(#[source] reqwest::Error),
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("answer larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("answer is not a JWKS (a JSON object with `keys`)")]
    NotAJwks,
}

impl Jwks {
    pub(super) fn new(url: Url) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(FETCH_TIMEOUT)
            .timeout(FETCH_TIMEOUT)
            .user_agent(concat!("docusign-connector/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("static reqwest configuration is valid");
        let mut shown = url.clone();
        shown.set_query(None);
        shown.set_fragment(None);
        let _ = shown.set_password(None);
        let _ = shown.set_username("");
        Self { url, shown: shown.into(), http, keys: RwLock::new(None), fetch: tokio::sync::Mutex::new(None) }
    }

    fn current(&self) -> Option<Arc<KeySet>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The key named `kid`, fetching the set when needed and allowed.
    pub(super) async fn key(&self, kid: &str) -> Result<JwksKey, JwksError> {
        let fresh_hit =
            |set: &Option<Arc<KeySet>>| set.as_ref().filter(|s| s.is_fresh()).and_then(|s| s.keys.get(kid).cloned());
        if let Some(key) = fresh_hit(&self.current()) {
            return Ok(key);
        }
        let mut last_attempt = self.fetch.lock().await;
        // Whoever held the lock before may have fetched what we need.
        let current = self.current();
        if let Some(key) = fresh_hit(&current) {
            return Ok(key);
        }
        let held = |set: &Option<Arc<KeySet>>| match set {
            Some(s) => s.keys.get(kid).cloned().ok_or(JwksError::UnknownKid),
            None => Err(JwksError::Unavailable),
        };
        let wait = if current.is_some() { REFETCH_INTERVAL } else { RETRY_INTERVAL };
        if last_attempt.is_some_and(|at| at.elapsed() < wait) {
            return held(&current);
        }
        *last_attempt = Some(Instant::now());
        match self.download().await {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), url = %self.shown, "fetched the CRM identity provider's JWKS");
                let set = Some(Arc::new(KeySet { keys, fetched_at: Instant::now() }));
                *self.keys.write().unwrap_or_else(|e| e.into_inner()) = set.clone();
                held(&set)
            }
            Err(e) => {
                tracing::warn!(error = %e, url = %self.shown, "could not fetch the CRM identity provider's JWKS");
                held(&current)
            }
        }
    }

    async fn download(&self) -> Result<HashMap<String, JwksKey>, FetchError> {
        let mut response = self
            .http
            .get(self.url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| FetchError::Http(e.without_url()))?;
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        if response.content_length().is_some_and(|n| n > MAX_BODY_BYTES as u64) {
            return Err(FetchError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| FetchError::Http(e.without_url()))? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        parse(&body)
    }
}

/// The usable keys of a JWKS document, by `kid`. Keys that do not parse or
/// are not for RS256/ES256 signatures are skipped, not fatal: a provider may
/// publish encryption keys or other algorithms beside ours.
fn parse(body: &[u8]) -> Result<HashMap<String, JwksKey>, FetchError> {
    #[derive(serde::Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    let document: Document = serde_json::from_slice(body).map_err(|_| FetchError::NotAJwks)?;
    let mut keys = HashMap::new();
    for raw in document.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(raw) else { continue };
        let Some((kid, key)) = usable(&jwk) else { continue };
        keys.entry(kid).or_insert(key);
    }
    Ok(keys)
}

fn usable(jwk: &Jwk) -> Option<(String, JwksKey)> {
    let kid = jwk.common.key_id.clone().filter(|k| !k.is_empty())?;
    if jwk.common.public_key_use.as_ref().is_some_and(|u| *u != PublicKeyUse::Signature) {
        return None;
    }
    let algorithm = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            let modulus = URL_SAFE_NO_PAD.decode(rsa.n.trim_end_matches('=')).ok()?;
            let significant = modulus.iter().skip_while(|b| **b == 0).count();
            (significant >= MIN_RSA_MODULUS_BYTES).then_some(Algorithm::RS256)?
        }
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => Algorithm::ES256,
        _ => return None,
    };
    let declared_ok = match jwk.common.key_algorithm {
        None => true,
        Some(KeyAlgorithm::RS256) => algorithm == Algorithm::RS256,
        Some(KeyAlgorithm::ES256) => algorithm == Algorithm::ES256,
        Some(_) => false,
    };
    if !declared_ok {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some((kid, JwksKey { algorithm, key: Arc::new(key) }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const N: &str = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";

    #[test]
    fn only_signature_keys_for_rs256_and_es256_are_taken() {
        let body = json!({"keys": [
            {"kty": "RSA", "kid": "rsa", "use": "sig", "alg": "RS256", "n": N, "e": "AQAB"},
            {"kty": "RSA", "kid": "rsa-enc", "use": "enc", "n": N, "e": "AQAB"},
            {"kty": "RSA", "kid": "rsa-ps", "alg": "PS256", "n": N, "e": "AQAB"},
            {"kty": "RSA", "kid": "rsa-short", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "n": N, "e": "AQAB"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"},
            {"kty": "EC", "kid": "p384", "crv": "P-384", "x": "AA", "y": "AA"},
            {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"something": "else"}
        ]});
        let keys = parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["rsa"]);
        assert_eq!(keys["rsa"].algorithm, Algorithm::RS256);
    }

    #[test]
    fn a_document_without_keys_is_not_a_jwks() {
        assert!(matches!(parse(b"{}"), Err(FetchError::NotAJwks)));
        assert!(matches!(parse(b"<html>"), Err(FetchError::NotAJwks)));
    }

    #[test]
    fn debug_shows_no_query_string() {
        let jwks = Jwks::new(Url::parse("https://user:pw@idp.example/keys?token=abc").unwrap());
        let printed = format!("{jwks:?}");
        assert!(
            printed.contains("idp.example/keys") && !printed.contains("abc") && !printed.contains("pw"),
            "{printed}"
        );
    }
}
