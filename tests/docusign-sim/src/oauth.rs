//! The account server: `/oauth/auth`, `/oauth/token`, `/oauth/userinfo`.

use axum::body::Bytes;
use axum::extract::{RawQuery, State as AxState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use url::Url;

use crate::faults::with_faults;
use crate::pages::{self, ConsentRequest};
use crate::state::{self, GrantError, IssuedTokens, Shared, State, ACCESS_TTL_SECS};
use crate::types::{ConsentDecision, Endpoint};
use crate::util::{self, form_get};

const DECLINE_MESSAGE: &str = "The user did not consent to connect the application.";

// ----- GET /oauth/auth ---------------------------------------------------

pub(crate) async fn auth(AxState(shared): AxState<Shared>, RawQuery(query): RawQuery) -> Response {
    let shared2 = shared.clone();
    with_faults(&shared, Endpoint::Auth, move || {
        let Some(params) = util::parse_form(query.unwrap_or_default().as_bytes()) else {
            return pages::error_page(StatusCode::BAD_REQUEST, "The request is malformed.");
        };
        // Test-only per-request overrides.
        let forced = match (form_get(&params, "sim_decision"), form_get(&params, "sim_user")) {
            (Some("decline"), _) => Some(ConsentDecision::Decline),
            (_, Some(sub)) => Some(ConsentDecision::Approve { user_sub: sub.to_string() }),
            (Some("approve"), None) => Some(first_user_approval(&state::lock(&shared2))),
            _ => None,
        };
        authorize(&shared2, &params, forced)
    })
    .await
}

// ----- POST /oauth/auth/decision (the consent page's form) ---------------

pub(crate) async fn auth_decision(AxState(shared): AxState<Shared>, body: Bytes) -> Response {
    let Some(params) = util::parse_form(&body) else {
        return pages::error_page(StatusCode::BAD_REQUEST, "The request is malformed.");
    };
    let decision = match form_get(&params, "decision") {
        Some("accept") => match form_get(&params, "user") {
            Some(sub) => ConsentDecision::Approve { user_sub: sub.to_string() },
            None => first_user_approval(&state::lock(&shared)),
        },
        Some("cancel") => ConsentDecision::Decline,
        _ => return pages::error_page(StatusCode::BAD_REQUEST, "No decision was made."),
    };
    authorize(&shared, &params, Some(decision))
}

fn first_user_approval(st: &State) -> ConsentDecision {
    match st.users.first() {
        Some(u) => ConsentDecision::Approve { user_sub: u.sub.clone() },
        None => ConsentDecision::Decline,
    }
}

/// Validates an authorization request and answers it: an error page, the
/// consent page (interactive, no decision given) or a redirect.
fn authorize(shared: &Shared, params: &[(String, String)], forced: Option<ConsentDecision>) -> Response {
    let mut st = state::lock(shared);
    let get = |name: &str| form_get(params, name);

    // Never redirect to an unverified redirect URI.
    if get("client_id") != Some(st.config.client_id.as_str()) {
        return pages::error_page(StatusCode::BAD_REQUEST, "The client id provided is not registered with DocuSign.");
    }
    let redirect_uri = match get("redirect_uri") {
        Some(uri) if st.config.redirect_uris.iter().any(|r| r == uri) => uri,
        _ => {
            return pages::error_page(
                StatusCode::BAD_REQUEST,
                "The redirect URI is not registered properly with DocuSign.",
            )
        }
    };
    let Ok(target) = Url::parse(redirect_uri) else {
        return pages::error_page(StatusCode::BAD_REQUEST, "The redirect URI is not a valid URL.");
    };
    let state_param = get("state");
    let redirect_error = |error: &str, message: &str| {
        redirect_to(target.clone(), &[("error", error), ("error_message", message)], state_param)
    };

    if get("response_type") != Some("code") {
        return redirect_error("unsupported_response_type", "The response_type must be code.");
    }
    let scope = get("scope").map(str::trim).unwrap_or_default();
    if scope.is_empty() {
        return redirect_error("invalid_request", "The scope parameter is required.");
    }
    let code_challenge = get("code_challenge");
    let method = get("code_challenge_method");
    match (code_challenge, method) {
        (Some(challenge), Some("S256")) if util::valid_pkce_challenge(challenge) => {}
        (Some(_), Some("S256")) => return redirect_error("invalid_request", "The code_challenge is malformed."),
        (Some(_), _) => return redirect_error("invalid_request", "The code_challenge_method must be S256."),
        (None, Some(_)) => return redirect_error("invalid_request", "The code_challenge is missing."),
        (None, None) => {}
    }

    let decision = match forced {
        Some(decision) => decision,
        None if st.config.interactive => {
            let request = ConsentRequest {
                client_id: &st.config.client_id,
                redirect_uri,
                scope,
                state: state_param,
                code_challenge,
                code_challenge_method: method,
            };
            let preselect = match &st.consent_decision {
                ConsentDecision::Approve { user_sub } => Some(user_sub.as_str()),
                ConsentDecision::Decline => None,
            };
            return pages::consent_page(&request, &st.users, preselect);
        }
        None => st.consent_decision.clone(),
    };

    match decision {
        ConsentDecision::Decline => redirect_error("access_denied", DECLINE_MESSAGE),
        ConsentDecision::Approve { user_sub } => {
            if st.user(&user_sub).is_none() {
                return pages::error_page(StatusCode::BAD_REQUEST, "The simulated user does not exist.");
            }
            let code = st.issue_code(redirect_uri, code_challenge.map(str::to_string), &user_sub, scope);
            redirect_to(target.clone(), &[("code", &code)], state_param)
        }
    }
}

/// `302` to `target` with `pairs` (and `state`, echoed exactly) appended to its query.
fn redirect_to(mut target: Url, pairs: &[(&str, &str)], state: Option<&str>) -> Response {
    let mut extra: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={}", util::percent_encode(v))).collect();
    if let Some(state) = state {
        extra.push(format!("state={}", util::percent_encode(state)));
    }
    let query = match target.query() {
        Some(existing) if !existing.is_empty() => format!("{existing}&{}", extra.join("&")),
        _ => extra.join("&"),
    };
    target.set_query(Some(&query));
    (StatusCode::FOUND, [(header::LOCATION, target.as_str()), (header::CACHE_CONTROL, "no-store")]).into_response()
}

// ----- POST /oauth/token -------------------------------------------------

pub(crate) async fn token(AxState(shared): AxState<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let form = util::parse_form(&body);
    {
        let mut st = state::lock(&shared);
        st.stats.token_calls += 1;
        if form.as_deref().and_then(|f| form_get(f, "grant_type")) == Some("refresh_token") {
            st.stats.refresh_grants += 1;
        }
    }
    let shared2 = shared.clone();
    with_faults(&shared, Endpoint::Token, move || token_response(&shared2, &headers, form)).await
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (status, [(header::CACHE_CONTROL, "no-store")], Json(json!({ "error": error, "error_description": description })))
        .into_response()
}

fn token_response(shared: &Shared, headers: &HeaderMap, form: Option<Vec<(String, String)>>) -> Response {
    let mut st = state::lock(shared);
    let client_id = st.config.client_id.clone();
    let authenticated = util::basic_credentials(headers)
        .iter()
        .any(|(id, secret)| *id == client_id && *secret == st.config.client_secret);
    // RFC 6749 §5.2: the client is authenticated before the grant is
    // looked at, so a refused attempt consumes neither code nor refresh token.
    if !authenticated {
        st.stats.invalid_client += 1;
        let mut response = oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed: the Authorization header must be Basic base64(integration_key:secret_key).",
        );
        response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Basic"));
        return response;
    }
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    let Some(form) = form.filter(|_| is_form) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The body must be application/x-www-form-urlencoded.",
        );
    };
    let get = |name: &str| form_get(&form, name);
    let result = match get("grant_type") {
        Some("authorization_code") => {
            st.exchange_code(&client_id, get("code"), get("redirect_uri"), get("code_verifier"))
        }
        Some("refresh_token") => st.refresh(&client_id, get("refresh_token")),
        Some(_) => {
            return (
                StatusCode::BAD_REQUEST,
                [(header::CACHE_CONTROL, "no-store")],
                Json(json!({ "error": "unsupported_grant_type" })),
            )
                .into_response()
        }
        None => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "The grant_type is missing."),
    };
    match result {
        Ok(tokens) => token_success(&st, tokens),
        Err(GrantError::InvalidGrant(description)) => {
            st.stats.invalid_grant += 1;
            oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
        }
    }
}

