//! DocuSign's answers: the token endpoint's (a grant, or an OAuth error)
//! and `/oauth/userinfo`'s, parsed as the connector parses them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth2::basic::BasicErrorResponse;
use shared::docusign::wire::{self, DsTokenResponse};
use shared::docusign::{OAuthError, TokenGrant};

fuzz_target!(|body: &[u8]| {
    // oauth2 reads a 2xx token answer as DsTokenResponse with serde_json.
    if let Ok(answer) = serde_json::from_slice::<DsTokenResponse>(body) {
        let _ = TokenGrant::from(answer);
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
