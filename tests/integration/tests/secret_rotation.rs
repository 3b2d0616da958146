//! A wrong or rotated DocuSign client secret is our configuration problem,
//! never the tenants': connections stay `active`, no refresh token is spent
//! or presented twice, and `DOCUSIGN_SECRET_KEY_NEXT` rotates the secret
//! without downtime.

use std::time::Duration;

use aws_sdk_kms::primitives::Blob;
use base64::Engine as _;
use integration_tests::fixtures::documents_envelope;
use integration_tests::runtime::{scheduled_event, FunctionProcess};
use integration_tests::*;
use serde_json::Value;
use shared::refresh::{ensure_fresh, Need, RefreshError, CLIENT_SECRET_REJECTED};
use shared::store::REFRESH_KEY;
use tokio::time::Instant;

const HOUR: i64 = 3600;
/// The secret DocuSign accepts after the rotation.
const NEW_SECRET: &str = "test-client-secret-value-0002-rotated";

fn with_next_secret() -> Options {
    Options { extra_env: vec![("DOCUSIGN_SECRET_KEY_NEXT".to_owned(), NEW_SECRET.to_owned())], ..Options::default() }
}

async fn last_error(env: &TestEnv, tenant: &str) -> Option<String> {
    let item = env.item(tenant, REFRESH_KEY).await.expect("the connection's records are kept");
    item.get("last_error").map(|v| v.as_s().unwrap().to_owned())
}

#[tokio::test]
async fn a_refresh_with_only_the_old_secret_keeps_the_connection_active_and_reports_it_failed() {
    let env = TestEnv::start().await;
    let t = tenant();
    env.connect(&t).await;
    env.sim.set_client_secret(NEW_SECRET); // rotated in DocuSign; we still hold the old one
    env.advance(5 * HOUR);

    let run = env.sweep().await;

    assert_eq!((run.due, run.failed, run.refreshed, run.reauth_required), (1, 1, 0, 0), "{run:?}");
    assert_eq!(env.status(&t).await["status"], "active");
    assert_eq!(last_error(&env, &t).await.as_deref(), Some(CLIENT_SECRET_REJECTED));
    let stats = env.sim.stats();
    assert_eq!((stats.invalid_client, stats.refresh_grants_ok, stats.refresh_token_reuse), (1, 0, 0), "{stats:?}");

    // Sends go on with the access token it still has (3 hours left).
    let a = env.send(&t, &documents_envelope().to_string(), None).await;
    assert_eq!(a.status, 201, "{}", a.body);
    // An on-demand refresh waits for the cool-down: the token is not
    // presented again in a loop.
    let calls = env.sim.stats().token_calls;
    let r = ensure_fresh(
        &env.app,
        &t,
        &Need::Margin { margin: chrono::Duration::hours(4) },
        Instant::now() + Duration::from_secs(5),
    )
    .await;
    assert!(matches!(r, Err(RefreshError::CoolingDown { .. })), "{r:?}");
    assert_eq!(env.sim.stats().token_calls, calls);

    // The next run tries once more and still keeps it active and due.
    env.advance(HOUR);
    let run = env.sweep().await;
    assert_eq!((run.due, run.failed, run.reauth_required), (1, 1, 0), "{run:?}");
    assert_eq!(env.status(&t).await["status"], "active");

    // The secret is fixed (here: DocuSign accepts ours again): the same,
    // unspent refresh token works at the next run.
    env.sim.set_client_secret(CLIENT_SECRET);
    env.advance(HOUR);
    let run = env.sweep().await;
    assert_eq!((run.due, run.refreshed, run.failed), (1, 1, 0), "{run:?}");
    assert_eq!(last_error(&env, &t).await, None);
    let stats = env.sim.stats();
    assert_eq!(
        (stats.invalid_client, stats.refresh_grants_ok, stats.refresh_token_reuse, stats.invalid_grant),
        (2, 1, 0, 0),
        "{stats:?}"
    );
}

#[tokio::test]
async fn with_the_next_secret_set_a_refresh_after_the_rotation_works() {
    let env = TestEnv::with(with_next_secret()).await;
    let t = tenant();
    env.connect(&t).await; // the current secret still works: NEXT is not tried
    assert_eq!(env.sim.stats().invalid_client, 0);
    env.sim.set_client_secret(NEW_SECRET);
    env.advance(5 * HOUR);

    let run = env.sweep().await;

    assert_eq!((run.due, run.refreshed, run.failed, run.reauth_required), (1, 1, 0, 0), "{run:?}");
    assert_eq!(env.status(&t).await["status"], "active");
    assert_eq!(last_error(&env, &t).await, None);
    let a = env.send(&t, &documents_envelope().to_string(), None).await;
    assert_eq!(a.status, 201, "{}", a.body);
    let stats = env.sim.stats();
    // The old secret refused once, the same refresh token then accepted with NEXT.
    assert_eq!(
        (stats.invalid_client, stats.refresh_grants, stats.refresh_grants_ok, stats.refresh_token_reuse),
        (1, 2, 1, 0),
        "{stats:?}"
    );
}

