//! What the HTTP functions receive from Lambda: any JSON as an API Gateway
//! HTTP API (payload 2.0) event, turned into the request the handlers read
//! (`shared::gateway`, as `gateway::run` does before calling a handler).
#![no_main]

use futures_util::FutureExt as _;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_http::aws_lambda_events::query_map::QueryMap;
use lambda_http::http::StatusCode;
use lambda_http::{Context, RequestExt};
use libfuzzer_sys::fuzz_target;
use shared::connect::CallbackQuery;
use shared::gateway::{request_from_event, response_to_event};

fuzz_target!(|data: &[u8]| {
    let Ok(event) = serde_json::from_slice::<ApiGatewayV2httpRequest>(data) else { return };
    let raw_query = event.raw_query_string.clone();
    let Ok(request) = request_from_event(event, Context::default()) else { return };
    // The repaired query decodes to the parameters of the query as it came.
    if let Some(raw) = raw_query {
        assert_eq!(request.query_string_parameters(), raw.parse::<QueryMap>().unwrap());
    }
    let _ = CallbackQuery::from_params(&request.query_string_parameters()).state_and_tenant();
    let _ = shared::http::deadline(&request);
    let response = shared::http::json_response(StatusCode::OK, &serde_json::json!({"connected": false}));
    let answer = response_to_event(response).now_or_never().expect("the response is ready");
    assert_eq!(answer.status_code, 200);
});
