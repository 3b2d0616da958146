//! DocuSign's eSignature REST API over HTTP: creating envelopes.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::error::BoxError;

/// What DocuSign answered to a create-envelope request.
#[derive(Debug)]
pub struct EsignAnswer {
    pub status: u16,
    /// The JSON body, or `Null` when it was not JSON.
    pub body: Value,
    /// `Retry-After` in seconds.
    pub retry_after: Option<u64>,
    /// `X-RateLimit-Remaining` and `X-RateLimit-Reset` (epoch seconds).
    pub rate_limit_remaining: Option<u64>,
    pub rate_limit_reset: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum EsignError {
    /// Nothing reached DocuSign (connection refused, DNS): safe to retry.
    #[error("DocuSign could not be reached")]
    Unreachable(#[source] BoxError),
    /// The request may have reached DocuSign (timeout, connection closed
    /// mid-answer): whether the envelope exists is unknown.
    #[error("DocuSign did not answer completely")]
    NoAnswer(#[source] BoxError),
    #[error("the account's base URI is not a URL")]
    BadBaseUri,
}

#[async_trait]
pub trait EsignApi: Send + Sync {
    async fn create_envelope(
        &self,
        base_uri: &str,
        account_id: &str,
        access_token: &SecretString,
        body: &[u8],
        timeout: Duration,
    ) -> Result<EsignAnswer, EsignError>;
}

pub struct HttpEsign {
    http: reqwest::Client,
}

impl HttpEsign {
    pub fn new(http: reqwest::Client) -> Self {
        Self { http }
    }
}

/// `{base_uri}/restapi/v2.1/accounts/{account_id}/envelopes`, the account id
/// percent-encoded as a path segment.
pub fn envelopes_url(base_uri: &str, account_id: &str) -> Result<url::Url, EsignError> {
    let mut url = url::Url::parse(base_uri).map_err(|_| EsignError::BadBaseUri)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(EsignError::BadBaseUri);
    }
    url.path_segments_mut().map_err(|_| EsignError::BadBaseUri)?.pop_if_empty().extend([
        "restapi",
        "v2.1",
        "accounts",
        account_id,
        "envelopes",
    ]);
    url.set_query(None);
    Ok(url)
}

fn header<T: std::str::FromStr>(headers: &reqwest::header::HeaderMap, name: &str) -> Option<T> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

#[async_trait]
impl EsignApi for HttpEsign {
    async fn create_envelope(
        &self,
        base_uri: &str,
        account_id: &str,
        access_token: &SecretString,
        body: &[u8],
        timeout: Duration,
    ) -> Result<EsignAnswer, EsignError> {
        let url = envelopes_url(base_uri, account_id)?;
        let response = self
            .http
            .post(url)
            .timeout(timeout)
            .header(AUTHORIZATION, format!("Bearer {}", access_token.expose_secret()))
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    EsignError::Unreachable(Box::new(e.without_url()))
                } else {
                    EsignError::NoAnswer(Box::new(e.without_url()))
                }
            })?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(|e| EsignError::NoAnswer(Box::new(e.without_url())))?;
        Ok(EsignAnswer {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            retry_after: header(&headers, RETRY_AFTER.as_str()),
            rate_limit_remaining: header(&headers, "x-ratelimit-remaining"),
            rate_limit_reset: header(&headers, "x-ratelimit-reset"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelopes_url_is_built_from_the_base_uri_and_account() {
        assert_eq!(
            envelopes_url("https://demo.docusign.net", "abc-1").unwrap().as_str(),
            "https://demo.docusign.net/restapi/v2.1/accounts/abc-1/envelopes"
        );
        assert_eq!(
            envelopes_url("http://127.0.0.1:9/", "a/b?c").unwrap().as_str(),
            "http://127.0.0.1:9/restapi/v2.1/accounts/a%2Fb%3Fc/envelopes"
        );
        assert!(envelopes_url("not a url", "a").is_err());
        assert!(envelopes_url("file:///etc", "a").is_err());
    }
}