fn token_success(st: &State, tokens: IssuedTokens) -> Response {
    let expires_in = if let Some(raw) = &st.expires_in_raw {
        raw.clone()
    } else if st.expires_in_as_string {
        Value::from(ACCESS_TTL_SECS.to_string())
    } else {
        Value::from(ACCESS_TTL_SECS)
    };
    let body = json!({
        "access_token": tokens.access_token,
        "token_type": "Bearer",
        "refresh_token": tokens.refresh_token,
        "expires_in": expires_in,
        "scope": tokens.scopes,
    });
    (StatusCode::OK, [(header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")], Json(body)).into_response()
}

// ----- GET /oauth/userinfo -----------------------------------------------

pub(crate) async fn userinfo(AxState(shared): AxState<Shared>, headers: HeaderMap) -> Response {
    state::lock(&shared).stats.userinfo_calls += 1;
    let shared2 = shared.clone();
    with_faults(&shared, Endpoint::UserInfo, move || userinfo_response(&shared2, &headers)).await
}

fn userinfo_response(shared: &Shared, headers: &HeaderMap) -> Response {
    let st = state::lock(shared);
    let user = util::bearer_token(headers)
        .and_then(|token| st.access_token_user(&token))
        .and_then(|sub| st.user(&sub).cloned());
    let Some(user) = user else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request",
            "The access token provided is expired, revoked or malformed.",
        );
    };
    let (given_name, family_name) = user.name.split_once(' ').unwrap_or((user.name.as_str(), ""));
    let accounts: Vec<Value> = user
        .accounts
        .iter()
        .map(|a| {
            let is_default =
                if st.is_default_as_string { Value::from(a.is_default.to_string()) } else { Value::from(a.is_default) };
            json!({
                "account_id": a.account_id,
                "is_default": is_default,
                "account_name": a.account_name,
                "base_uri": a.base_uri.clone().unwrap_or_else(|| st.base_url.clone()),
            })
        })
        .collect();
    Json(json!({
        "sub": user.sub,
        "name": user.name,
        "given_name": given_name,
        "family_name": family_name,
        "email": user.email,
        "created": "2024-01-15T09:30:00.000Z",
        "accounts": accounts,
    }))
    .into_response()
}
