//! The DocuSign connector's shared crate. Layers, each using only those below:
//!
//! - [`http`]: API Gateway events in, responses out;
//! - use cases: [`connect`] (consent, callback, status, disconnect);
//! - ports: [`store::TokenStore`], [`cipher::TokenCipher`],
//!   [`docusign::DocuSignAuth`], [`clock::Clock`];
//! - adapters: [`store::dynamo`], [`cipher::KmsCipher`] (over [`aws`]'s client),
//!   [`docusign::oauth`];
//! - the ground: [`config`], [`error`], records in [`store`].

pub mod app;
pub mod auth;
#[cfg(feature = "aws")]
pub mod aws;
pub mod cipher;
pub mod clock;
pub mod config;
pub mod connect;
pub mod crypto;
pub mod docusign;
pub mod envelope;
pub mod error;
pub mod gateway;
pub mod http;
pub mod pages;
pub mod refresh;
pub mod store;
pub mod sweep;
pub mod telemetry;

pub use app::App;
pub use config::Needs;

/// Time left before the invocation's deadline, or `None` when the deadline
/// announced by the Runtime API is not a real one: `cargo lambda watch` sends
/// a fixed `Lambda-Runtime-Deadline-Ms: 600000` (1970), other emulators none.
/// Lambda never hands over an event whose deadline has passed, nor one more
/// than 15 minutes away.
pub fn remaining_time(context: &lambda_runtime::Context) -> Option<std::time::Duration> {
    const MAX_LAMBDA_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15 * 60);
    if context.deadline == 0 {
        return None;
    }
    let left = context.deadline().duration_since(std::time::SystemTime::now()).ok()?;
    (!left.is_zero() && left <= MAX_LAMBDA_TIMEOUT).then_some(left)
}

#[cfg(test)]
mod tests {
    use super::remaining_time;
    use lambda_runtime::Context;

    fn context(deadline_ms: u64) -> Context {
        let mut c = Context::default();
        c.deadline = deadline_ms;
        c
    }

    #[test]
    fn only_a_real_deadline_counts() {
        let now_ms = chrono::Utc::now().timestamp_millis() as u64;
        let left = remaining_time(&context(now_ms + 10_000)).unwrap();
        assert!(left.as_secs() >= 8 && left.as_secs() <= 10, "{left:?}");
        assert_eq!(remaining_time(&context(0)), None);
        assert_eq!(remaining_time(&context(600_000)), None, "cargo lambda watch's fixed value");
        assert_eq!(remaining_time(&context(now_ms - 1)), None);
        assert_eq!(remaining_time(&context(now_ms + 3_600_000)), None);
    }
}
