//! `POST /docusign/envelopes`: the body as the caller sent it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::envelope::validate::{validate_envelope, MAX_BODY_BYTES};

fuzz_target!(|body: &[u8]| {
    match validate_envelope(body) {
        // What passes is the caller's JSON, unchanged.
        Ok(value) => {
            assert!(body.len() <= MAX_BODY_BYTES);
            assert_eq!(serde_json::from_slice::<serde_json::Value>(body).ok().as_ref(), Some(&value));
            // What is sent (its serialization) reads back as what was validated.
            assert_eq!(serde_json::from_str::<serde_json::Value>(&value.to_string()).ok(), Some(value));
        }
        Err(e) => assert!(matches!(e.status.as_u16(), 400 | 413), "{}", e.status),
    }
});
