//! The API Gateway event's fields one by one (path, query, host, forwarded
//! protocol, stage, headers, cookies, body), so that every way of building
//! the request's URI and body is reached, not only JSON the fuzzer happens
//! to make valid.
//!
//! Input: UTF-8 fields separated by the byte 0xFF (never in UTF-8), in this
//! order: method, rawPath, rawQueryString, Host, domainName,
//! X-Forwarded-Proto, stage, body, `b` if the body is base64, X-Ray trace
//! id, then headers as `name:value` fields. An empty field is absent.
#![no_main]

use base64::Engine as _;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_http::aws_lambda_events::query_map::QueryMap;
use lambda_http::{Context, RequestExt};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};
use shared::gateway::{request_from_event, BadEvent, MAX_URI_BYTES};

fuzz_target!(|data: &[u8]| {
    let Ok(fields) = data.split(|&b| b == 0xFF).map(std::str::from_utf8).collect::<Result<Vec<_>, _>>() else {
        return;
    };
    let field = |i: usize| fields.get(i).copied().filter(|f| !f.is_empty());
    let method = field(0).unwrap_or("GET");
    let (raw_path, raw_query, body) = (field(1), field(2), field(7));
    let base64 = field(8) == Some("b");
    let mut headers: Map<String, Value> =
        fields.iter().skip(10).filter_map(|h| h.split_once(':')).map(|(k, v)| (k.to_owned(), json!(v))).collect();
    if let Some(host) = field(3) {
        headers.insert("host".into(), json!(host));
    }
    if let Some(proto) = field(5) {
        headers.insert("x-forwarded-proto".into(), json!(proto));
    }
    let event = json!({
        "version": "2.0", "routeKey": "$default", "rawPath": raw_path, "rawQueryString": raw_query,
        "headers": headers, "cookies": ["a=b", "c=d"],
        "requestContext": {"http": {"method": method, "path": "/", "protocol": "HTTP/1.1", "sourceIp": "1.2.3.4", "userAgent": "x"},
                           "accountId": "1", "apiId": "a", "domainName": field(4), "domainPrefix": "d", "requestId": "r",
                           "routeKey": "$default", "stage": field(6), "time": "t", "timeEpoch": 0},
        "body": body, "isBase64Encoded": base64
    });
    let Ok(event) = serde_json::from_value::<ApiGatewayV2httpRequest>(event) else { return };
    let host_header = event.headers.get("host").cloned();
    let mut context = Context::default();
    context.xray_trace_id = field(9).map(str::to_owned);
    match request_from_event(event, context) {
        Ok(request) => {
            let expected = raw_query.map(|q| q.parse::<QueryMap>().unwrap()).unwrap_or_default();
            assert_eq!(request.query_string_parameters(), expected);
            assert_eq!(request.method().as_str(), method);
            assert_eq!(request.headers().get("host"), host_header.as_ref());
            assert_eq!(request.headers().get("cookie").map(|c| c.as_bytes()), Some(&b"a=b; c=d"[..]));
            let body: Vec<u8> = match body {
                Some(b) if base64 => base64::engine::general_purpose::STANDARD.decode(b).unwrap(),
                Some(b) => b.as_bytes().to_vec(),
                None => vec![],
            };
            assert_eq!(request.body().as_ref(), &body[..]);
            assert!(request.lambda_context_ref().is_some());
        }
        Err(BadEvent::Base64Body) => assert!(base64 && body.is_some()),
        Err(BadEvent::UriTooLong) => {
            let len = [raw_path, raw_query, field(6)].iter().map(|p| p.map_or(0, str::len)).sum::<usize>();
            assert!(len * 3 + 1 > MAX_URI_BYTES);
        }
    }
});
