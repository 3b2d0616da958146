//! The Lambda side of the HTTP functions: API Gateway HTTP API (payload 2.0)
//! events in, responses out, as `lambda_http::run` does it, but never
//! panicking on what the event holds.
//!
//! lambda_http 1.3 builds the request's URI from `rawPath` and
//! `rawQueryString` as they come and `expect`s it to parse, so a query with a
//! space (which API Gateway passes through undecoded) panics before any
//! handler runs; so do an unusable `Host` header and a body marked base64
//! that is not. Here the event is first repaired (bytes a URI may not hold are percent-encoded, which decodes to
//! the same query parameters), then converted by lambda_http itself, so the
//! handlers see the same request, extensions and Lambda context as under
//! `lambda_http::run`.

use std::future::Future;

use lambda_http::aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use lambda_http::http::header::{COOKIE, HOST, SET_COOKIE};
use lambda_http::http::{HeaderMap, HeaderValue};
use lambda_http::request::{LambdaRequest, RequestContext};
use lambda_http::{Body, Context, IntoResponse, LambdaEvent, Request, RequestExt, Response};

use crate::error::ApiError;
use crate::http::{error_response, HttpResult};

/// Longer than any URI API Gateway forwards, well under what `http::Uri` holds.
pub const MAX_URI_BYTES: usize = 16 * 1024;

/// An event no handler should see; answered 400 without running one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BadEvent {
    #[error("the body is marked base64 but is not base64")]
    Base64Body,
    #[error("the path and query are longer than {MAX_URI_BYTES} bytes")]
    UriTooLong,
}

impl From<BadEvent> for ApiError {
    fn from(e: BadEvent) -> Self {
        ApiError::invalid_request(e.to_string())
    }
}

/// Runs `handler` for every invocation, like `lambda_http::run` for API
/// Gateway HTTP API events. An event that is not one is an invocation error,
/// as there.
pub async fn run<H, F>(handler: H) -> Result<(), lambda_http::Error>
where
    H: Fn(Request) -> F,
    F: Future<Output = HttpResult>,
{
    lambda_runtime::run(lambda_runtime::service_fn(|event: LambdaEvent<ApiGatewayV2httpRequest>| {
        let result = request_from_event(event.payload, event.context);
        let handler = &handler;
        async move {
            let response = match result {
                Ok(request) => handler(request).await?,
                Err(bad) => {
                    tracing::warn!(error = %bad, "API Gateway event refused");
                    error_response(&bad.into())
                }
            };
            Ok::<_, lambda_http::Error>(response_to_event(response).await)
        }
    }))
    .await
}

/// The request a handler sees, from an API Gateway HTTP API event and the
/// invocation's context. Never panics.
pub fn request_from_event(mut event: ApiGatewayV2httpRequest, context: Context) -> Result<Request, BadEvent> {
    let body = take_body(&mut event)?;
    let path = event.raw_path.take().unwrap_or_default();
    event.raw_path = Some(encode_path(&path));
    if let Some(query) = event.raw_query_string.take() {
        event.raw_query_string = Some(encode(&query, |b| is_path_byte(b) || b == b'?'));
    }
    if let Some(stage) = event.request_context.stage.take() {
        event.request_context.stage = Some(encode(&stage, |b| is_path_byte(b) && b != b'/'));
    }
    let length = [&event.raw_path, &event.raw_query_string, &event.request_context.stage]
        .iter()
        .map(|part| part.as_deref().map_or(0, str::len))
        .sum::<usize>();
    if length > MAX_URI_BYTES {
        return Err(BadEvent::UriTooLong);
    }
    // lambda_http parses `<x-forwarded-proto>://<host><path>` and unwraps it:
    // when that would fail, it converts without them (a relative URI) and
    // they are put back afterwards.
    let set_aside = (!has_usable_authority(&event))
        .then(|| (std::mem::take(&mut event.headers), event.request_context.domain_name.take()));

    let mut request = Request::from(LambdaRequest::ApiGatewayV2(event));
    *request.body_mut() = body;
    if let Some((headers, domain_name)) = set_aside {
        let converted = std::mem::replace(request.headers_mut(), headers);
        if let Some(cookie) = converted.get(COOKIE) {
            request.headers_mut().insert(COOKIE, cookie.clone());
        }
        if let Some(RequestContext::ApiGatewayV2(c)) = request.extensions_mut().get_mut::<RequestContext>() {
            c.domain_name = domain_name;
        }
    }
    // As lambda_http's adapter does.
    if let Some(trace_id) = context.xray_trace_id.as_deref() {
        if let Ok(value) = HeaderValue::from_str(trace_id) {
            request.headers_mut().insert("x-amzn-trace-id", value);
        }
    }
    Ok(request.with_lambda_context(context))
}

