//! The control API under `/_sim/` (JSON), for the standalone binary and
//! out-of-process tests. Mirrors the methods of [`crate::Simulator`].

use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::SecondsFormat;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::state::{self, Shared, State};
use crate::types::{ConsentDecision, Endpoint, Fault, SimUser};

pub(crate) fn router() -> Router<Shared> {
    Router::new()
        .route("/_sim/stats", get(stats))
        .route("/_sim/envelopes", get(envelopes))
        .route("/_sim/secrets", get(secrets))
        .route("/_sim/users", post(add_user))
        .route("/_sim/consent", post(consent))
        .route("/_sim/revoke", post(revoke))
        .route("/_sim/expire-access", post(expire_access))
        .route("/_sim/clock", get(get_clock).post(advance_clock))
        .route("/_sim/faults", post(push_fault).delete(clear_faults))
        .route("/_sim/options", post(options))
}

/// Parses the JSON body and hands it to `f`, or answers 400.
fn with_json<T: DeserializeOwned>(body: &[u8], f: impl FnOnce(T) -> Response) -> Response {
    match serde_json::from_slice(body) {
        Ok(value) => f(value),
        Err(e) => {
            (StatusCode::BAD_REQUEST, Json(json!({ "error": format!("invalid request body: {e}") }))).into_response()
        }
    }
}

fn ok() -> Response {
    Json(json!({ "ok": true })).into_response()
}

async fn stats(AxState(shared): AxState<Shared>) -> Response {
    Json(state::lock(&shared).stats.clone()).into_response()
}

async fn envelopes(AxState(shared): AxState<Shared>) -> Response {
    Json(state::lock(&shared).envelopes.clone()).into_response()
}

async fn secrets(AxState(shared): AxState<Shared>) -> Response {
    Json(state::lock(&shared).issued_secrets.clone()).into_response()
}

async fn add_user(AxState(shared): AxState<Shared>, body: Bytes) -> Response {
    with_json(&body, |user: SimUser| {
        state::lock(&shared).add_user(user);
        ok()
    })
}

async fn consent(AxState(shared): AxState<Shared>, body: Bytes) -> Response {
    with_json(&body, |decision: ConsentDecision| {
        state::lock(&shared).consent_decision = decision;
        ok()
    })
}

#[derive(Deserialize)]
struct UserSub {
    user_sub: String,
}

async fn revoke(AxState(shared): AxState<Shared>, body: Bytes) -> Response {
    with_json(&body, |req: UserSub| {
        state::lock(&shared).revoke_consent(&req.user_sub);
        ok()
    })
}

async fn expire_access(AxState(shared): AxState<Shared>, body: Bytes) -> Response {
    with_json(&body, |req: UserSub| {
        state::lock(&shared).expire_access_tokens(&req.user_sub);
        ok()
    })
}

fn clock_json(st: &State) -> Value {
    json!({
        "offset_secs": st.clock_offset_secs,
        "now": st.now().to_rfc3339_opts(SecondsFormat::Millis, true),
    })
}

async fn get_clock(AxState(shared): AxState<Shared>) -> Response {
    Json(clock_json(&state::lock(&shared))).into_response()
}

#[derive(Deserialize)]
struct AdvanceClock {
    advance_secs: i64,
}

async fn advance_clock(AxState(shared): AxState<Shared>, body: Bytes) -> Response {
    with_json(&body, |req: AdvanceClock| {
        let mut st = state::lock(&shared);
        st.clock_offset_secs = st.clock_offset_secs.saturating_add(req.advance_secs);
        Json(clock_json(&st)).into_response()
    })
}

fn one() -> u32 {
    1
}

#[derive(Deserialize)]
struct PushFault {
    endpoint: Endpoint,
    fault: Fault,
    #[serde(default = "one")]
    times: u32,
}

async fn push_fault(AxState(shared): AxState<Shared>, body: Bytes) -> Response {
    with_json(&body, |req: PushFault| {
        state::lock(&shared).push_fault(req.endpoint, req.fault, req.times);
        ok()
    })
}

async fn clear_faults(AxState(shared): AxState<Shared>) -> Response {
    state::lock(&shared).faults.clear();
    ok()
}

#[derive(Deserialize)]
struct Options {
    expires_in_as_string: Option<bool>,
    is_default_as_string: Option<bool>,
    /// Present (even `null`): token answers carry `"expires_in"` as this exact
    /// JSON value. Absent: unchanged.
    #[serde(default, deserialize_with = "present")]
    expires_in_raw: Option<Value>,
    /// `true`: back to the normal `expires_in`.
    #[serde(default)]
    expires_in_normal: bool,
    /// The integration key's new secret (the old one stops working).
    client_secret: Option<String>,
}

/// `Some` whenever the field is present, `null` included.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

async fn options(AxState(shared): AxState<Shared>, body: Bytes) -> Response {
    with_json(&body, |req: Options| {
        let mut st = state::lock(&shared);
        if let Some(yes) = req.expires_in_as_string {
            st.expires_in_as_string = yes;
        }
        if let Some(yes) = req.is_default_as_string {
            st.is_default_as_string = yes;
        }
        if req.expires_in_normal {
            st.expires_in_raw = None;
        }
        if let Some(raw) = req.expires_in_raw {
            st.expires_in_raw = Some(raw);
        }
        if let Some(secret) = req.client_secret.as_deref() {
            st.set_client_secret(secret);
        }
        let mut answer = json!({
            "expires_in_as_string": st.expires_in_as_string,
            "is_default_as_string": st.is_default_as_string,
        });
        if let Some(raw) = &st.expires_in_raw {
            answer["expires_in_raw"] = raw.clone();
        }
        Json(answer).into_response()
    })
}
