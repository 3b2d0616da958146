//! DocuSign's account server over HTTP, on the `oauth2` crate with reqwest
//! (rustls, timeouts, no redirects followed).

use std::time::Duration;

use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;
use oauth2::basic::{BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse};
use oauth2::{
    AsyncHttpClient, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    HttpRequest, HttpResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError,
    Scope, StandardRevocableToken, TokenUrl,
};
use reqwest::header::{AUTHORIZATION, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};

use super::wire::DsTokenResponse;
use super::{DocuSignAuth, OAuthError, TokenGrant, UserInfo};

type Client = oauth2::Client<
    BasicErrorResponse,
    DsTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// Settings of the adapter, from [`crate::config::Config`].
pub struct OAuthSettings<'a> {
    pub oauth_base_url: &'a str,
    pub integration_key: &'a str,
    pub secret_key: SecretString,
    /// `DOCUSIGN_SECRET_KEY_NEXT`, resolved: tried when DocuSign answers
    /// `invalid_client` to `secret_key` (rotation without downtime).
    pub secret_key_next: Option<SecretString>,
    pub redirect_uri: Option<&'a str>,
    pub scopes: &'a [String],
}

/// Which configured client secret DocuSign accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretUsed {
    /// `DOCUSIGN_SECRET_KEY`.
    Current,
    /// `DOCUSIGN_SECRET_KEY_NEXT`.
    Next,
}

impl SecretUsed {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Current => "current",
            Self::Next => "next",
        }
    }
}

/// The CloudWatch namespace of the connector's embedded metrics.
pub const METRICS_NAMESPACE: &str = "DocuSignConnector";

/// Embedded-metric-format line (one JSON line on stdout that CloudWatch
/// turns into metrics): `ClientSecretUsed = 1`, dimension `Secret` =
/// `current` or `next`. Written after each token answer when
/// `DOCUSIGN_SECRET_KEY_NEXT` is configured, so a rotation can be watched.
pub fn secret_used_metric(used: SecretUsed, grant: &str, timestamp_ms: i64) -> serde_json::Value {
    serde_json::json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": METRICS_NAMESPACE,
                "Dimensions": [["Secret"]],
                "Metrics": [{"Name": "ClientSecretUsed", "Unit": "Count"}]
            }]
        },
        "Secret": used.as_str(),
        "Grant": grant,
        "ClientSecretUsed": 1,
    })
}

/// Embedded-metric-format line: `ClientSecretRejected = 1`, no dimension
/// (one metric for the alarm), after DocuSign refused every configured
/// client secret (`invalid_client`) or the client (`unauthorized_client`).
/// `Grant` and `Error` are properties, searchable in the logs.
pub fn secret_rejected_metric(grant: &str, error: &str, timestamp_ms: i64) -> serde_json::Value {
    serde_json::json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": METRICS_NAMESPACE,
                "Dimensions": [[]],
                "Metrics": [{"Name": "ClientSecretRejected", "Unit": "Count"}]
            }]
        },
        "Grant": grant,
        "Error": error,
        "ClientSecretRejected": 1,
    })
}

