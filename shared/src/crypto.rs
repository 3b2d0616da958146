//! Small, dependency-free helpers for random identifiers and digests.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of `value`, in hex: how states, confirmations and idempotency
/// keys are stored (never the values themselves).
pub fn sha256_hex(value: &str) -> String {
    hex(&Sha256::digest(value.as_bytes()))
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    buf
}

/// `n` random bytes from the OS, base64url without padding.
pub fn random_token(n: usize) -> String {
    URL_SAFE_NO_PAD.encode(random_bytes(n))
}

/// `n` random bytes from the OS, in hex.
pub fn random_hex(n: usize) -> String {
    hex(&random_bytes(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_and_tokens_have_their_documented_forms() {
        assert_eq!(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(random_token(32).len(), 43);
        assert_eq!(random_hex(16).len(), 32);
        assert_ne!(random_token(32), random_token(32));
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }
}
