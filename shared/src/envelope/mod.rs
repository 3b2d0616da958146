//! Sending envelopes: validation before anything leaves.

pub mod validate;
