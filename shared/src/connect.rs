//! Connecting a tenant: consent start, the OAuth callback, status and
//! disconnect.

use chrono::{DateTime, Duration, Utc};
use lambda_http::aws_lambda_events::query_map::QueryMap;
use oauth2::PkceCodeChallenge;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::app::App;
use crate::auth::{is_valid_tenant, Caller};
use crate::cipher::{Binding, Record};
use crate::clock::rfc3339;
use crate::crypto::{random_token, sha256_hex};
use crate::docusign::OAuthError;
use crate::docusign::REFRESH_TOKEN_DAYS;
use crate::error::chain;
use crate::error::ApiError;
use crate::store::{
    Connection, ConnectionStatus, Identity, PendingConsent, ProposedConnection, RefreshBookkeeping, StoreError,
    TakeConsent,
};

/// How long an admin has to accept on DocuSign's page.
pub const CONSENT_TTL_MINUTES: i64 = 10;
/// How long the admin has to confirm an approved consent, from the callback.
pub const CONFIRM_TTL_MINUTES: i64 = 10;
/// The confirmation's random bytes: 256 bits, 43 base64url characters.
const CONFIRMATION_BYTES: usize = 32;

/// Logs a failure of our own dependencies met in the callback, whose page
/// says only "temporarily unavailable".
fn dependency_failure(what: &str, error: &(dyn std::error::Error + 'static)) {
    tracing::error!(error = %chain(error), "{what} failed");
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
    let binding = Binding { tenant: &caller.tenant, record: Record::ConsentVerifier };
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
    /// No account to act for: the pinned (or default) one is missing, or its
    /// `base_uri` is not allowed by `DOCUSIGN_API_HOSTS`.
    NoUsableAccount {
        pinned: Option<String>,
    },
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
            Self::Unavailable => "upstream_unavailable",
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
            Self::NoUsableAccount { pinned: Some(id) } => format!("The DocuSign user has no usable access to the account this connector is configured for ({id}). Log in as a user of that account."),
            Self::NoUsableAccount { pinned: None } => "The DocuSign user has no usable default account. Set a default account in DocuSign, or configure DOCUSIGN_ACCOUNT_ID.".into(),
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
    /// DocuSign approved; the result waits for the admin's confirmation.
    Proposed {
        confirmation: SecretString,
        identity: Identity,
    },
    Failed(CallbackFailure),
}

/// `GET /docusign/callback`. Nothing is stored unless every step succeeds;
/// on success the result is kept as a proposed connection of the consent,
/// and the tenant's connection does not change until the admin who started
/// the consent confirms it ([`confirm_consent`]).
pub async fn complete_consent(app: &App, query: CallbackQuery) -> CallbackOutcome {
    match try_complete(app, query).await {
        Ok((confirmation, identity)) => CallbackOutcome::Proposed { confirmation, identity },
        Err(failure) => {
            tracing::warn!(reason = failure.code(), "consent callback did not complete");
            CallbackOutcome::Failed(failure)
        }
    }
}

async fn try_complete(app: &App, query: CallbackQuery) -> Result<(SecretString, Identity), CallbackFailure> {
    let (state, tenant) = query.state_and_tenant()?;
    let taken = app.store.take_pending_consent(tenant, &sha256_hex(state), app.clock.now()).await.map_err(|e| {
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
    let binding = Binding { tenant, record: Record::ConsentVerifier };
    let verifier = app
        .cipher
        .decrypt(&binding, &pending.verifier)
        .await
        .map_err(|e| unavailable("decrypting the PKCE verifier", &e))?;

    let grant = app.docusign.exchange_code(code, &verifier).await.map_err(|e| exchange_failure(&e))?;
    let refresh_token = grant.refresh_token.ok_or_else(|| {
        tracing::warn!("DocuSign's token answer had no refresh token");
        CallbackFailure::ExchangeFailed
    })?;
    let userinfo = app.docusign.userinfo(&grant.access_token).await.map_err(|e| exchange_failure(&e))?;
    let pinned = app.config.account_id.clone();
    let account = userinfo
        .choose_account(pinned.as_deref())
        .ok_or(CallbackFailure::NoUsableAccount { pinned: pinned.clone() })?;
    if let Err(refusal) = app.config.api_hosts.check(&account.base_uri) {
        tracing::warn!(tenant, account_id = %account.account_id, %refusal, "the account's base URI is not allowed by DOCUSIGN_API_HOSTS");
        return Err(CallbackFailure::NoUsableAccount { pinned });
    }

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
        .encrypt(&Binding { tenant, record: Record::AccessToken }, &grant.access_token)
        .await
        .map_err(|e| unavailable("encrypting the access token", &e))?;
    let refresh_ct = app
        .cipher
        .encrypt(&Binding { tenant, record: Record::RefreshToken }, &refresh_token)
        .await
        .map_err(|e| unavailable("encrypting the refresh token", &e))?;
    let confirmation = random_token(CONFIRMATION_BYTES);
    let proposal = ProposedConnection {
        tenant: tenant.to_owned(),
        confirmation_hash: sha256_hex(&confirmation),
        state_hash: pending.state_hash.clone(),
        admin: pending.admin.clone(),
        environment: app.config.environment,
        identity: identity.clone(),
        access_token: access_ct,
        access_token_expires_at: now + grant.lifetime,
        refresh_token: refresh_ct,
        refresh_token_expires_at: now + Duration::days(REFRESH_TOKEN_DAYS),
        issued_at: now,
        expires_at: now + Duration::minutes(CONFIRM_TTL_MINUTES),
    };
    match app.store.put_proposal(&proposal).await {
        Ok(()) => {}
        // The consent was removed meanwhile: a disconnect cancelled it.
        Err(StoreError::Conflict) => return Err(CallbackFailure::UnknownState),
        Err(e) => return Err(unavailable("storing the proposed connection", &e)),
    }
    tracing::info!(tenant, admin = %pending.admin, account_id = %identity.account_id, "DocuSign consent approved; waiting for the admin's confirmation");
    Ok((SecretString::from(confirmation), identity))
}

fn exchange_failure(e: &OAuthError) -> CallbackFailure {
    tracing::warn!(error = %e, class = %e.class(), "DocuSign token exchange or userinfo failed");
    match e {
        OAuthError::Unavailable { .. } | OAuthError::Network(_) => CallbackFailure::Unavailable,
        _ => CallbackFailure::ExchangeFailed,
    }
}

// ---- confirmation ----------------------------------------------------------------

/// `POST /docusign/consent/confirm`: the proposed connection becomes the
/// tenant's, replacing any previous one in one transaction. Accepted once,
/// within [`CONFIRM_TTL_MINUTES`] of the callback, only from the tenant and
/// the admin (`sub`) who started the consent; every other case is the same
/// `consent_not_found`, so a caller learns nothing about which check failed.
pub async fn confirm_consent(app: &App, caller: &Caller, confirmation: &str) -> Result<Connection, ApiError> {
    caller.require_admin()?;
    // Anything that cannot be one of ours is looked up no further.
    if confirmation.len() < 16 || confirmation.len() > 128 {
        return Err(ApiError::consent_not_found());
    }
    let now = app.clock.now();
    let not_found = |why: &str| {
        tracing::info!(tenant = %caller.tenant, admin = %caller.user, why, "consent confirmation refused");
        ApiError::consent_not_found()
    };
    let Some(proposal) = app.store.get_proposal(&caller.tenant, &sha256_hex(confirmation)).await? else {
        return Err(not_found("unknown or already used"));
    };
    if proposal.admin != caller.user {
        return Err(not_found("another admin started this consent"));
    }
    if now >= proposal.expires_at {
        return Err(not_found("expired"));
    }
    if proposal.environment != app.config.environment {
        return Err(not_found("started for another DocuSign environment"));
    }
    let connection = Connection {
        tenant: proposal.tenant.clone(),
        connection_id: random_token(12),
        version: 1,
        environment: proposal.environment,
        identity: proposal.identity.clone(),
        access_token: proposal.access_token.clone(),
        access_token_expires_at: proposal.access_token_expires_at,
        refresh_token: proposal.refresh_token.clone(),
        refresh_token_expires_at: proposal.refresh_token_expires_at,
        status: ConnectionStatus::Active,
        connected_at: now,
        last_refreshed_at: proposal.issued_at,
        refresh: RefreshBookkeeping::default(),
    };
    match app.store.promote_proposal(&proposal, &connection, now).await {
        Ok(()) => {}
        // Used by a concurrent confirmation, or cancelled by a disconnect.
        Err(StoreError::Conflict) => return Err(not_found("used or cancelled meanwhile")),
        Err(e) => return Err(e.into()),
    }
    tracing::info!(
        tenant = %caller.tenant,
        admin = %caller.user,
        account_id = %connection.identity.account_id,
        "DocuSign connected"
    );
    Ok(connection)
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

/// `DELETE /docusign/connection`: both records and any pending or proposed consent go.
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
