//! The thin layer between API Gateway (HTTP API, payload 2.0) events and the
//! use cases: authenticate, call, and turn the outcome into a response.
//! Every expected failure is an `Ok` response with the contract's JSON error.

use lambda_http::http::{header, HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::{json, Value};

use crate::app::App;
use crate::auth::Caller;
use crate::connect::{self, CallbackOutcome, CallbackQuery};
use crate::error::ApiError;
use crate::pages;

pub type HttpResult = Result<Response<Body>, lambda_http::Error>;

fn with_common_headers(mut response: Response<Body>) -> Response<Body> {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    response
}

pub fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut response = Response::new(Body::Text(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    with_common_headers(response)
}

pub fn error_response(error: &ApiError) -> Response<Body> {
    // The one place a failure's cause is logged: where it is answered.
    if let Some(cause) = &error.cause {
        tracing::error!(code = error.code, status = error.status.as_u16(), error = %cause, "request failed");
    }
    let mut response = json_response(error.status, &error.body());
    if let Some(secs) = error.retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if error.status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

fn respond(result: Result<Response<Body>, ApiError>) -> HttpResult {
    Ok(result.unwrap_or_else(|e| error_response(&e)))
}

async fn authenticate(app: &App, request: &Request) -> Result<Caller, ApiError> {
    let verifier =
        app.jwt.as_ref().ok_or_else(|| ApiError::unauthorized("this function is not configured for CRM callers"))?;
    verifier.caller(request.headers()).await
}

fn require_method(request: &Request, allowed: &[Method]) -> Result<(), ApiError> {
    if allowed.contains(request.method()) {
        Ok(())
    } else {
        let names: Vec<&str> = allowed.iter().map(Method::as_str).collect();
        Err(ApiError::method_not_allowed(&names.join(", ")))
    }
}

/// `POST /docusign/consent` and `POST /docusign/consent/confirm` (the
/// `consent-start` function serves both).
pub async fn consent_start(app: &App, request: Request) -> HttpResult {
    if request.uri().path().ends_with("/consent/confirm") {
        return consent_confirm(app, request).await;
    }
    respond(
        async {
            require_method(&request, &[Method::POST])?;
            let caller = authenticate(app, &request).await?;
            let started = connect::start_consent(app, &caller).await?;
            Ok(json_response(
                StatusCode::OK,
                &json!({
                    "authorization_url": started.authorization_url,
                    "expires_at": crate::clock::rfc3339(started.expires_at),
                }),
            ))
        }
        .await,
    )
}

/// `POST /docusign/consent/confirm` (admin): body `{"confirmation": "…"}`.
pub async fn consent_confirm(app: &App, request: Request) -> HttpResult {
    respond(
        async {
            require_method(&request, &[Method::POST])?;
            let caller = authenticate(app, &request).await?;
            caller.require_admin()?;
            let body: Value = serde_json::from_slice(request.body().as_ref()).map_err(|_| {
                ApiError::invalid_request(
                    "body: expected JSON, {\"confirmation\": \"<from the consent result message>\"}",
                )
            })?;
            let confirmation = match body.get("confirmation") {
                Some(Value::String(c)) => c.as_str(),
                Some(_) => return Err(ApiError::invalid_request("confirmation: expected a string")),
                None => return Err(ApiError::invalid_request("confirmation: required")),
            };
            let connection = connect::confirm_consent(app, &caller, confirmation).await?;
            Ok(json_response(StatusCode::OK, &connect::status_json(&connection)))
        }
        .await,
    )
}

/// `GET /docusign/connection` (any role) and `DELETE /docusign/connection` (admin).
pub async fn connection(app: &App, request: Request) -> HttpResult {
    respond(
        async {
            require_method(&request, &[Method::GET, Method::DELETE])?;
            let caller = authenticate(app, &request).await?;
            if request.method() == Method::DELETE {
                connect::disconnect(app, &caller).await?;
                let mut response = Response::new(Body::Empty);
                *response.status_mut() = StatusCode::NO_CONTENT;
                Ok(with_common_headers(response))
            } else {
                Ok(json_response(StatusCode::OK, &connect::status(app, &caller).await?))
            }
        }
        .await,
    )
}

/// Without a Lambda context (tests feeding events directly), a send gets this long.
const DEFAULT_BUDGET: std::time::Duration = std::time::Duration::from_secs(25);
/// Kept back from the Lambda deadline to answer in time.
const ANSWER_MARGIN: std::time::Duration = std::time::Duration::from_millis(1500);

/// When this invocation must have answered, from the Lambda context.
pub fn deadline(request: &Request) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    let remaining = request.lambda_context_ref().and_then(crate::remaining_time).unwrap_or(DEFAULT_BUDGET);
    now + remaining.saturating_sub(ANSWER_MARGIN)
}

/// `POST /docusign/envelopes` (any role).
pub async fn send_envelope(app: &App, request: Request) -> HttpResult {
    respond(
        async {
            require_method(&request, &[Method::POST])?;
            let caller = authenticate(app, &request).await?;
            let key = match request.headers().get("idempotency-key") {
                None => None,
                Some(v) => Some(v.to_str().map_err(|_| {
                    ApiError::invalid_request("Idempotency-Key: must be 1 to 255 visible ASCII characters")
                })?),
            };
            let deadline = deadline(&request);
            let body: &[u8] = request.body().as_ref();
            let sent = crate::envelope::send::send_envelope(app, &caller, body, key, deadline).await?;
            Ok(json_response(sent.status, &sent.body))
        }
        .await,
    )
}

/// `GET /docusign/callback`: public; answers HTML.
pub async fn callback(app: &App, request: Request) -> HttpResult {
    let nonce = crate::crypto::random_hex(16);
    let origin = app.config.crm_origin.as_deref();
    if request.method() != Method::GET {
        let failure = connect::CallbackFailure::MissingParameters;
        return Ok(html_response(StatusCode::METHOD_NOT_ALLOWED, &nonce, pages::failed(&nonce, &failure, origin)));
    }
    let query = CallbackQuery::from_params(&request.query_string_parameters());
    Ok(match connect::complete_consent(app, query).await {
        CallbackOutcome::Proposed { confirmation, identity } => {
            use secrecy::ExposeSecret;
            let environment = app.config.environment.as_str();
            let page = pages::approved(&nonce, &identity, confirmation.expose_secret(), environment, origin);
            html_response(StatusCode::OK, &nonce, page)
        }
        CallbackOutcome::Failed(failure) => {
            html_response(StatusCode::BAD_REQUEST, &nonce, pages::failed(&nonce, &failure, origin))
        }
    })
}

fn html_response(status: StatusCode, nonce: &str, html: String) -> Response<Body> {
    let mut response = Response::new(Body::Text(html));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if let Ok(csp) = HeaderValue::from_str(&pages::content_security_policy(nonce)) {
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    with_common_headers(response)
}
