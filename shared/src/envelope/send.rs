//! `POST /docusign/envelopes`: validate, route to the tenant's account,
//! send with one fresh token, retry what is safe to retry, exactly once per
//! `Idempotency-Key`.

use std::time::Duration as StdDuration;

use chrono::Duration;
use lambda_http::http::StatusCode;
use rand::Rng;
use secrecy::SecretString;
use serde_json::Value;
use tokio::time::Instant;

use super::idempotency::valid_key;
use super::validate::validate_envelope;
use crate::app::App;
use crate::auth::Caller;
use crate::cipher::{Binding, Record};
use crate::crypto::sha256_hex;
use crate::docusign::esign::{EsignAnswer, EsignError};
use crate::error::chain;
use crate::error::ApiError;
use crate::refresh::{ensure_fresh, Need, RefreshError, Refreshed};
use crate::store::idempotency::{Claim, IdempotencyKey};
use crate::store::{Connection, ConnectionStatus};

/// An access token expiring within this is refreshed before sending.
pub const REFRESH_MARGIN_MINUTES: i64 = 5;
/// How long a stored answer is replayed for a repeated key.
pub const IDEMPOTENCY_HOURS: i64 = 24;
/// A request holding a key longer than this is presumed dead and its key
/// may be taken over (longer than the function's 29 s timeout).
pub const IDEMPOTENCY_HOLD_SECS: i64 = 60;
/// A duplicate waits this long for the first request's answer.
const DUPLICATE_WAIT: StdDuration = StdDuration::from_secs(10);
/// No DocuSign attempt starts with less time than this left.
const MIN_ATTEMPT: StdDuration = StdDuration::from_secs(2);
const MAX_ATTEMPT_TIMEOUT: StdDuration = StdDuration::from_secs(20);

#[derive(Debug, PartialEq)]
pub struct Sent {
    pub status: StatusCode,
    pub body: Value,
}

/// The whole send, answering every expected failure as an [`ApiError`].
pub async fn send_envelope(
    app: &App,
    caller: &Caller,
    body: &[u8],
    idempotency_key: Option<&str>,
    deadline: Instant,
) -> Result<Sent, ApiError> {
    let envelope = Validated::from(validate_envelope(body)?);
    let Some(raw_key) = idempotency_key else {
        return send_validated(app, caller, &envelope, deadline).await;
    };
    if !valid_key(raw_key) {
        return Err(ApiError::invalid_request("Idempotency-Key: must be 1 to 255 visible ASCII characters"));
    }
    let key = IdempotencyKey {
        tenant: caller.tenant.clone(),
        key_hash: sha256_hex(raw_key),
        fingerprint: sha256_hex(&envelope.json),
    };
    let waited_until = Instant::now() + DUPLICATE_WAIT.min(deadline.saturating_duration_since(Instant::now()));
    loop {
        let now = app.clock.now();
        let claim = app
            .idempotency
            .claim(&key, now, now + Duration::seconds(IDEMPOTENCY_HOLD_SECS), now + Duration::hours(IDEMPOTENCY_HOURS))
            .await?;
        match claim {
            Claim::Claimed => break,
            Claim::Completed { status, body } => {
                tracing::info!(tenant = %caller.tenant, "idempotent repeat answered from the stored answer");
                return Ok(Sent {
                    status: StatusCode::from_u16(status).unwrap_or(StatusCode::CREATED),
                    body: serde_json::from_str(&body).unwrap_or(Value::Null),
                });
            }
            Claim::Mismatch => {
                return Err(ApiError::idempotency_conflict(
                    "Idempotency-Key was already used with another body; use a new key for a new envelope",
                ))
            }
            Claim::InProgress if Instant::now() + StdDuration::from_millis(250) < waited_until => {
                tokio::time::sleep(StdDuration::from_millis(250)).await;
            }
            Claim::InProgress => {
                let mut e = ApiError::new_conflict(
                    "idempotency_in_progress",
                    "a request with this Idempotency-Key is still being sent; retry later for its answer",
                );
                e.retry_after = Some(2);
                return Err(e);
            }
        }
    }
    let result = send_validated(app, caller, &envelope, deadline).await;
    // Replay only answers that will not change: success, and DocuSign's own
    // refusal of this body. Anything transient frees the key for a retry.
    let replayable = match &result {
        Ok(sent) => Some((sent.status.as_u16(), sent.body.clone())),
        Err(e) if e.code == "docusign_error" => Some((e.status.as_u16(), e.body())),
        Err(_) => None,
    };
    let stored = match &replayable {
        Some((status, value)) => app.idempotency.complete(&key, *status, &value.to_string()).await,
        None => app.idempotency.abandon(&key).await,
    };
    if let Err(e) = stored {
        // The envelope's fate is decided; losing the record only weakens a replay.
        tracing::error!(error = %chain(&e), "idempotency record could not be updated");
    }
    result
}

