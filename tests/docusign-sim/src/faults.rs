//! Injected failures, applied ahead of an endpoint's normal handling.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::pages;
use crate::state::{self, Shared};
use crate::types::{Endpoint, Fault};
use crate::util;

/// Runs `handler` unless a fault is queued for `endpoint`.
///
/// `handler` is synchronous and owns its inputs, so a delayed request is
/// processed in its own task: it completes after the delay even when the
/// client has given up, as it would on a real server.
pub(crate) async fn with_faults<F>(shared: &Shared, endpoint: Endpoint, handler: F) -> Response
where
    F: FnOnce() -> Response + Send + 'static,
{
    let fault = state::lock(shared).take_fault(endpoint);
    match fault {
        None => handler(),
        Some(Fault::Delay { ms }) => {
            let task = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                handler()
            });
            task.await.unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
        Some(fault) => fault_response(endpoint, fault),
    }
}

/// The answer for a fault other than `Delay`.
pub(crate) fn fault_response(endpoint: Endpoint, fault: Fault) -> Response {
    match fault {
        Fault::Status { status, body, retry_after } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = match body {
                Some(body) => custom_body(endpoint, status, body),
                None => default_body(endpoint, status),
            };
            if let Some(secs) = retry_after {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            response
        }
        Fault::Garbage => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "<html><head><title>502 Bad Gateway</title></head><body>upstream sent garbage {\"access_tok",
        )
            .into_response(),
        Fault::CloseConnection => {
            let mut response = Response::new(Body::new(AbortBody));
            response.extensions_mut().insert(ConnectionDropped);
            response
        }
        // Handled by `with_faults`; answering normally is not possible here.
        Fault::Delay { .. } => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn custom_body(endpoint: Endpoint, status: StatusCode, body: String) -> Response {
    let content_type = if serde_json::from_str::<serde_json::Value>(&body).is_ok() {
        "application/json; charset=utf-8"
    } else if endpoint == Endpoint::Auth {
        "text/html; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn default_body(endpoint: Endpoint, status: StatusCode) -> Response {
    let code = status.as_u16();
    let body = match endpoint {
        Endpoint::Auth => {
            return pages::error_page(status, "The service is temporarily unavailable. Please try again later.")
        }
        Endpoint::Token | Endpoint::UserInfo => match code {
            400 if endpoint == Endpoint::Token => json!({
                "error": "invalid_grant",
                "error_description": "The grant is invalid (simulated).",
            }),
            401 if endpoint == Endpoint::Token => json!({
                "error": "invalid_client",
                "error_description": "Client authentication failed (simulated).",
            }),
            401 => json!({
                "error": "invalid_request",
                "error_description": "The access token provided is expired, revoked or malformed (simulated).",
            }),
            _ => json!({
                "error": "internal_server_error",
                "error_description": "An internal error has occurred (simulated).",
                "reference_id": util::random_uuid(),
            }),
        },
        Endpoint::Envelopes => match code {
            429 => json!({
                "errorCode": "HOURLY_APIINVOCATION_LIMIT_EXCEEDED",
                "message": "The maximum number of hourly API invocations has been exceeded. The hourly limit is 3000.",
            }),
            401 => json!({
                "errorCode": "USER_AUTHENTICATION_FAILED",
                "message": "One or both of Username and Password are invalid. Invalid access token",
            }),
            400 => json!({
                "errorCode": "INVALID_REQUEST_BODY",
                "message": "The request body is missing or improperly formatted (simulated).",
            }),
            _ => json!({
                "errorCode": "UNSPECIFIED_ERROR",
                "message": "An unexpected error occurred (simulated).",
            }),
        },
    };
    (status, axum::Json(body)).into_response()
}

/// Marks a response whose connection is dropped (for the request log).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnectionDropped;

/// A response body that fails at once: hyper then aborts the connection
/// without completing the answer.
struct AbortBody;

impl http_body::Body for AbortBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, io::Error>>> {
        Poll::Ready(Some(Err(io::Error::new(io::ErrorKind::ConnectionAborted, "simulated connection drop"))))
    }
}
