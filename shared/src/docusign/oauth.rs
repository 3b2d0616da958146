//! DocuSign's account server over HTTP, on the `oauth2` crate with reqwest
//! (rustls, timeouts, no redirects followed).

use std::time::Duration;

use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;
use oauth2::basic::{BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse};
use oauth2::{
    AsyncHttpClient, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    HttpRequest, HttpResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken,
    RequestTokenError, Scope, StandardRevocableToken, TokenUrl,
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
    pub redirect_uri: Option<&'a str>,
    pub scopes: &'a [String],
}

pub struct DocuSignOAuth {
    client: Client,
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
            client = client.set_redirect_uri(RedirectUrl::new(uri.to_owned()).map_err(|_| SettingsError("redirect uri"))?);
        }
        Ok(Self {
            client,
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
            RequestTokenError::ServerResponse(e) => OAuthError::Rejected {
                code: e.error().to_string(),
                description: e.error_description().cloned(),
            },
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

/// What went wrong below OAuth: kept apart so 5xx/429 are not mistaken
/// for an OAuth refusal.
#[derive(Debug, thiserror::Error)]
enum Transport {
    #[error("HTTP {status}")]
    Status { status: u16, retry_after: Option<u64> },
    #[error("network")]
    Network(#[source] crate::cipher::BoxError),
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
        self.token_call(
            self.client
                .exchange_code(AuthorizationCode::new(code.to_owned()))
                .set_pkce_verifier(PkceCodeVerifier::new(verifier.expose_secret().to_owned()))
                .request_async(&self.token_http),
        )
        .await
    }

    async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenGrant, OAuthError> {
        let token = RefreshToken::new(refresh_token.expose_secret().to_owned());
        self.token_call(self.client.exchange_refresh_token(&token).request_async(&self.token_http)).await
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
            return Err(OAuthError::Unavailable { status: status.as_u16(), retry_after: retry_after(response.headers()) });
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
