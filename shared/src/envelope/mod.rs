//! Sending envelopes: validation before anything leaves.

pub mod idempotency;
pub mod send;
pub mod validate;
