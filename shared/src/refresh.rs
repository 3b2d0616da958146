//! The one refresh every caller uses: the schedule and `send-envelope`.
//!
//! A refresh token is presented to DocuSign at most once, whatever runs at
//! the same time:
//!
//! 1. a per-tenant lease item (`lease#refresh`) taken with a conditional
//!    write comparing its owner and expiry with the clock: one holder at a
//!    time across Lambda instances; others wait for the holder's result and
//!    use its tokens;
//! 2. the holder re-reads the connection under the lease and refreshes only
//!    if it is still needed;
//! 3. just before presenting, it marks the lease with the connection version
//!    whose refresh token it presents. A later holder that finds that mark on
//!    the current version knows the token was presented and its answer never
//!    stored (the process died): it does not present it again, and the
//!    connection needs a new consent (documented in the README). It
//!    presents only with [`PRESENT_MIN_LEFT`] before its deadline, so the
//!    answer can be stored before the invocation ends;
//! 4. the new access and refresh tokens are written together, fenced on the
//!    connection id and version, before anything else is done with them, and
//!    retried until the deadline; a final failure is one alarm-grade log line.
//!    A write the fence refuses (disconnected or reconnected meanwhile) drops
//!    the tokens and starts over on what is stored;
//! 5. the lease is released (which clears the mark).
//!
//! What DocuSign answers decides what is kept: `invalid_grant` (and
//! `consent_required`) mark the connection `reauth_required`. Anything else
//! leaves it `active`, with a cool-down for on-demand refreshes
//! ([`cooldown`]; the schedule keeps its own hourly pace): 5xx, 429, a lost
//! connection, and a refused *client* (`invalid_client`,
//! `unauthorized_client`, recorded as [`CLIENT_SECRET_REJECTED`]). A client
//! is authenticated before its grant is looked at (RFC 6749 §5.2), so such a
//! refusal has not spent the refresh token: releasing the lease clears the
//! mark of step 3 and the same token may be presented again once the secret
//! is fixed. `DOCUSIGN_SECRET_KEY_NEXT`, when set, is tried by the adapter
//! within the same call ([`crate::docusign::oauth`]).
//!
//! However odd the rest of a 200 answer, its tokens are stored: the access
//! token's life is read leniently and bounded ([`crate::docusign::wire`]), so
//! computing the expiry cannot fail after DocuSign has rotated the token.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use secrecy::SecretString;
use tokio::time::Instant;

use crate::app::App;
use crate::cipher::{Binding, CipherError, Record};
use crate::docusign::OAuthError;
use crate::docusign::REFRESH_TOKEN_DAYS;
use crate::error::chain;
use crate::store::{Connection, ConnectionStatus, LeaseAcquire, PresentedMark, RefreshBookkeeping, StoreError};

/// `last_error` of a connection whose refresh DocuSign refused with
/// `invalid_client` or `unauthorized_client`: our client configuration is
/// wrong (a bad or removed `DOCUSIGN_SECRET_KEY`), not the tenant's consent.
pub const CLIENT_SECRET_REJECTED: &str = "client_secret_rejected";

/// How long a lease lasts. A holder presents a token only while at least
/// [`PRESENT_MARGIN_SECS`] of it is left, which covers DocuSign's HTTP timeout.
pub const LEASE_SECS: i64 = 45;
pub const PRESENT_MARGIN_SECS: i64 = 20;
/// A refresh token is presented only with at least this long left before
/// the caller's deadline: DocuSign may take its whole HTTP timeout (10 s,
/// `docusign::oauth::http_client`) to answer, and the answer must then be
/// encrypted and stored. A Lambda reaching its deadline after presenting
/// would die holding the only copy of the new tokens.
pub const PRESENT_MIN_LEFT: StdDuration = StdDuration::from_secs(12);
/// How often a waiting caller looks for the lease holder's result.
const WAIT_POLL: StdDuration = StdDuration::from_millis(150);

/// Why a refresh is asked for.
#[derive(Clone, Debug)]
pub enum Need {
    /// The schedule: refresh if the access token expires within `window`.
    /// Ignores the cool-down (the schedule is itself the pace).
    Due { window: Duration },
    /// A send: refresh if the access token expires within `margin`,
    /// respecting the cool-down after transient failures.
    Margin { margin: Duration },
    /// DocuSign refused the access token of this version (a 401): refresh
    /// unless another caller already replaced it.
    Rejected { connection_id: String, version: u64 },
}

