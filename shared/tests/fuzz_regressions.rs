//! Inputs under `fuzz/regressions/` that crashed a fuzz target (or, before
//! `shared::gateway`, lambda_http), replayed in the ordinary test suite;
//! `scripts/fuzz.sh` replays them too, at the start of each run.

use std::path::PathBuf;

use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_http::aws_lambda_events::query_map::QueryMap;
use lambda_http::RequestExt;
use shared::gateway::{request_from_event, BadEvent};

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|f| f.unwrap().path())
        .collect();
    files.sort();
    files.into_iter().map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect()
}

#[test]
fn api_gateway_events_that_crashed_lambda_http_convert_or_are_refused() {
    let found = inputs("apigw_event");
    assert!(!found.is_empty());
    for (path, bytes) in found {
        let event: ApiGatewayV2httpRequest = serde_json::from_slice(&bytes).unwrap();
        let query = event.raw_query_string.clone().unwrap_or_default();
        match request_from_event(event, lambda_http::Context::default()) {
            Ok(request) => assert_eq!(request.query_string_parameters(), query.parse::<QueryMap>().unwrap()),
            Err(e) => assert_eq!(e, BadEvent::Base64Body, "{}", path.display()),
        }
    }
}