#[tokio::test]
async fn with_the_next_secret_set_a_new_consent_after_the_rotation_works() {
    let env = TestEnv::with(with_next_secret()).await;
    env.sim.set_client_secret(NEW_SECRET);
    let (a, b) = (tenant(), tenant());

    env.connect(&a).await; // callback (code exchange: old refused, NEXT accepted) + confirm
    env.connect(&b).await;

    for t in [&a, &b] {
        assert_eq!(env.status(t).await["status"], "active");
        let sent = env.send(t, &documents_envelope().to_string(), None).await;
        assert_eq!(sent.status, 201, "{}", sent.body);
    }
    env.advance(5 * HOUR);
    let run = env.sweep().await;
    assert_eq!((run.due, run.refreshed, run.failed), (2, 2, 0), "{run:?}");
    let stats = env.sim.stats();
    assert_eq!(
        (stats.code_grants, stats.refresh_grants_ok, stats.refresh_token_reuse, stats.invalid_grant),
        (2, 2, 0, 0),
        "{stats:?}"
    );
    assert_eq!(stats.invalid_client, 4, "each token call tried the old secret first: {stats:?}");
}

#[tokio::test]
async fn a_consent_with_only_the_old_secret_fails_and_connects_nothing() {
    let env = TestEnv::start().await;
    let t = tenant();
    env.sim.set_client_secret(NEW_SECRET);

    let a = env.connect_as(&t, "").await;

    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(callback_confirmation(&a), None);
    assert_eq!(env.status(&t).await["connected"], false);
    let stats = env.sim.stats();
    assert_eq!((stats.invalid_client, stats.code_grants), (1, 0), "{stats:?}");
}

/// The EMF lines (`_aws` at the top) of a function's log.
fn metric_lines(logs: &str) -> Vec<Value> {
    logs.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).filter(|v| v.get("_aws").is_some()).collect()
}

#[tokio::test]
async fn the_token_refresh_function_decrypts_the_next_secret_and_says_which_secret_worked() {
    let env = TestEnv::start().await;
    let t = tenant();
    env.connect(&t).await;
    env.sim.set_client_secret(NEW_SECRET);
    // Our record says the access token expires in an hour (system clock, which function processes use).
    env.set_access_expiry(&t, chrono::Utc::now() + chrono::Duration::hours(1)).await;
    // NEXT as KMS ciphertext, encrypted like the first secret (same encryption context).
    let out = env
        .kms
        .encrypt()
        .key_id(&env.key_id)
        .plaintext(Blob::new(NEW_SECRET.as_bytes()))
        .encryption_context("connector_secret", "DOCUSIGN_SECRET_KEY")
        .send()
        .await
        .unwrap();
    let ciphertext = base64::engine::general_purpose::STANDARD.encode(out.ciphertext_blob.unwrap().into_inner());
    let base = env.function_env().await;

    // Without NEXT: the run fails the tenant, keeps it active, and raises the metric.
    let p = FunctionProcess::spawn("token-refresh", &base).await;
    let summary =
        p.invoke(scheduled_event(), Duration::from_secs(60)).await.unwrap_or_else(|e| panic!("{e}\n{}", p.logs()));
    assert_eq!((summary["failed"].as_u64(), summary["reauth_required"].as_u64()), (Some(1), Some(0)), "{summary}");
    assert_eq!(env.status(&t).await["status"], "active");
    let logs = p.logs();
    let rejected: Vec<Value> =
        metric_lines(&logs).into_iter().filter(|m| m.get("ClientSecretRejected").is_some()).collect();
    assert_eq!(rejected.len(), 1, "one ClientSecretRejected metric: {logs}");
    assert_eq!(rejected[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"], "DocuSignConnector");
    assert!(
        logs.lines().any(|l| l.contains("ERROR") && l.contains("client credentials")),
        "an error-level line: {logs}"
    );

    // With NEXT (as ciphertext): refreshed, and the metric says `next`.
    let mut vars = base.clone();
    vars.push(("DOCUSIGN_SECRET_KEY_NEXT_CIPHERTEXT".to_owned(), ciphertext));
    let p = FunctionProcess::spawn("token-refresh", &vars).await;
    let summary =
        p.invoke(scheduled_event(), Duration::from_secs(60)).await.unwrap_or_else(|e| panic!("{e}\n{}", p.logs()));
    assert_eq!(
        (summary["refreshed"].as_u64(), summary["failed"].as_u64()),
        (Some(1), Some(0)),
        "{summary}\n{}",
        p.logs()
    );
    assert_eq!(env.status(&t).await["status"], "active");
    let logs = p.logs();
    let used: Vec<Value> = metric_lines(&logs).into_iter().filter(|m| m.get("ClientSecretUsed").is_some()).collect();
    assert_eq!(used.len(), 1, "{logs}");
    assert_eq!(used[0]["Secret"], "next");
    assert_eq!(used[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0][0], "Secret");
    for secret in env.sim.issued_secrets() {
        assert!(!logs.contains(secret.as_str()), "a secret in the function's log");
    }
    assert_eq!(env.sim.stats().refresh_token_reuse, 0);
}