#[derive(Debug)]
// `Fresh` is the common case; boxing it would cost an allocation per send.
#[allow(clippy::large_enum_variant)]
pub enum Refreshed {
    /// The connection's tokens are good for the need. `access_token` is the
    /// plaintext when this call obtained it (saves a KMS decrypt).
    Fresh {
        connection: Connection,
        access_token: Option<SecretString>,
        refreshed_here: bool,
    },
    /// The connection needs a new consent (now or already before).
    ReauthRequired,
    NotConnected,
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// DocuSign unavailable, rate limiting, or unreachable; the connection stays active.
    #[error("DocuSign refresh failed transiently ({class})")]
    Transient { class: String, retry_after: Option<u64> },
    /// A recent transient failure; no call is made until `until`.
    #[error("refresh is cooling down after a failure")]
    CoolingDown { until: DateTime<Utc> },
    /// Another caller holds the lease and did not finish before our deadline.
    #[error("another refresh of this tenant is in progress")]
    Busy,
    /// Less than [`PRESENT_MIN_LEFT`] was left before the deadline: nothing
    /// was presented, the connection is as it was.
    #[error("too little time left before the deadline to present the refresh token")]
    DeadlineNear,
    #[error("token store failed")]
    Store(#[from] StoreError),
    #[error("token cipher failed")]
    Cipher(#[from] CipherError),
    /// DocuSign issued new tokens and they could not be stored: the
    /// presented refresh token is spent. The lease is left to expire with
    /// its presented mark, so no one presents that token again.
    #[error("refreshed tokens could not be stored")]
    TokensLost(#[source] Box<RefreshError>),
}

/// After `failures` consecutive transient failures, no on-demand refresh is
/// tried for this long (1, 2, 4, … minutes, at most 15).
pub fn cooldown(failures: u32) -> Duration {
    Duration::seconds(60 * (1i64 << failures.saturating_sub(1).min(4))).min(Duration::minutes(15))
}

fn needs_refresh(c: &Connection, need: &Need, now: DateTime<Utc>) -> bool {
    match need {
        Need::Due { window } => c.access_token_expires_at <= now + *window,
        Need::Margin { margin } => c.access_token_expires_at <= now + *margin,
        Need::Rejected { connection_id, version } => c.connection_id == *connection_id && c.version == *version,
    }
}

fn owner_id() -> String {
    crate::crypto::random_hex(12)
}

/// Makes the tenant's access token good for `need`, refreshing at most once
/// across every concurrent caller. Gives up waiting at `deadline`.
#[tracing::instrument(skip(app, need, deadline), fields(tenant = %tenant))]
pub async fn ensure_fresh(app: &App, tenant: &str, need: &Need, deadline: Instant) -> Result<Refreshed, RefreshError> {
    let owner = owner_id();
    loop {
        let Some(current) = app.store.get_connection(tenant).await? else {
            return Ok(Refreshed::NotConnected);
        };
        if current.status == ConnectionStatus::ReauthRequired {
            return Ok(Refreshed::ReauthRequired);
        }
        let now = app.clock.now();
        if !needs_refresh(&current, need, now) {
            return Ok(Refreshed::Fresh { connection: current, access_token: None, refreshed_here: false });
        }
        if let (Need::Margin { .. } | Need::Rejected { .. }, Some(until)) = (need, current.refresh.retry_not_before) {
            if until > now {
                return Err(RefreshError::CoolingDown { until });
            }
        }
        match app.store.acquire_lease(tenant, &owner, now, now + Duration::seconds(LEASE_SECS)).await? {
            LeaseAcquire::Held => {
                if Instant::now() + WAIT_POLL >= deadline {
                    return Err(RefreshError::Busy);
                }
                tokio::time::sleep(WAIT_POLL).await;
            }
            LeaseAcquire::Acquired { presented } => {
                let result = refresh_holding_lease(app, tenant, &owner, need, presented, deadline).await;
                let keep_mark = matches!(result, Err(RefreshError::TokensLost(_)));
                if !keep_mark {
                    if let Err(e) = app.store.release_lease(tenant, &owner).await {
                        // The lease expires by itself; nothing is lost.
                        tracing::warn!(error = %chain(&e), "refresh lease could not be released");
                    }
                }
                match result {
                    Ok(Some(done)) => return Ok(done),
                    // The connection changed under us (replaced, or the lease was
                    // lost): look again.
                    Ok(None) => continue,
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

/// `Ok(None)`: start over (the connection or the lease changed meanwhile).
async fn refresh_holding_lease(
    app: &App,
    tenant: &str,
    owner: &str,
    need: &Need,
    presented: Option<PresentedMark>,
    deadline: Instant,
) -> Result<Option<Refreshed>, RefreshError> {
    let Some(current) = app.store.get_connection(tenant).await? else {
        return Ok(Some(Refreshed::NotConnected));
    };
    if current.status == ConnectionStatus::ReauthRequired {
        return Ok(Some(Refreshed::ReauthRequired));
    }
    let now = app.clock.now();
    if !needs_refresh(&current, need, now) {
        return Ok(Some(Refreshed::Fresh { connection: current, access_token: None, refreshed_here: false }));
    }
    if presented.as_ref().is_some_and(|mark| mark.is_of(&current)) {
        // A previous holder presented this refresh token and never stored
        // DocuSign's answer. Presenting it again would be a reuse.
        tracing::error!(
            alarm = true,
            tenant,
            "refresh token of this connection was presented by a refresh that never stored the answer; \
             the connection needs a new consent"
        );
        mark_reauth(app, &current, "refresh_token_lost").await?;
        return Ok(Some(Refreshed::ReauthRequired));
    }
    let refresh_token =
        app.cipher.decrypt(&Binding { tenant, record: Record::RefreshToken }, &current.refresh_token).await?;
    if Instant::now() + PRESENT_MIN_LEFT > deadline {
        tracing::info!(tenant, "deadline too near to present the refresh token; not refreshed");
        return Err(RefreshError::DeadlineNear);
    }
    match app
        .store
        .mark_presented(tenant, owner, &PresentedMark::of(&current), now + Duration::seconds(PRESENT_MARGIN_SECS))
        .await
    {
        Ok(()) => {}
        Err(StoreError::Conflict) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let started = Instant::now();
    let answer = app.docusign.refresh(&refresh_token).await;
    drop(refresh_token);
    match answer {
        Ok(grant) => match store_refreshed(app, &current, grant, deadline).await {
            Ok(next) => {
                tracing::info!(
                    tenant,
                    version = next.0.version,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "tokens refreshed"
                );
                Ok(Some(Refreshed::Fresh { connection: next.0, access_token: Some(next.1), refreshed_here: true }))
            }
            // Disconnected or replaced by a new consent while DocuSign
            // answered: the fence kept the new state, and the caller gets
            // what is there now (no connection, or the new one's tokens).
            Err(RefreshError::Store(StoreError::Conflict)) => Ok(None),
            Err(e) => Err(e),
        },
        Err(e) if e.needs_reauth() => {
            // Someone else may have won meanwhile (e.g. a refresh whose lease
            // expired while it was storing): then nothing failed.
            match app.store.get_connection(tenant).await? {
                Some(now_stored)
                    if now_stored.connection_id != current.connection_id || now_stored.version != current.version =>
                {
                    Ok(None)
                }
                Some(_) => {
                    tracing::warn!(tenant, class = %e.class(), "DocuSign refused the refresh grant; the connection needs a new consent");
                    mark_reauth(app, &current, &e.class()).await?;
                    Ok(Some(Refreshed::ReauthRequired))
                }
                None => Ok(Some(Refreshed::NotConnected)),
            }
        }
        Err(e) => {
            let client_rejected = e.client_rejected();
            let class = if client_rejected { CLIENT_SECRET_REJECTED.to_owned() } else { e.class() };
            let retry_after = match &e {
                OAuthError::Unavailable { retry_after, .. } => *retry_after,
                _ => None,
            };
            let failures = current.refresh.failures.saturating_add(1);
            let bookkeeping = RefreshBookkeeping {
                failures,
                retry_not_before: Some(app.clock.now() + cooldown(failures)),
                last_error: Some(class.clone()),
            };
            if client_rejected {
                // Our configuration, not this tenant's consent (the adapter has
                // written the ClientSecretRejected metric): the refresh token
                // was not spent; the connection stays active and is retried
                // by the next run, or after the cool-down by a send.
                tracing::error!(
                    tenant,
                    class = %class,
                    error = %e.class(),
                    failures,
                    "DocuSign refused our client credentials; connection stays active, refresh token unspent"
                );
            } else {
                tracing::warn!(tenant, class = %class, failures, error = %chain(&e), "DocuSign refresh failed; connection stays active");
            }
            match app.store.update_refresh_state(&current, ConnectionStatus::Active, &bookkeeping).await {
                Ok(()) | Err(StoreError::Conflict) => {}
                Err(store) => tracing::warn!(error = %chain(&store), "refresh bookkeeping could not be written"),
            }
            Err(RefreshError::Transient { class, retry_after })
        }
    }
}

async fn mark_reauth(app: &App, current: &Connection, class: &str) -> Result<(), RefreshError> {
    let bookkeeping = RefreshBookkeeping {
        failures: current.refresh.failures,
        retry_not_before: None,
        last_error: Some(class.to_owned()),
    };
    match app.store.update_refresh_state(current, ConnectionStatus::ReauthRequired, &bookkeeping).await {
        Ok(()) | Err(StoreError::Conflict) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Encrypts and writes DocuSign's new tokens, fenced on `current`, retrying
/// until `deadline`: these tokens exist nowhere else.
async fn store_refreshed(
    app: &App,
    current: &Connection,
    grant: crate::docusign::TokenGrant,
    deadline: Instant,
) -> Result<(Connection, SecretString), RefreshError> {
    let tenant = current.tenant.as_str();
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let result = async {
            let access =
                app.cipher.encrypt(&Binding { tenant, record: Record::AccessToken }, &grant.access_token).await?;
            let (refresh, refresh_expires) = match &grant.refresh_token {
                Some(token) => (
                    app.cipher.encrypt(&Binding { tenant, record: Record::RefreshToken }, token).await?,
                    app.clock.now() + Duration::days(REFRESH_TOKEN_DAYS),
                ),
                // DocuSign kept the refresh token: keep ours.
                None => (current.refresh_token.clone(), current.refresh_token_expires_at),
            };
            let now = app.clock.now();
            let next = Connection {
                version: current.version + 1,
                access_token: access,
                // Within 1 s ..= 30 days whatever DocuSign said (`docusign::wire`).
                access_token_expires_at: now + grant.lifetime,
                refresh_token: refresh,
                refresh_token_expires_at: refresh_expires,
                status: ConnectionStatus::Active,
                last_refreshed_at: now,
                refresh: RefreshBookkeeping::default(),
                ..current.clone()
            };
            app.store.write_fenced(current, &next).await?;
            Ok::<_, RefreshError>(next)
        }
        .await;
        match result {
            Ok(next) => return Ok((next, grant.access_token)),
            Err(RefreshError::Store(StoreError::Conflict)) => {
                // Replaced by a new consent or removed by a disconnect while
                // we refreshed: those tokens belong to a connection that is
                // gone. They are dropped unstored; DocuSign has no revocation
                // endpoint, so they lapse (access 8 h, refresh 30 days) unused.
                tracing::warn!(tenant, "connection changed during refresh; refreshed tokens discarded");
                return Err(RefreshError::Store(StoreError::Conflict));
            }
            Err(e) => {
                let backoff = StdDuration::from_millis(100 * (1 << attempt.min(5)));
                if Instant::now() + backoff >= deadline {
                    tracing::error!(
                        alarm = true,
                        tenant,
                        attempts = attempt,
                        error = %chain(&e),
                        "ALARM: DocuSign issued new tokens but they could not be stored; the connection will need a new consent"
                    );
                    return Err(RefreshError::TokensLost(Box::new(e)));
                }
                tracing::warn!(tenant, attempt, error = %chain(&e), "storing refreshed tokens failed; retrying");
                tokio::time::sleep(backoff).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cooldown_grows_and_is_capped() {
        assert_eq!(cooldown(1), Duration::minutes(1));
        assert_eq!(cooldown(2), Duration::minutes(2));
        assert_eq!(cooldown(3), Duration::minutes(4));
        assert_eq!(cooldown(5), Duration::minutes(15));
        assert_eq!(cooldown(50), Duration::minutes(15));
    }
}
