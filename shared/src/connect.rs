//! Connecting a tenant: consent start, the OAuth callback, status and
//! disconnect.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use chrono::{DateTime, Duration, Utc};
use lambda_http::aws_lambda_events::query_map::QueryMap;
use oauth2::PkceCodeChallenge;
use rand::RngCore;
use secrecy::SecretString;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::app::App;
use crate::auth::{is_valid_tenant, Caller};
use crate::cipher::{Binding, CipherError};
use crate::clock::rfc3339;
use crate::docusign::OAuthError;
use crate::error::ApiError;
use crate::store::{
    Connection, ConnectionStatus, Identity, PendingConsent, RefreshBookkeeping, StoreError, TakeConsent,
    AUTH_KEY, REFRESH_KEY,
};

/// How long an admin has to accept on DocuSign's page.
pub const CONSENT_TTL_MINUTES: i64 = 10;
/// DocuSign does not state the refresh token's life; it documents 30 days.
pub const REFRESH_TOKEN_DAYS: i64 = 30;
/// DocuSign's documented access-token life, used when `expires_in` is absent.
pub const DEFAULT_ACCESS_SECS: u64 = 8 * 3600;

pub const CONSENT_RECORD: &str = "consent";

pub fn sha256_hex(value: &str) -> String {
    Sha256::digest(value.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// Logs a failure of our own dependencies (DynamoDB, KMS) with its whole
/// cause chain, and answers 503.
pub(crate) fn dependency_failure(what: &str, error: &(dyn std::error::Error + 'static)) -> ApiError {
    tracing::error!(error = %chain(error), "{what} failed");
    ApiError::upstream_unavailable("a storage or key service is temporarily unavailable; try again shortly", 2)
}

/// `a: b: c` from an error and its sources.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        dependency_failure("token store", &e)
    }
}

impl From<CipherError> for ApiError {
    fn from(e: CipherError) -> Self {
        dependency_failure("token cipher", &e)
    }
}

// ---- consent start -------------------------------------------------------------

#[derive(Debug)]
pub struct ConsentStarted {
    pub authorization_url: String,
    pub expires_at: DateTime<Utc>,
}

/// `POST /docusign/consent`: a single-use state bound to the tenant, the
/// admin and the environment, with its PKCE verifier kept encrypted.
///
/// The state is `<tenant>.<43 random characters>`: the tenant part lets the
/// callback read the pending consent with one strongly consistent key lookup
/// (`tenant_id`, `consent#<sha256(state)>`); the random part is what makes
/// it unguessable.
pub async fn start_consent(app: &App, caller: &Caller) -> Result<ConsentStarted, ApiError> {
    caller.require_admin()?;
    let now = app.clock.now();
    let state = format!("{}.{}", caller.tenant, random_token(32));
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let verifier = SecretString::from(verifier.secret().to_owned());
    let binding = Binding { tenant: &caller.tenant, record: CONSENT_RECORD };
    let pending = PendingConsent {
        tenant: caller.tenant.clone(),
        state_hash: sha256_hex(&state),
        admin: caller.user.clone(),
        environment: app.config.environment,
        verifier: app.cipher.encrypt(&binding, &verifier).await?,
        created_at: now,
        expires_at: now + Duration::minutes(CONSENT_TTL_MINUTES),
    };
    app.store.put_pending_consent(&pending).await?;
    tracing::info!(tenant = %caller.tenant, admin = %caller.user, "consent started");
    Ok(ConsentStarted {
        authorization_url: app.docusign.authorize_url(&state, &challenge),
        expires_at: pending.expires_at,
    })
}

// ---- callback ------------------------------------------------------------------

/// Why a callback did not connect, in words an admin understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackFailure {
    Declined,
    DocuSignError(String),
    MissingParameters,
    UnknownState,
    ExpiredState,
    StateAlreadyUsed,
    OtherEnvironment,
    ExchangeFailed,
    NoUsableAccount { pinned: Option<String> },
    Unavailable,
}

