//! The idempotency port: a record per tenant and `Idempotency-Key`, taken
//! with a conditional write before sending and completed with the answer
//! after. Beside [`super::TokenStore`]; the same adapters implement both.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;

/// What taking a key found.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// Ours: send, then complete or abandon.
    Claimed,
    /// Answered before, with this body: return the stored answer.
    Completed { status: u16, body: String },
    /// Another request with the same key and body is sending right now.
    InProgress,
    /// The key was used with another body.
    Mismatch,
}

/// One idempotency record's identity: the tenant, a hash of the client's key
/// and a hash of the body.
#[derive(Clone, Debug)]
pub struct IdempotencyKey {
    pub tenant: String,
    pub key_hash: String,
    pub fingerprint: String,
}

#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Takes the key unless a live record holds it. An in-progress record
    /// whose holder is past `now` (it died) may be taken over.
    async fn claim(
        &self,
        key: &IdempotencyKey,
        now: DateTime<Utc>,
        holder_until: DateTime<Utc>,
        expires: DateTime<Utc>,
    ) -> Result<Claim, StoreError>;
    async fn complete(&self, key: &IdempotencyKey, status: u16, body: &str) -> Result<(), StoreError>;
    /// Frees the key after an answer that should not be replayed (a
    /// transient failure), so the client can retry with it.
    async fn abandon(&self, key: &IdempotencyKey) -> Result<(), StoreError>;
}
