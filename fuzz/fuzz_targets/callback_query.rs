//! `GET /docusign/callback`: the raw query string DocuSign (or anyone)
//! sends, read as the oauth-callback handler reads it.
#![no_main]

use lambda_http::aws_lambda_events::query_map::QueryMap;
use libfuzzer_sys::fuzz_target;
use shared::connect::{CallbackFailure, CallbackQuery};

fuzz_target!(|raw: &str| {
    let params: QueryMap = raw.parse().unwrap();
    let query = CallbackQuery::from_params(&params);
    match query.state_and_tenant() {
        Ok((state, tenant)) => {
            assert!(state.len() <= 256);
            assert!(state.starts_with(tenant) && state[tenant.len()..].starts_with('.'));
            assert!(!tenant.is_empty() && tenant.len() <= 64);
            assert!(tenant.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
            assert_eq!(shared::crypto::sha256_hex(state).len(), 64);
        }
        Err(failure) => assert!(matches!(
            failure,
            CallbackFailure::Declined | CallbackFailure::MissingParameters | CallbackFailure::UnknownState
        )),
    }
    if let Some(failure) = query.reported_failure() {
        if let CallbackFailure::DocuSignError(code) = &failure {
            // Shown on the page and logged: printable and bounded.
            assert!(code.len() <= 64 && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        }
        let _ = (failure.code(), failure.message());
    }
});
