//! DocuSign answers that are odd never cost a connection: a token answer
//! whose `expires_in` is absurd, negative or not a number still gives tokens
//! that are stored (with DocuSign's documented 8 hours), in a code exchange
//! and in a refresh, where DocuSign has already rotated the refresh token.

use integration_tests::fixtures::documents_envelope;
use integration_tests::*;
use serde_json::{json, Value};

const HOUR: i64 = 3600;

/// The stored access-token expiry, from `GET /docusign/connection`.
async fn access_expiry(env: &TestEnv, tenant: &str) -> chrono::DateTime<chrono::Utc> {
    let s = env.status(tenant).await;
    assert_eq!(s["status"], "active", "{s}");
    shared::clock::parse_rfc3339(s["access_token_expires_at"].as_str().unwrap()).unwrap()
}

/// The expiry is DocuSign's documented 8 hours from now, give or take the test's own time.
fn assert_eight_hours_from_now(env: &TestEnv, at: chrono::DateTime<chrono::Utc>, raw: &Value) {
    let expected = env.now() + chrono::Duration::hours(8);
    assert!(
        (at - expected).num_seconds().abs() <= 60,
        "expires_in {raw}: stored expiry {at}, expected about {expected}"
    );
}

async fn a_send_succeeds(env: &TestEnv, tenant: &str) {
    let a = env.send(tenant, &documents_envelope().to_string(), None).await;
    assert_eq!(a.status, 201, "{}", a.body);
}

/// Connect while the simulator answers the code exchange with `raw` as
/// `expires_in`: the connection is active, sends work, nothing is reused.
async fn code_exchange_answering(raw: Value) {
    let env = TestEnv::start().await;
    let t = tenant();
    env.sim.set_expires_in_raw(Some(raw.clone()));

    env.connect(&t).await;

    let at = access_expiry(&env, &t).await;
    assert_eight_hours_from_now(&env, at, &raw);
    a_send_succeeds(&env, &t).await;
    let stats = env.sim.stats();
    assert_eq!((stats.code_grants, stats.refresh_grants, stats.refresh_token_reuse), (1, 0, 0), "{stats:?}");
}

/// Connect normally, then a scheduled refresh answered with `raw` as
/// `expires_in`: the new tokens are stored, the connection stays active
/// and sends work; no refresh token is presented twice.
async fn refresh_answering(raw: Value) {
    let env = TestEnv::start().await;
    let t = tenant();
    env.connect(&t).await;
    env.sim.set_expires_in_raw(Some(raw.clone()));
    env.advance(5 * HOUR); // 3 hours left: due

    let run = env.sweep().await;

    assert_eq!((run.due, run.refreshed, run.failed, run.reauth_required), (1, 1, 0, 0), "expires_in {raw}: {run:?}");
    let s = env.status(&t).await;
    let refreshed_at = shared::clock::parse_rfc3339(s["last_refreshed_at"].as_str().unwrap()).unwrap();
    assert!((env.now() - refreshed_at).num_seconds().abs() <= 60, "refreshed just now: {s}");
    let at = access_expiry(&env, &t).await;
    assert_eight_hours_from_now(&env, at, &raw);
    a_send_succeeds(&env, &t).await;
    // The stored tokens are the rotated ones: a later refresh works too.
    env.sim.set_expires_in_raw(None);
    env.advance(5 * HOUR);
    assert_eq!(env.sweep().await.refreshed, 1);
    assert_eq!(env.status(&t).await["status"], "active");
    let stats = env.sim.stats();
    assert_eq!((stats.refresh_grants_ok, stats.refresh_token_reuse, stats.invalid_grant), (2, 0, 0), "{stats:?}");
}

#[tokio::test]
async fn a_code_exchange_with_expires_in_i64_max_connects_with_eight_hours() {
    code_exchange_answering(json!(9223372036854775807i64)).await;
}

#[tokio::test]
async fn a_code_exchange_with_expires_in_minus_one_connects_with_eight_hours() {
    code_exchange_answering(json!(-1)).await;
}

#[tokio::test]
async fn a_code_exchange_with_expires_in_soon_connects_with_eight_hours() {
    code_exchange_answering(json!("soon")).await;
}

#[tokio::test]
async fn a_code_exchange_with_expires_in_1e300_connects_with_eight_hours() {
    code_exchange_answering(json!(1e300)).await;
}

#[tokio::test]
async fn a_refresh_with_expires_in_i64_max_keeps_the_connection() {
    refresh_answering(json!(9223372036854775807i64)).await;
}

#[tokio::test]
async fn a_refresh_with_expires_in_minus_one_keeps_the_connection() {
    refresh_answering(json!(-1)).await;
}

#[tokio::test]
async fn a_refresh_with_expires_in_soon_keeps_the_connection() {
    refresh_answering(json!("soon")).await;
}

#[tokio::test]
async fn a_refresh_with_expires_in_1e300_keeps_the_connection() {
    refresh_answering(json!(1e300)).await;
}

#[tokio::test]
async fn a_send_that_refreshes_first_survives_an_odd_expires_in() {
    let env = TestEnv::start().await;
    let t = tenant();
    env.connect(&t).await;
    env.sim.set_expires_in_raw(Some(json!("soon")));
    env.advance(9 * HOUR); // the access token has expired: the send refreshes first

    a_send_succeeds(&env, &t).await;

    let at = access_expiry(&env, &t).await;
    assert_eight_hours_from_now(&env, at, &json!("soon"));
    let stats = env.sim.stats();
    assert_eq!((stats.refresh_grants_ok, stats.envelope_calls, stats.refresh_token_reuse), (1, 1, 0), "{stats:?}");
}