/// The handler's response as API Gateway HTTP API reads it: what lambda_http
/// answers (body as text unless its content type says otherwise,
/// `Set-Cookie` headers in `cookies`).
pub async fn response_to_event(response: Response<Body>) -> ApiGatewayV2httpResponse {
    let (parts, body) = response.into_response().await.into_parts();
    let (is_base64_encoded, body) = match body {
        Body::Empty => (false, None),
        b @ Body::Text(_) => (false, Some(b)),
        b @ Body::Binary(_) => (true, Some(b)),
        _ => (false, None),
    };
    let mut headers = parts.headers;
    let cookies = headers.get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap_or_default().to_owned()).collect();
    headers.remove(SET_COOKIE);
    let mut event = ApiGatewayV2httpResponse::default();
    event.status_code = i64::from(parts.status.as_u16());
    event.headers = headers;
    event.multi_value_headers = HeaderMap::new();
    event.body = body;
    event.is_base64_encoded = is_base64_encoded;
    event.cookies = cookies;
    event
}

/// The body, decoded here so that a body wrongly marked base64 is a 400, not
/// lambda_http's panic.
fn take_body(event: &mut ApiGatewayV2httpRequest) -> Result<Body, BadEvent> {
    use base64::Engine as _;
    let base64 = std::mem::take(&mut event.is_base64_encoded);
    Ok(match event.body.take() {
        None => Body::Empty,
        Some(b) if base64 => {
            Body::Binary(base64::engine::general_purpose::STANDARD.decode(b).map_err(|_| BadEvent::Base64Body)?)
        }
        Some(b) => Body::from(b),
    })
}

/// Whether lambda_http can build an absolute URI from the event: a plain
/// `host[:port]` (from `Host`, else the request context's domain name) and
/// an `http` or `https` forwarded protocol.
fn has_usable_authority(event: &ApiGatewayV2httpRequest) -> bool {
    let host = event.headers.get(HOST).and_then(|h| h.to_str().ok()).or(event.request_context.domain_name.as_deref());
    let Some(host) = host else { return true };
    let scheme = match event.headers.get("x-forwarded-proto").map(HeaderValue::to_str) {
        None => "https",
        Some(Ok(s @ ("http" | "https"))) => s,
        Some(_) => return false,
    };
    !host.is_empty()
        && host.len() <= 255
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
        && url::Url::parse(&format!("{scheme}://{host}/")).is_ok()
}

/// Bytes kept as they are in a path: RFC 3986 `pchar` and `/`, and `%`
/// (an existing escape stays one).
fn is_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/%".contains(&b)
}

/// The raw path, percent-encoded where needed and starting with `/`.
fn encode_path(path: &str) -> String {
    let encoded = encode(path, is_path_byte);
    if encoded.starts_with('/') {
        encoded
    } else {
        format!("/{encoded}")
    }
}

