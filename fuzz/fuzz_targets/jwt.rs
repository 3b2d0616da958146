//! The CRM's bearer token: `Authorization` headers and tokens of any shape,
//! and tokens correctly signed with the verifier's secret around any header
//! and claims (so the claim checks are reached, not only the signature's).
//!
//! Input: a first byte choosing the case, then its bytes:
//! `H<header value>`, `T<token>`, or `S<JWT header JSON>\n<claims JSON>`
//! (signed here with HS256 and `SECRET`). Other first bytes: a token.
#![no_main]

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use futures_util::FutureExt as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use lambda_http::http::{header::AUTHORIZATION, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use shared::auth::{is_valid_tenant, JwtVerifier};

const SECRET: &[u8] = b"fuzz-secret-fuzz-secret-fuzz-sec";

fuzz_target!(|data: &[u8]| {
    let Some((&case, rest)) = data.split_first() else { return };
    let verifier = JwtVerifier::new(SECRET, "docusign-connector").unwrap();
    let caller = match case {
        b'H' => {
            let Ok(value) = HeaderValue::from_bytes(rest) else { return };
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, value);
            verifier.caller(&headers).now_or_never().expect("HS256 verification never waits")
        }
        b'S' => {
            let (header, claims) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &[][..]),
            };
            let message = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
            let key = EncodingKey::from_secret(SECRET).unwrap();
            let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).unwrap();
            verifier.verify(&format!("{message}.{signature}")).now_or_never().expect("HS256 verification never waits")
        }
        _ => {
            let Ok(token) = std::str::from_utf8(rest) else { return };
            verifier.verify(token).now_or_never().expect("HS256 verification never waits")
        }
    };
    match caller {
        Ok(c) => assert!(is_valid_tenant(&c.tenant) && !c.user.is_empty()),
        Err(e) => assert_eq!(e.status.as_u16(), 401),
    }
});
