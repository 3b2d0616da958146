//! The `Idempotency-Key` header of `POST /docusign/envelopes`; the records
//! behind it are the store's ([`crate::store::idempotency`]).

/// The `Idempotency-Key` header: 1 to 255 visible ASCII characters.
pub fn valid_key(key: &str) -> bool {
    (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}