impl CallbackFailure {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Declined => "declined",
            Self::DocuSignError(_) => "docusign_error",
            Self::MissingParameters => "invalid_request",
            Self::UnknownState => "unknown_state",
            Self::ExpiredState => "expired_state",
            Self::StateAlreadyUsed => "state_already_used",
            Self::OtherEnvironment => "environment_mismatch",
            Self::ExchangeFailed => "exchange_failed",
            Self::NoUsableAccount { .. } => "no_usable_account",
            Self::Unavailable => "temporarily_unavailable",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::Declined => "The DocuSign consent was declined, so nothing was connected. Start again from the CRM if this was a mistake.".into(),
            Self::DocuSignError(code) => format!("DocuSign reported an error ({code}), so nothing was connected. Start again from the CRM."),
            Self::MissingParameters => "This page was opened without the parameters DocuSign sends. Start the connection from the CRM.".into(),
            Self::UnknownState => "This consent link is not one we issued (or it was cancelled by a disconnect). Start again from the CRM.".into(),
            Self::ExpiredState => format!("This consent link expired (links are valid for {CONSENT_TTL_MINUTES} minutes). Start again from the CRM."),
            Self::StateAlreadyUsed => "This consent link was already used. Start again from the CRM if the connection is not shown there.".into(),
            Self::OtherEnvironment => "This consent was started for another DocuSign environment than the one the connector now uses. Start again from the CRM.".into(),
            Self::ExchangeFailed => "DocuSign did not accept the authorization, so nothing was connected. Start again from the CRM.".into(),
            Self::NoUsableAccount { pinned: Some(id) } => format!("The DocuSign user has no access to the account this connector is configured for ({id}). Log in as a user of that account."),
            Self::NoUsableAccount { pinned: None } => "The DocuSign user has no default account to use. Set a default account in DocuSign, or configure DOCUSIGN_ACCOUNT_ID.".into(),
            Self::Unavailable => "DocuSign or our storage is temporarily unavailable, so nothing was connected. Try again in a minute.".into(),
        }
    }
}

/// The query DocuSign redirects the browser with.
#[derive(Debug, Default)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
}

impl CallbackQuery {
    /// The first `code`, `state` and `error` of the request's query string.
    pub fn from_params(params: &QueryMap) -> Self {
        let first = |name: &str| params.first(name).map(str::to_owned);
        Self { code: first("code"), state: first("state"), error: first("error") }
    }

    /// The state and the tenant it names (`<tenant>.<random>`), checked
    /// before anything is read; else why the callback cannot go on.
    pub fn state_and_tenant(&self) -> Result<(&str, &str), CallbackFailure> {
        let Some(state) = self.state.as_deref().filter(|s| !s.is_empty() && s.len() <= 256) else {
            return Err(if self.error.as_deref() == Some("access_denied") {
                CallbackFailure::Declined
            } else {
                CallbackFailure::MissingParameters
            });
        };
        let tenant = state
            .split_once('.')
            .map(|(t, _)| t)
            .filter(|t| is_valid_tenant(t))
            .ok_or(CallbackFailure::UnknownState)?;
        Ok((state, tenant))
    }

    /// The failure DocuSign reported in `error`, its code made printable.
    pub fn reported_failure(&self) -> Option<CallbackFailure> {
        self.error.as_deref().map(|error| {
            if error == "access_denied" {
                CallbackFailure::Declined
            } else {
                CallbackFailure::DocuSignError(crate::docusign::sanitize_code(error))
            }
        })
    }
}

#[derive(Debug)]
pub enum CallbackOutcome {
    Connected { tenant: String, identity: Identity, environment: crate::config::DocuSignEnvironment },
    Failed(CallbackFailure),
}

/// `GET /docusign/callback`. Nothing is stored unless every step succeeds;
/// on success both records are replaced in one transaction.
pub async fn complete_consent(app: &App, query: CallbackQuery) -> CallbackOutcome {
    match try_complete(app, query).await {
        Ok((tenant, identity)) => CallbackOutcome::Connected { tenant, identity, environment: app.config.environment },
        Err(failure) => {
            tracing::warn!(reason = failure.code(), "consent callback did not connect");
            CallbackOutcome::Failed(failure)
        }
    }
}

