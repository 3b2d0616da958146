//! Keeping connections alive: the shared refresh and the scheduled sweep,
//! against moto and the strict-rotation DocuSign simulator.

use std::time::Duration;

use docusign_sim::{Endpoint, Fault};
use integration_tests::runtime::{scheduled_event, FunctionProcess};
use integration_tests::*;
use secrecy::ExposeSecret;
use shared::refresh::{ensure_fresh, Need, Refreshed};
use shared::store::REFRESH_KEY;
use tokio::time::Instant;

const HOUR: i64 = 3600;

fn soon(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

fn due() -> Need {
    Need::Due { window: chrono::Duration::hours(shared::sweep::REFRESH_WINDOW_HOURS) }
}

#[tokio::test]
async fn concurrent_refreshes_of_one_tenant_present_the_refresh_token_once() {
    let env = TestEnv::start().await;
    let t = tenant();
    env.connect(&t).await;
    env.advance(5 * HOUR);

    // Eight callers at once, each with its own app (as separate Lambda instances would be).
    let mut apps = Vec::new();
    for _ in 0..8 {
        apps.push(env.reconfigured(Options::default()).await);
    }
    let need = due();
    let results = futures_util::future::join_all(apps.iter().map(|app| ensure_fresh(app, &t, &need, soon(20)))).await;

    let stats = env.sim.stats();
    assert_eq!(stats.refresh_grants, 1, "exactly one refresh grant reached DocuSign: {stats:?}");
    assert_eq!(stats.refresh_token_reuse, 0);
    let mut refreshed_here = 0;
    let version = env.status(&t).await;
    assert_eq!(version["status"], "active");
    for r in results {
        match r.expect("every caller ends well") {
            Refreshed::Fresh { connection, refreshed_here: here, .. } => {
                refreshed_here += usize::from(here);
                assert_eq!(connection.version, 2, "every caller sees the winner's tokens");
                assert!(connection.access_token_expires_at > env.now() + chrono::Duration::hours(7));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(refreshed_here, 1);
}

#[tokio::test]
async fn concurrent_sweeps_in_separate_processes_present_the_refresh_token_once() {
    let env = TestEnv::start().await;
    let t = tenant();
    env.connect(&t).await;
    // Our record says the access token expires in an hour (system clock,
    // which the function processes use); DocuSign's tokens stay valid.
    env.set_access_expiry(&t, chrono::Utc::now() + chrono::Duration::hours(1)).await;

    let vars = env.function_env().await;
    let mut processes = Vec::new();
    for _ in 0..4 {
        processes.push(FunctionProcess::spawn("token-refresh", &vars).await);
    }
    let answers =
        futures_util::future::join_all(processes.iter().map(|p| p.invoke(scheduled_event(), Duration::from_secs(60))))
            .await;

    let stats = env.sim.stats();
    assert_eq!(stats.refresh_grants, 1, "{stats:?}");
    assert_eq!(stats.refresh_token_reuse, 0);
    let mut refreshed = 0;
    for (answer, p) in answers.iter().zip(&processes) {
        let summary = answer.as_ref().unwrap_or_else(|e| panic!("{e}\n{}", p.logs()));
        for field in ["due", "refreshed", "reauth_required", "failed"] {
            assert!(summary[field].is_u64(), "summary has {field}: {summary}");
        }
        assert_eq!(summary["failed"], 0, "{summary}");
        refreshed += summary["refreshed"].as_u64().unwrap();
    }
    assert_eq!(refreshed, 1);
    assert_eq!(env.status(&t).await["status"], "active");
    // The processes' own logs (JSON lines on stdout) hold no secret.
    let secrets = env.sim.issued_secrets();
    for p in &processes {
        let logs = p.logs();
        assert!(logs.contains("sweep finished"), "{logs}");
        assert!(logs.contains(r#""_aws""#), "an embedded-metric line: {logs}");
        for secret in &secrets {
            assert!(!logs.contains(secret.as_str()), "a secret in a function's log");
        }
    }
}

#[tokio::test]
async fn the_sweep_refreshes_exactly_the_due_tenants_and_a_second_run_nothing() {
    let env = TestEnv::start().await;
    let (a, b, c) = (tenant(), tenant(), tenant());
    env.connect(&a).await;
    env.connect(&b).await;
    env.advance(5 * HOUR); // a and b: 3 hours left, inside the 4-hour window
    env.connect(&c).await; // c: 8 hours left
    let before_c = env.status(&c).await;

    let first = env.sweep().await;
    assert_eq!((first.due, first.refreshed, first.reauth_required, first.failed), (2, 2, 0, 0), "{first:?}");
    assert_eq!(env.sim.stats().refresh_grants, 2);
    assert_eq!(env.status(&c).await, before_c, "c was not touched");
    for t in [&a, &b] {
        let s = env.status(t).await;
        let at = shared::clock::parse_rfc3339(s["last_refreshed_at"].as_str().unwrap()).unwrap();
        assert!((env.now() - at).num_seconds().abs() <= 30, "refreshed just now: {at}");
    }

    let second = env.sweep().await;
    assert_eq!((second.due, second.refreshed), (0, 0), "{second:?}");
    assert_eq!(env.sim.stats().refresh_grants, 2);
}

#[tokio::test]
async fn revoked_consent_ends_in_reauth_required_without_a_storm_and_a_new_consent_heals_it() {
    let env = TestEnv::start().await;
    let t = tenant();
    env.connect(&t).await;
    env.sim.revoke_consent("11111111-1111-1111-1111-111111111111");
    env.advance(5 * HOUR);

    let run = env.sweep().await;
    assert_eq!((run.due, run.reauth_required, run.refreshed), (1, 1, 0), "{run:?}");
    let s = env.status(&t).await;
    assert_eq!(s["status"], "reauth_required");
    assert_eq!(s["connected"], true, "records are kept so status can show it");
    let calls = env.sim.stats().token_calls;

    for _ in 0..5 {
        env.advance(HOUR);
        let run = env.sweep().await;
        assert_eq!(run.due, 0, "{run:?}");
    }
    // A send-style refresh makes no call either.
    let r = ensure_fresh(&env.app, &t, &Need::Margin { margin: chrono::Duration::hours(9) }, soon(5)).await.unwrap();
    assert!(matches!(r, Refreshed::ReauthRequired));
    assert_eq!(env.sim.stats().token_calls, calls, "no token call after reauth_required");

    env.connect(&t).await;
    assert_eq!(env.status(&t).await["status"], "active");
    env.advance(5 * HOUR);
    assert_eq!(env.sweep().await.refreshed, 1);
}

#[tokio::test]
async fn docusign_503_or_a_dropped_connection_leaves_it_active_and_the_next_run_refreshes() {
    let env = TestEnv::start().await;
    let t = tenant();
    env.connect(&t).await;
    env.advance(5 * HOUR);

    env.sim.push_fault(Endpoint::Token, Fault::Status { status: 503, body: None, retry_after: Some(5) }, 1);
    let run = env.sweep().await;
    assert_eq!((run.due, run.failed, run.refreshed), (1, 1, 0), "{run:?}");
    assert_eq!(env.status(&t).await["status"], "active");
    let item = env.item(&t, REFRESH_KEY).await.unwrap();
    assert_eq!(item["last_error"].as_s().unwrap(), "upstream_503");

    env.sim.push_fault(Endpoint::Token, Fault::CloseConnection, 1);
    let run = env.sweep().await;
    assert_eq!((run.failed, run.refreshed), (1, 0), "{run:?}");
    assert_eq!(env.status(&t).await["status"], "active");

    // A send in the cool-down makes no call.
    let calls = env.sim.stats().token_calls;
    let r = ensure_fresh(&env.app, &t, &Need::Margin { margin: chrono::Duration::hours(4) }, soon(5)).await;
    assert!(matches!(r, Err(shared::refresh::RefreshError::CoolingDown { .. })), "{r:?}");
    assert_eq!(env.sim.stats().token_calls, calls);

    let run = env.sweep().await;
    assert_eq!((run.failed, run.refreshed), (0, 1), "{run:?}");
    assert_eq!(env.sim.stats().refresh_token_reuse, 0);
    let item = env.item(&t, REFRESH_KEY).await.unwrap();
    assert!(!item.contains_key("last_error"));
}

#[tokio::test]
async fn ninety_days_of_six_hourly_runs_never_need_a_new_consent() {
    let env = TestEnv::start().await;
    let t = tenant();
    env.connect(&t).await;
    for run in 0..(90 * 4) {
        env.advance(6 * HOUR);
        let summary = env.sweep().await;
        assert_eq!(summary.failed + summary.reauth_required, 0, "run {run}: {summary:?}");
        let s = env.status(&t).await;
        assert_eq!(s["status"], "active", "run {run}");
        let refresh_expiry = shared::clock::parse_rfc3339(s["refresh_token_expires_at"].as_str().unwrap()).unwrap();
        assert!(refresh_expiry > env.now() + chrono::Duration::days(29), "run {run}: refresh token renewed");
    }
    let stats = env.sim.stats();
    assert_eq!(stats.refresh_token_reuse, 0);
    assert_eq!(stats.refresh_grants_ok, 360);
}

#[tokio::test]
async fn with_hourly_runs_no_access_token_expires_between_runs() {
    let env = TestEnv::start().await;
    let t = tenant();
    env.connect(&t).await;
    for run in 0..(3 * 24) {
        env.advance(HOUR);
        env.sweep().await;
        let s = env.status(&t).await;
        let access = shared::clock::parse_rfc3339(s["access_token_expires_at"].as_str().unwrap()).unwrap();
        // Good until after the next run, with two more runs to spare.
        assert!(access > env.now() + chrono::Duration::hours(3), "run {run}: {access}");
    }
}

#[tokio::test]
async fn the_sweep_starts_nothing_when_the_deadline_is_near_and_reports_what_it_left() {
    let env = TestEnv::start().await;
    let (a, b) = (tenant(), tenant());
    env.connect(&a).await;
    env.connect(&b).await;
    env.advance(5 * HOUR);
    let summary = shared::sweep::sweep(&env.app, soon(5)).await.unwrap();
    assert_eq!((summary.due, summary.left, summary.refreshed), (2, 2, 0), "{summary:?}");
    assert_eq!(env.sim.stats().refresh_grants, 0);
    assert_eq!(env.sweep().await.refreshed, 2, "left ones are still due");
}

/// A refresh whose process dies after DocuSign rotated the token but before
/// our write: the refresh token it presented is spent, and the new one was
/// never stored. The next refresh sees the presented mark, does not present
/// the spent token again (no reuse reaches DocuSign) and marks the
/// connection `reauth_required`, with an alarm-grade log line.
#[tokio::test]
async fn a_process_killed_between_docusigns_answer_and_the_write_never_reuses_the_token() {
    let env = TestEnv::start().await;
    let t = tenant();
    env.connect(&t).await;
    env.set_access_expiry(&t, chrono::Utc::now() + chrono::Duration::hours(1)).await;

    // DocuSign answers 3 s after the refresh grant arrives; the process is
    // killed as soon as it has arrived, while DocuSign is rotating the token.
    env.sim.push_fault(Endpoint::Token, Fault::Delay { ms: 3000 }, 1);
    let mut process = FunctionProcess::spawn("token-refresh", &env.function_env().await).await;
    let invocation = process.invoke(scheduled_event(), Duration::from_secs(60));
    let grant_arrived = async {
        while env.sim.stats().refresh_grants == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        r = invocation => panic!("the refresh finished before the kill: {r:?}"),
        () = grant_arrived => {}
    }
    process.kill();
    let rotated = async {
        while env.sim.stats().refresh_grants_ok == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), rotated).await.expect("DocuSign rotated the token");

    // The dead process's lease expires; the next run finds the presented mark.
    env.advance(shared::refresh::LEASE_SECS + 1);
    let run = env.sweep().await;
    assert_eq!(run.reauth_required, 1, "{run:?}");
    assert_eq!(env.sim.stats().refresh_token_reuse, 0, "the spent token was not presented again");
    assert_eq!(env.sim.stats().refresh_grants, 1);
    let s = env.status(&t).await;
    assert_eq!(s["status"], "reauth_required");
    assert_eq!(env.item(&t, REFRESH_KEY).await.unwrap()["last_error"].as_s().unwrap(), "refresh_token_lost");
}

#[tokio::test]
async fn a_forced_refresh_after_a_rejected_token_happens_once() {
    let env = TestEnv::start().await;
    let t = tenant();
    env.connect(&t).await;
    let auth = env.item(&t, shared::store::AUTH_KEY).await.unwrap();
    let need = Need::Rejected {
        connection_id: auth["connection_id"].as_s().unwrap().clone(),
        version: auth["version"].as_n().unwrap().parse().unwrap(),
    };
    let first = ensure_fresh(&env.app, &t, &need, soon(20)).await.unwrap();
    let Refreshed::Fresh { access_token: Some(token), refreshed_here: true, .. } = first else { panic!("{first:?}") };
    assert!(env.sim.valid_access_token(token.expose_secret()));
    // The same 401 seen by a second caller does not refresh again.
    let second = ensure_fresh(&env.app, &t, &need, soon(20)).await.unwrap();
    assert!(matches!(second, Refreshed::Fresh { refreshed_here: false, .. }));
    assert_eq!(env.sim.stats().refresh_grants, 1);
}