fn encode(raw: &str, keep: impl Fn(u8) -> bool) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if keep(b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::http::Method;
    use serde_json::{json, Value};

    fn event(query: &str) -> Value {
        json!({
            "version": "2.0", "routeKey": "$default", "rawPath": "/docusign/callback", "rawQueryString": query,
            "headers": {"host": "abc.execute-api.eu-west-1.amazonaws.com", "cookie": "a=b"},
            "requestContext": {"http": {"method": "GET", "path": "/docusign/callback", "protocol": "HTTP/1.1",
                                        "sourceIp": "1.2.3.4", "userAgent": "x"},
                               "accountId": "1", "apiId": "a", "domainName": "abc.execute-api.eu-west-1.amazonaws.com",
                               "domainPrefix": "abc", "requestId": "r", "routeKey": "$default", "stage": "$default",
                               "time": "t", "timeEpoch": 0},
            "isBase64Encoded": false
        })
    }

    fn convert(event: Value) -> Result<Request, BadEvent> {
        let mut context = Context::default();
        context.request_id = "req-1".into();
        context.deadline = 1234;
        request_from_event(serde_json::from_value(event).unwrap(), context)
    }

    #[test]
    fn a_query_lambda_http_cannot_take_gives_the_same_parameters() {
        let r = convert(event("code=a b&state=t.ü+x&error=%41%zz&e=%")).unwrap();
        let q = r.query_string_parameters();
        assert_eq!(q.first("code"), Some("a b"));
        assert_eq!(q.first("state"), Some("t.ü x"));
        assert_eq!(q.first("error"), Some("A%zz"));
        assert_eq!(q.first("e"), Some("%"));
        assert_eq!(r.uri().host(), Some("abc.execute-api.eu-west-1.amazonaws.com"));
        assert_eq!(r.method(), Method::GET);
        assert_eq!(r.lambda_context_ref().map(|c| c.request_id.as_str()), Some("req-1"));
        assert!(matches!(r.request_context_ref(), Some(RequestContext::ApiGatewayV2(_))));
    }

    #[test]
    fn an_ordinary_event_converts_as_lambda_http_does() {
        let e = event("code=abc&state=t.x");
        let ours = convert(e.clone()).unwrap();
        let theirs = lambda_http::request::from_str(&e.to_string()).unwrap();
        assert_eq!(ours.uri(), theirs.uri());
        assert_eq!(ours.headers(), theirs.headers());
        assert_eq!(ours.query_string_parameters(), theirs.query_string_parameters());
        assert_eq!(ours.raw_http_path(), theirs.raw_http_path());
    }

    #[test]
    fn an_unusable_host_or_path_is_set_aside_not_a_panic() {
        for (host, path) in [
            ("a b", "/x"),
            ("xn--a", "/x"),
            ("h:99999", "/x"),
            ("h", ":1"),
            ("h", ":99999"),
            ("h", "@"),
            ("é", "/é ?#"),
        ] {
            let mut e = event("");
            e["headers"]["host"] = json!(host);
            e["requestContext"]["domainName"] = json!(host);
            e["rawPath"] = json!(path);
            let r = convert(e).unwrap_or_else(|b| panic!("{host} {path}: {b}"));
            assert_eq!(r.headers()["host"], host);
            assert_eq!(r.headers()["cookie"], "a=b");
            let Some(RequestContext::ApiGatewayV2(c)) = r.request_context_ref() else { panic!() };
            assert_eq!(c.domain_name.as_deref(), Some(host));
        }
        let mut e = event("");
        e["headers"]["x-forwarded-proto"] = json!("no such scheme");
        assert!(convert(e).is_ok());
    }

    #[test]
    fn a_body_wrongly_marked_base64_and_an_endless_uri_are_400() {
        let mut e = event("");
        e["body"] = json!("not base64!");
        e["isBase64Encoded"] = json!(true);
        assert_eq!(convert(e).unwrap_err(), BadEvent::Base64Body);
        let mut e = event("");
        e["body"] = json!("aGk=");
        e["isBase64Encoded"] = json!(true);
        assert_eq!(convert(e).unwrap().body().as_ref(), b"hi");
        assert_eq!(convert(event(&"x".repeat(MAX_URI_BYTES + 1))).unwrap_err(), BadEvent::UriTooLong);
        assert!(convert(event(&" ".repeat(MAX_URI_BYTES / 4))).is_ok());
    }

    #[tokio::test]
    async fn the_response_is_what_lambda_http_answers() {
        let mut response = crate::http::json_response(lambda_http::http::StatusCode::CREATED, &json!({"a": 1}));
        response.headers_mut().append(SET_COOKIE, HeaderValue::from_static("s=1"));
        let out = serde_json::to_value(response_to_event(response).await).unwrap();
        assert_eq!(out["statusCode"], 201);
        assert_eq!(out["body"], r#"{"a":1}"#);
        assert_eq!(out["isBase64Encoded"], false);
        assert_eq!(out["cookies"], json!(["s=1"]));
        assert_eq!(out["headers"]["content-type"], "application/json");
        assert!(out["headers"].get("set-cookie").is_none());
    }
}
