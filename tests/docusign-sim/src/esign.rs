//! The eSignature REST API: `POST /restapi/v2.1/accounts/{accountId}/envelopes`.

use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::SecondsFormat;
use serde_json::json;

use crate::faults::with_faults;
use crate::state::{self, Shared};
use crate::types::{Endpoint, ReceivedEnvelope};
use crate::util;
use crate::validate::{self, ApiError};

/// Calls per hour per account.
pub(crate) const HOURLY_LIMIT: u64 = 3000;
/// Calls per 30 s per account (sandbox).
pub(crate) const BURST_LIMIT: u64 = 200;

/// Largest body accepted (DocuSign: about 25 MB per upload).
pub(crate) const MAX_BODY_BYTES: usize = 30 * 1024 * 1024;

pub(crate) async fn create_envelope(
    AxState(shared): AxState<Shared>,
    Path(account_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    {
        let mut st = state::lock(&shared);
        st.stats.envelope_calls += 1;
        st.last_envelope_body = Some(body.to_vec());
    }
    let (shared2, account2) = (shared.clone(), account_id.clone());
    let mut response =
        with_faults(&shared, Endpoint::Envelopes, move || match create(&shared2, &account2, &headers, &body) {
            Ok(response) => response,
            Err(error) => api_error(error),
        })
        .await;
    add_rate_limit_headers(&shared, &account_id, &mut response);
    response
}

fn api_error(error: ApiError) -> Response {
    (error.status, Json(json!({ "errorCode": error.error_code, "message": error.message }))).into_response()
}

fn create(shared: &Shared, account_id: &str, headers: &HeaderMap, body: &[u8]) -> Result<Response, ApiError> {
    let mut st = state::lock(shared);
    let user_sub =
        util::bearer_token(headers).and_then(|token| st.access_token_user(&token)).ok_or_else(|| ApiError {
            status: StatusCode::UNAUTHORIZED,
            error_code: "USER_AUTHENTICATION_FAILED",
            message: "One or both of Username and Password are invalid. Invalid access token".to_string(),
        })?;
    let member = st.user(&user_sub).is_some_and(|u| u.accounts.iter().any(|a| a.account_id == account_id));
    if !member {
        return Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            error_code: "USER_LACKS_MEMBERSHIP",
            message: "The UserID does not have a valid membership in this Account.".to_string(),
        });
    }
    let definition = validate::parse_envelope_definition(body)?;

    let envelope_id = util::random_uuid();
    let status = definition.get("status").and_then(|s| s.as_str()).unwrap_or("created").to_string();
    let idempotency_header = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_string);
    let now = st.now();
    st.envelopes.push(ReceivedEnvelope {
        account_id: account_id.to_string(),
        access_token_user: user_sub,
        body: definition,
        envelope_id: envelope_id.clone(),
        idempotency_header,
    });
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "envelopeId": envelope_id,
            "status": status,
            "statusDateTime": now.to_rfc3339_opts(SecondsFormat::Millis, true),
            "uri": format!("/envelopes/{envelope_id}"),
        })),
    )
        .into_response())
}

/// DocuSign's rate-limit headers (reported, not enforced).
fn add_rate_limit_headers(shared: &Shared, account_id: &str, response: &mut Response) {
    let (mut remaining, reset, burst_remaining) = state::lock(shared).count_api_call(account_id);
    if response.status() == StatusCode::TOO_MANY_REQUESTS {
        remaining = 0;
    }
    let headers = response.headers_mut();
    headers.insert("x-ratelimit-limit", HeaderValue::from(HOURLY_LIMIT));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
    headers.insert("x-ratelimit-reset", HeaderValue::from(reset));
    headers.insert("x-burstlimit-limit", HeaderValue::from(BURST_LIMIT));
    headers.insert("x-burstlimit-remaining", HeaderValue::from(burst_remaining));
}
