//! DocuSign's answers: the token endpoint's (a grant, or an OAuth error)
//! and `/oauth/userinfo`'s, parsed as the connector parses them, and a token
//! answer carried through to the access token's stored expiry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth2::basic::BasicErrorResponse;
use serde_json::value::RawValue;
use shared::clock::{Clock, SystemClock};
use shared::docusign::wire::{self, DsTokenResponse};
use shared::docusign::{OAuthError, TokenGrant, MAX_ACCESS_SECS, MIN_ACCESS_SECS};

/// What `connect` and `refresh` store: `now + grant.lifetime`. It must not
/// panic and must lie within now + 1 s ..= now + 30 days.
fn check_expiry(grant: &TokenGrant) {
    let now = SystemClock.now();
    let at = now + grant.lifetime;
    let secs = (at - now).num_seconds();
    assert!((MIN_ACCESS_SECS as i64..=MAX_ACCESS_SECS as i64).contains(&secs), "{secs} s");
}

fuzz_target!(|body: &[u8]| {
    // oauth2 reads a 2xx token answer as DsTokenResponse with serde_json.
    if let Ok(answer) = serde_json::from_slice::<DsTokenResponse>(body) {
        check_expiry(&TokenGrant::from(answer));
    }
    // The input as the `expires_in` of an otherwise normal token answer:
    // any JSON value there must leave the answer usable.
    if serde_json::from_slice::<Box<RawValue>>(body).is_ok() {
        let mut answer = br#"{"access_token":"a","token_type":"Bearer","refresh_token":"r","expires_in":"#.to_vec();
        answer.extend_from_slice(body);
        answer.push(b'}');
        // (Too deeply nested for serde_json once inside the answer: not JSON it reads.)
        if serde_json::from_slice::<Box<RawValue>>(&answer).is_ok() {
            let parsed = serde_json::from_slice::<DsTokenResponse>(&answer);
            let grant = TokenGrant::from(parsed.expect("a token answer with any JSON as expires_in is usable"));
            assert!(grant.refresh_token.is_some());
            check_expiry(&grant);
        }
    }
    // ... and a 4xx one as an OAuth error.
    if let Ok(e) = serde_json::from_slice::<BasicErrorResponse>(body) {
        let e = OAuthError::Rejected { code: e.error().to_string(), description: e.error_description().cloned() };
        let class = e.class();
        assert!(class.len() <= 64 && class.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        let _ = e.needs_reauth();
    }
    if let Ok(user) = wire::userinfo(body) {
        if let Some(account) = user.choose_account(None) {
            assert!(account.is_default);
        }
        for a in &user.accounts {
            assert_eq!(user.choose_account(Some(&a.account_id)).map(|c| &c.account_id), Some(&a.account_id));
            assert!(!a.base_uri.ends_with('/'));
        }
    }
});