pub struct DocuSignOAuth {
    client: Client,
    /// The same client with `DOCUSIGN_SECRET_KEY_NEXT`.
    next: Option<Client>,
    http: reqwest::Client,
    token_http: TokenHttp,
    userinfo_url: String,
    scopes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid DocuSign OAuth setting: {0}")]
pub struct SettingsError(&'static str);

/// The HTTP client every DocuSign call uses.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(50))
        .user_agent(concat!("docusign-connector/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("static reqwest configuration is valid")
}

impl DocuSignOAuth {
    pub fn new(settings: OAuthSettings<'_>, http: reqwest::Client) -> Result<Self, SettingsError> {
        let base = settings.oauth_base_url.trim_end_matches('/');
        let auth_url = AuthUrl::new(format!("{base}/oauth/auth")).map_err(|_| SettingsError("oauth base url"))?;
        let token_url = TokenUrl::new(format!("{base}/oauth/token")).map_err(|_| SettingsError("oauth base url"))?;
        let mut client = oauth2::Client::new(ClientId::new(settings.integration_key.to_owned()))
            .set_client_secret(ClientSecret::new(settings.secret_key.expose_secret().to_owned()))
            .set_auth_uri(auth_url)
            .set_token_uri(token_url);
        if let Some(uri) = settings.redirect_uri {
            client =
                client.set_redirect_uri(RedirectUrl::new(uri.to_owned()).map_err(|_| SettingsError("redirect uri"))?);
        }
        let next = settings
            .secret_key_next
            .filter(|s| !s.expose_secret().is_empty())
            .map(|s| client.clone().set_client_secret(ClientSecret::new(s.expose_secret().to_owned())));
        Ok(Self {
            client,
            next,
            token_http: TokenHttp(http.clone()),
            http,
            userinfo_url: format!("{base}/oauth/userinfo"),
            scopes: settings.scopes.to_vec(),
        })
    }

    async fn token_call<F>(&self, call: F) -> Result<TokenGrant, OAuthError>
    where
        F: std::future::Future<Output = Result<DsTokenResponse, RequestTokenError<Transport, BasicErrorResponse>>>,
    {
        let answer = call.await.map_err(|e| match e {
            RequestTokenError::ServerResponse(e) => {
                OAuthError::Rejected { code: e.error().to_string(), description: e.error_description().cloned() }
            }
            RequestTokenError::Request(Transport::Status { status, retry_after }) => {
                OAuthError::Unavailable { status, retry_after }
            }
            RequestTokenError::Request(Transport::Network(e)) => OAuthError::Network(e),
            RequestTokenError::Request(Transport::Build) => OAuthError::InvalidResponse("request could not be built"),
            // The body of an unparsable answer may hold a token: never keep it.
            RequestTokenError::Parse(..) => OAuthError::InvalidResponse("token answer is not the expected JSON"),
            RequestTokenError::Other(_) => OAuthError::InvalidResponse("token answer is not JSON"),
        })?;
        Ok(TokenGrant::from(answer))
    }
}

impl DocuSignOAuth {
    /// One token call (`call` builds and sends it with the client given),
    /// with the current secret, then, if DocuSign answers `invalid_client`
    /// and `DOCUSIGN_SECRET_KEY_NEXT` is configured, with that one. A refused
    /// client is refused before the grant is looked at (RFC 6749 §5.2), so
    /// the second attempt presents a code or refresh token that is unspent.
    async fn with_secrets<'a, F, Fut>(&'a self, grant: &'static str, call: F) -> Result<TokenGrant, OAuthError>
    where
        F: Fn(&'a Client) -> Fut,
        Fut: std::future::Future<Output = Result<DsTokenResponse, RequestTokenError<Transport, BasicErrorResponse>>>,
    {
        let first = self.token_call(call(&self.client)).await;
        let (used, result) = match (&first, &self.next) {
            (Err(OAuthError::Rejected { code, .. }), Some(next)) if code == "invalid_client" => {
                tracing::warn!(
                    grant,
                    "DocuSign refused DOCUSIGN_SECRET_KEY (invalid_client); trying DOCUSIGN_SECRET_KEY_NEXT"
                );
                (SecretUsed::Next, self.token_call(call(next)).await)
            }
            _ => (SecretUsed::Current, first),
        };
        let now_ms = chrono::Utc::now().timestamp_millis();
        match &result {
            Ok(_) if self.next.is_some() => {
                match used {
                    SecretUsed::Current => tracing::info!(grant, secret = used.as_str(), "DocuSign accepted the current client secret (DOCUSIGN_SECRET_KEY)"),
                    SecretUsed::Next => tracing::info!(
                        grant,
                        secret = used.as_str(),
                        "DocuSign accepted the next client secret (DOCUSIGN_SECRET_KEY_NEXT), not the current one: make it DOCUSIGN_SECRET_KEY"
                    ),
                }
                println!("{}", secret_used_metric(used, grant, now_ms));
            }
            Err(e) if e.client_rejected() => {
                let class = e.class();
                tracing::error!(
                    alarm = true,
                    grant,
                    error = %class,
                    next_configured = self.next.is_some(),
                    "ALARM: DocuSign refused our client credentials; check DOCUSIGN_INTEGRATION_KEY and DOCUSIGN_SECRET_KEY \
                     (docs/DEPLOY.md, \"Rotating the DocuSign client secret\"); connections are kept"
                );
                println!("{}", secret_rejected_metric(grant, &class, now_ms));
            }
            _ => {}
        }
        result
    }
}

/// What went wrong below OAuth: kept apart so 5xx/429 are not mistaken
/// for an OAuth refusal.
#[derive(Debug, thiserror::Error)]
enum Transport {
    #[error("HTTP {status}")]
    Status { status: u16, retry_after: Option<u64> },
    #[error("network")]
    Network(#[source] crate::error::BoxError),
    #[error("request could not be built")]
    Build,
}

/// oauth2's HTTP client: reqwest, with 5xx and 429 kept as transport errors.
struct TokenHttp(reqwest::Client);

impl<'c> AsyncHttpClient<'c> for TokenHttp {
    type Error = Transport;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Transport>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(send(&self.0, request))
    }
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()
}

async fn send(http: &reqwest::Client, request: HttpRequest) -> Result<HttpResponse, Transport> {
    let request: reqwest::Request = request.try_into().map_err(|_| Transport::Build)?;
    let response = http.execute(request).await.map_err(|e| Transport::Network(Box::new(e.without_url())))?;
    let status = response.status();
    if status.is_server_error() || status.as_u16() == 429 {
        return Err(Transport::Status { status: status.as_u16(), retry_after: retry_after(response.headers()) });
    }
    let mut builder = oauth2::http::Response::builder().status(status);
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    let body = response.bytes().await.map_err(|e| Transport::Network(Box::new(e.without_url())))?;
    builder.body(body.to_vec()).map_err(|_| Transport::Build)
}

#[async_trait]
impl DocuSignAuth for DocuSignOAuth {
    fn authorize_url(&self, state: &str, challenge: &PkceCodeChallenge) -> String {
        let state = state.to_owned();
        let (mut url, _) = self
            .client
            .authorize_url(move || CsrfToken::new(state))
            .add_scopes(self.scopes.iter().cloned().map(Scope::new))
            .set_pkce_challenge(challenge.clone())
            .url();
        // DocuSign documents the scope list as space-separated, encoded `%20`;
        // in a form-encoded query `+` only ever stands for a space.
        if let Some(query) = url.query().map(|q| q.replace('+', "%20")) {
            url.set_query(Some(&query));
        }
        url.into()
    }

    async fn exchange_code(&self, code: &str, verifier: &SecretString) -> Result<TokenGrant, OAuthError> {
        self.with_secrets("authorization_code", |client| {
            client
                .exchange_code(AuthorizationCode::new(code.to_owned()))
                .set_pkce_verifier(PkceCodeVerifier::new(verifier.expose_secret().to_owned()))
                .request_async(&self.token_http)
        })
        .await
    }

    async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenGrant, OAuthError> {
        let token = RefreshToken::new(refresh_token.expose_secret().to_owned());
        self.with_secrets("refresh_token", |client| {
            client.exchange_refresh_token(&token).request_async(&self.token_http)
        })
        .await
    }

    async fn userinfo(&self, access_token: &SecretString) -> Result<UserInfo, OAuthError> {
        let response = self
            .http
            .get(&self.userinfo_url)
            .header(AUTHORIZATION, format!("Bearer {}", access_token.expose_secret()))
            .send()
            .await
            .map_err(|e| OAuthError::Network(Box::new(e.without_url())))?;
        let status = response.status();
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(OAuthError::Unavailable {
                status: status.as_u16(),
                retry_after: retry_after(response.headers()),
            });
        }
        if status.as_u16() == 401 {
            return Err(OAuthError::Rejected { code: "invalid_token".into(), description: None });
        }
        if !status.is_success() {
            return Err(OAuthError::Rejected { code: format!("userinfo_http_{}", status.as_u16()), description: None });
        }
        let body = response.bytes().await.map_err(|e| OAuthError::Network(Box::new(e.without_url())))?;
        super::wire::userinfo(&body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(code: &str) -> OAuthError {
        OAuthError::Rejected { code: code.to_owned(), description: None }
    }

    #[test]
    fn a_refused_client_is_our_configuration_not_the_tenants_consent() {
        for code in ["invalid_client", "unauthorized_client"] {
            assert!(rejected(code).client_rejected(), "{code}");
            assert!(!rejected(code).needs_reauth(), "{code} must not cost the connection");
        }
        for code in ["invalid_grant", "consent_required"] {
            assert!(rejected(code).needs_reauth(), "{code}");
            assert!(!rejected(code).client_rejected(), "{code}");
        }
        assert!(!OAuthError::Unavailable { status: 503, retry_after: None }.client_rejected());
    }

    /// Every metric a line declares has a value, and its dimensions are there.
    fn assert_emf(line: &serde_json::Value) {
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "DocuSignConnector");
        assert!(line["_aws"]["Timestamp"].is_i64());
        for metric in directive["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            assert_eq!(line[name], 1, "{name}: {line}");
        }
        for set in directive["Dimensions"].as_array().unwrap() {
            for dim in set.as_array().unwrap() {
                assert!(line[dim.as_str().unwrap()].is_string(), "{dim}: {line}");
            }
        }
    }

    #[test]
    fn the_secret_metrics_follow_the_embedded_metric_format() {
        let used = secret_used_metric(SecretUsed::Next, "refresh_token", 1_700_000_000_000);
        assert_emf(&used);
        assert_eq!(used["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"], "ClientSecretUsed");
        assert_eq!(used["Secret"], "next");
        assert_eq!(secret_used_metric(SecretUsed::Current, "authorization_code", 0)["Secret"], "current");

        let refused = secret_rejected_metric("refresh_token", "invalid_client", 1_700_000_000_000);
        assert_emf(&refused);
        assert_eq!(refused["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"], "ClientSecretRejected");
        assert_eq!(
            refused["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([[]]),
            "one metric for the alarm"
        );
        assert_eq!(
            (refused["Grant"].as_str(), refused["Error"].as_str()),
            (Some("refresh_token"), Some("invalid_client"))
        );
    }
}