/// The envelope as it is sent: the serialization of the value the validator
/// checked, never the raw body. Two JSON parsers can read one body
/// differently (of two `emailSubject`s serde_json keeps the last, another
/// parser may keep the first), so DocuSign gets exactly what was validated.
struct Validated {
    /// serde_json's Map is a BTreeMap (no `preserve_order`): keys come
    /// sorted, so this is also the key order-independent form the
    /// idempotency fingerprint hashes (a repeat that only reorders fields is
    /// the same request).
    json: String,
    /// `status` as requested (`created` when absent), for the log.
    requested: String,
}

impl From<Value> for Validated {
    /// Consumes the parsed value, so that it and its serialization are not
    /// both kept while sending.
    fn from(envelope: Value) -> Self {
        let requested = envelope.get("status").and_then(Value::as_str).unwrap_or("created").to_owned();
        Self { json: envelope.to_string(), requested }
    }
}

async fn send_validated(app: &App, caller: &Caller, envelope: &Validated, deadline: Instant) -> Result<Sent, ApiError> {
    let (connection, token) = usable_token(app, &caller.tenant, deadline).await?;
    let answer = send_with_retries(app, &connection, token, envelope.json.as_bytes(), deadline).await?;
    let envelope_id = answer["envelopeId"].as_str().unwrap_or_default();
    let requested = envelope.requested.as_str();
    tracing::info!(
        tenant = %caller.tenant,
        account_id = %connection.identity.account_id,
        envelope_id,
        requested,
        "envelope sent"
    );
    Ok(Sent { status: StatusCode::CREATED, body: answer })
}

/// The connection and an access token good to send with: the stored one
/// (one KMS decrypt), or a fresh one when it expires within the margin.
async fn usable_token(app: &App, tenant: &str, deadline: Instant) -> Result<(Connection, SecretString), ApiError> {
    let connection = app.store.get_connection(tenant).await?.ok_or_else(ApiError::not_connected)?;
    if connection.status == ConnectionStatus::ReauthRequired {
        return Err(ApiError::reauth_required());
    }
    // Before any token is decrypted or refreshed: the stored base URI is
    // plain text that anyone able to write the table could have changed.
    if let Err(refusal) = app.config.api_hosts.check(&connection.identity.base_uri) {
        tracing::error!(
            alarm = "base_uri_not_allowed",
            tenant,
            %refusal,
            "ALARM: the stored DocuSign base URI is not allowed by DOCUSIGN_API_HOSTS; nothing was sent"
        );
        return Err(ApiError::connection_unusable());
    }
    let now = app.clock.now();
    let margin = Duration::minutes(REFRESH_MARGIN_MINUTES);
    if connection.access_token_expires_at > now + margin {
        return Ok((connection.clone(), decrypt_access(app, &connection).await?));
    }
    match ensure_fresh(app, tenant, &Need::Margin { margin }, deadline).await {
        Ok(refreshed) => fresh_token(app, refreshed).await,
        // The stored token still works for a while: use it.
        Err(e) if connection.access_token_expires_at > now => {
            tracing::warn!(tenant, error = %chain(&e), "refresh before send failed; sending with the current token");
            Ok((connection.clone(), decrypt_access(app, &connection).await?))
        }
        Err(e) => Err(refresh_failure(app, e)),
    }
}

async fn fresh_token(app: &App, refreshed: Refreshed) -> Result<(Connection, SecretString), ApiError> {
    match refreshed {
        Refreshed::Fresh { connection, access_token: Some(token), .. } => Ok((connection, token)),
        Refreshed::Fresh { connection, access_token: None, .. } => {
            let token = decrypt_access(app, &connection).await?;
            Ok((connection, token))
        }
        Refreshed::ReauthRequired => Err(ApiError::reauth_required()),
        Refreshed::NotConnected => Err(ApiError::not_connected()),
    }
}

async fn decrypt_access(app: &App, c: &Connection) -> Result<SecretString, ApiError> {
    Ok(app.cipher.decrypt(&Binding { tenant: &c.tenant, record: Record::AccessToken }, &c.access_token).await?)
}

fn refresh_failure(app: &App, e: RefreshError) -> ApiError {
    match e {
        RefreshError::Transient { retry_after, .. } => ApiError::upstream_unavailable(
            "DocuSign could not refresh this connection's access token; try again shortly",
            retry_after.unwrap_or(30),
        ),
        RefreshError::CoolingDown { until } => ApiError::upstream_unavailable(
            "DocuSign refused to refresh this connection's access token a moment ago; try again shortly",
            (until - app.clock.now()).num_seconds().clamp(1, 900) as u64,
        ),
        RefreshError::Busy => ApiError::upstream_unavailable("the connection's token is being refreshed; try again", 2),
        RefreshError::DeadlineNear => ApiError::upstream_unavailable(
            "too little time was left to refresh the connection's DocuSign token; try again",
            1,
        ),
        RefreshError::Store(e) => e.into(),
        RefreshError::Cipher(e) => e.into(),
        RefreshError::TokensLost(_) => ApiError::upstream_unavailable(
            "the connection's new DocuSign tokens could not be stored; an admin may need to connect DocuSign again",
            30,
        ),
    }
}