async fn try_complete(app: &App, query: CallbackQuery) -> Result<(String, Identity), CallbackFailure> {
    let (state, tenant) = query.state_and_tenant()?;
    let taken = app.store.take_pending_consent(tenant, &sha256_hex(state)).await.map_err(|e| {
        dependency_failure("reading the pending consent", &e);
        CallbackFailure::Unavailable
    })?;
    let pending = match taken {
        TakeConsent::Taken(p) => p,
        TakeConsent::AlreadyUsed => return Err(CallbackFailure::StateAlreadyUsed),
        TakeConsent::Unknown => return Err(CallbackFailure::UnknownState),
    };
    // The consent is used up from here on, whatever happens next.
    if let Some(failure) = query.reported_failure() {
        return Err(failure);
    }
    let now = app.clock.now();
    if now >= pending.expires_at {
        return Err(CallbackFailure::ExpiredState);
    }
    if pending.environment != app.config.environment {
        return Err(CallbackFailure::OtherEnvironment);
    }
    let code = query.code.as_deref().filter(|c| !c.is_empty()).ok_or(CallbackFailure::MissingParameters)?;

    let unavailable = |what: &str, e: &(dyn std::error::Error + 'static)| {
        dependency_failure(what, e);
        CallbackFailure::Unavailable
    };
    let binding = Binding { tenant, record: CONSENT_RECORD };
    let verifier = app.cipher.decrypt(&binding, &pending.verifier).await.map_err(|e| unavailable("decrypting the PKCE verifier", &e))?;

    let grant = app.docusign.exchange_code(code, &verifier).await.map_err(|e| exchange_failure(&e))?;
    let refresh_token = grant.refresh_token.ok_or_else(|| {
        tracing::warn!("DocuSign's token answer had no refresh token");
        CallbackFailure::ExchangeFailed
    })?;
    let userinfo = app.docusign.userinfo(&grant.access_token).await.map_err(|e| exchange_failure(&e))?;
    let pinned = app.config.account_id.clone();
    let account = userinfo
        .choose_account(pinned.as_deref())
        .ok_or(CallbackFailure::NoUsableAccount { pinned })?;

    let identity = Identity {
        user_id: userinfo.sub.clone(),
        user_name: userinfo.name.clone(),
        user_email: userinfo.email.clone(),
        account_id: account.account_id.clone(),
        account_name: account.account_name.clone(),
        base_uri: account.base_uri.clone(),
    };
    let access_ct = app
        .cipher
        .encrypt(&Binding { tenant, record: AUTH_KEY }, &grant.access_token)
        .await
        .map_err(|e| unavailable("encrypting the access token", &e))?;
    let refresh_ct = app
        .cipher
        .encrypt(&Binding { tenant, record: REFRESH_KEY }, &refresh_token)
        .await
        .map_err(|e| unavailable("encrypting the refresh token", &e))?;
    let connection = Connection {
        tenant: tenant.to_owned(),
        connection_id: random_token(12),
        version: 1,
        environment: app.config.environment,
        identity: identity.clone(),
        access_token: access_ct,
        access_token_expires_at: now + Duration::seconds(grant.expires_in.unwrap_or(DEFAULT_ACCESS_SECS) as i64),
        refresh_token: refresh_ct,
        refresh_token_expires_at: now + Duration::days(REFRESH_TOKEN_DAYS),
        status: ConnectionStatus::Active,
        connected_at: now,
        last_refreshed_at: now,
        refresh: RefreshBookkeeping::default(),
    };
    app.store.replace_connection(&connection).await.map_err(|e| unavailable("writing the connection", &e))?;
    tracing::info!(tenant, admin = %pending.admin, account_id = %identity.account_id, "DocuSign connected");
    Ok((tenant.to_owned(), identity))
}

fn exchange_failure(e: &OAuthError) -> CallbackFailure {
    tracing::warn!(error = %e, class = %e.class(), "DocuSign token exchange or userinfo failed");
    match e {
        OAuthError::Unavailable { .. } | OAuthError::Network(_) => CallbackFailure::Unavailable,
        _ => CallbackFailure::ExchangeFailed,
    }
}

// ---- status and disconnect -------------------------------------------------------

/// `GET /docusign/connection`.
pub async fn status(app: &App, caller: &Caller) -> Result<Value, ApiError> {
    let Some(c) = app.store.get_connection(&caller.tenant).await? else {
        return Ok(json!({ "connected": false }));
    };
    Ok(status_json(&c))
}

pub fn status_json(c: &Connection) -> Value {
    json!({
        "connected": true,
        "status": c.status.as_str(),
        "environment": c.environment.as_str(),
        "account_id": c.identity.account_id,
        "account_name": c.identity.account_name,
        "base_uri": c.identity.base_uri,
        "user_name": c.identity.user_name,
        "user_email": c.identity.user_email,
        "connected_at": rfc3339(c.connected_at),
        "last_refreshed_at": rfc3339(c.last_refreshed_at),
        "access_token_expires_at": rfc3339(c.access_token_expires_at),
        "refresh_token_expires_at": rfc3339(c.refresh_token_expires_at),
    })
}

/// `DELETE /docusign/connection`: both records and any pending consent go.
pub async fn disconnect(app: &App, caller: &Caller) -> Result<(), ApiError> {
    caller.require_admin()?;
    app.store.delete_connection(&caller.tenant).await?;
    tracing::info!(tenant = %caller.tenant, admin = %caller.user, "DocuSign disconnected");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(raw: &str) -> CallbackQuery {
        CallbackQuery::from_params(&raw.parse().unwrap())
    }

    #[test]
    fn the_callback_query_names_the_tenant_of_its_state() {
        let q = query("code=c&state=acme-1.abc&code=other");
        assert_eq!(q.code.as_deref(), Some("c"));
        assert_eq!(q.state_and_tenant(), Ok(("acme-1.abc", "acme-1")));
        assert_eq!(q.reported_failure(), None);
        assert_eq!(query("code=c").state_and_tenant(), Err(CallbackFailure::MissingParameters));
        assert_eq!(query("error=access_denied").state_and_tenant(), Err(CallbackFailure::Declined));
        for state in ["nodot", "a%2Fb.x", ".x", &format!("{}.x", "t".repeat(65)), &format!("t.{}", "x".repeat(256))] {
            assert!(query(&format!("state={state}")).state_and_tenant().is_err(), "{state}");
        }
        let q = query("state=t.x&error=server%20error%3Cb%3E");
        assert_eq!(q.reported_failure(), Some(CallbackFailure::DocuSignError("servererrorb".into())));
    }
}