/// DocuSign's `errorCode` and `message`, bounded.
fn docusign_error(answer: &EsignAnswer) -> ApiError {
    let code = answer.body.get("errorCode").and_then(Value::as_str).map(crate::docusign::sanitize_code);
    let message = answer.body.get("message").and_then(Value::as_str).map(|m| m.chars().take(500).collect::<String>());
    ApiError::docusign_error(
        code.filter(|c| !c.is_empty()).unwrap_or_else(|| format!("HTTP_{}", answer.status)),
        message.unwrap_or_else(|| format!("DocuSign answered HTTP {}", answer.status)),
    )
}

fn backoff(attempt: u32) -> StdDuration {
    let base = 250u64 << attempt.min(5);
    StdDuration::from_millis(base + rand::thread_rng().gen_range(0..=base / 2))
}

/// How long DocuSign asks us to wait: `Retry-After`, else the rate-limit
/// reset when nothing is left, else our backoff.
fn wait_for(app: &App, answer: &EsignAnswer, attempt: u32) -> StdDuration {
    if let Some(secs) = answer.retry_after {
        return StdDuration::from_secs(secs);
    }
    if answer.rate_limit_remaining == Some(0) {
        if let Some(reset) = answer.rate_limit_reset {
            let secs = (reset - app.clock.now().timestamp()).clamp(0, 3600) as u64;
            return StdDuration::from_secs(secs.max(1));
        }
    }
    backoff(attempt)
}

async fn send_with_retries(
    app: &App,
    connection: &Connection,
    mut token: SecretString,
    body: &[u8],
    deadline: Instant,
) -> Result<Value, ApiError> {
    let mut connection = connection.clone();
    let mut refreshed_after_401 = false;
    let mut attempt = 0u32;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left < MIN_ATTEMPT {
            return Err(ApiError::upstream_unavailable("no time was left to reach DocuSign; try again", 1));
        }
        let result = app
            .esign
            .create_envelope(
                &connection.identity.base_uri,
                &connection.identity.account_id,
                &token,
                body,
                (left - StdDuration::from_millis(500)).min(MAX_ATTEMPT_TIMEOUT),
            )
            .await;
        let transient = match result {
            Ok(answer) if (200..300).contains(&answer.status) => return Ok(answer.body),
            Ok(answer) if answer.status == 401 && !refreshed_after_401 => {
                refreshed_after_401 = true;
                let need =
                    Need::Rejected { connection_id: connection.connection_id.clone(), version: connection.version };
                let refreshed = ensure_fresh(app, &connection.tenant, &need, deadline)
                    .await
                    .map_err(|e| refresh_failure(app, e))?;
                (connection, token) = fresh_token(app, refreshed).await?;
                tracing::info!(tenant = %connection.tenant, "DocuSign refused the access token; refreshed and retrying once");
                continue;
            }
            Ok(answer) if answer.status == 429 || answer.status >= 500 => answer,
            Ok(answer) => return Err(docusign_error(&answer)),
            Err(EsignError::Unreachable(e)) => {
                tracing::warn!(error = %chain(&*e), "DocuSign unreachable");
                EsignAnswer {
                    status: 503,
                    body: Value::Null,
                    retry_after: None,
                    rate_limit_remaining: None,
                    rate_limit_reset: None,
                }
            }
            Err(EsignError::NoAnswer(e)) => {
                // Retrying could create the envelope twice.
                tracing::warn!(error = %chain(&*e), "DocuSign did not answer completely; not retried");
                return Err(ApiError::upstream_unavailable(
                    "DocuSign did not answer in time; the envelope may or may not have been created: check DocuSign before sending again",
                    5,
                ));
            }
            Err(EsignError::BadBaseUri) => {
                tracing::error!(tenant = %connection.tenant, "stored base URI is unusable");
                return Err(ApiError::docusign_error(
                    "INVALID_BASE_URI",
                    "the connection's DocuSign base URI is unusable; connect again",
                ));
            }
        };
        let wait = wait_for(app, &transient, attempt);
        attempt += 1;
        if Instant::now() + wait + MIN_ATTEMPT >= deadline {
            let retry_after = wait.as_secs().max(1);
            tracing::warn!(
                status = transient.status,
                attempts = attempt,
                "DocuSign kept refusing; giving up within the deadline"
            );
            return Err(if transient.status == 429 {
                ApiError::rate_limited(retry_after)
            } else {
                ApiError::upstream_unavailable("DocuSign is unavailable; try again shortly", retry_after)
            });
        }
        tracing::info!(
            status = transient.status,
            wait_ms = wait.as_millis() as u64,
            "DocuSign asked to wait; retrying"
        );
        tokio::time::sleep(wait).await;
    }
}
