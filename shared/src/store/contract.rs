//! The behaviour every [`TokenStore`] and [`IdempotencyStore`] adapter must
//! have, as one suite: `store::memory`'s unit tests run it against the
//! in-memory fake, `tests/integration/tests/store_contract.rs` against
//! DynamoDB (moto). Each check uses fresh tenant names, so the suite can run
//! on a table other tests use. It panics on the first broken promise.

use chrono::{DateTime, Duration, Utc};

use super::idempotency::{Claim, IdempotencyKey, IdempotencyStore};
use super::*;

/// Runs every check; `label` names the adapter in failure messages.
pub async fn run_all(tokens: &dyn TokenStore, idempotency: &dyn IdempotencyStore, label: &str) {
    consents_are_taken_once(tokens, label).await;
    a_proposal_is_promoted_once_by_its_admin_while_its_consent_exists(tokens, label).await;
    disconnect_removes_everything_and_cancels_proposals(tokens, label).await;
    fenced_writes_land_only_on_the_version_they_read(tokens, label).await;
    the_lease_is_exclusive_and_keeps_its_presented_mark(tokens, label).await;
    only_active_connections_fall_due(tokens, label).await;
    idempotency_keys_are_claimed_once_per_body(idempotency, label).await;
}

fn tenant(prefix: &str) -> String {
    format!("{prefix}-{}", crate::crypto::random_hex(6))
}

/// Now, at the second: what the records keep.
fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(Utc::now().timestamp(), 0).expect("in range")
}

fn identity() -> Identity {
    Identity {
        user_id: "user-1".into(),
        user_name: "Ann Signer".into(),
        user_email: "ann@example.com".into(),
        account_id: "acc-1".into(),
        account_name: "Acme".into(),
        base_uri: "https://demo.docusign.net".into(),
    }
}

pub fn sample_connection(tenant: &str, connection_id: &str, version: u64, expires_in_secs: i64) -> Connection {
    let now = now();
    Connection {
        tenant: tenant.to_owned(),
        connection_id: connection_id.to_owned(),
        version,
        environment: DocuSignEnvironment::Sandbox,
        identity: identity(),
        access_token: vec![1, 2, 3, version as u8],
        access_token_expires_at: now + Duration::seconds(expires_in_secs),
        refresh_token: vec![4, 5, 6, version as u8],
        refresh_token_expires_at: now + Duration::days(30),
        status: ConnectionStatus::Active,
        connected_at: now,
        last_refreshed_at: now,
        refresh: RefreshBookkeeping::default(),
    }
}

fn consent(tenant: &str, state_hash: &str) -> PendingConsent {
    let now = now();
    PendingConsent {
        tenant: tenant.to_owned(),
        state_hash: state_hash.to_owned(),
        admin: "admin-1".into(),
        environment: DocuSignEnvironment::Sandbox,
        verifier: vec![9, 9, 9],
        created_at: now,
        expires_at: now + Duration::minutes(10),
    }
}

fn proposal(tenant: &str, state_hash: &str, confirmation_hash: &str) -> ProposedConnection {
    let now = now();
    ProposedConnection {
        tenant: tenant.to_owned(),
        confirmation_hash: confirmation_hash.to_owned(),
        state_hash: state_hash.to_owned(),
        admin: "admin-1".into(),
        environment: DocuSignEnvironment::Sandbox,
        identity: identity(),
        access_token: vec![7, 7],
        access_token_expires_at: now + Duration::hours(8),
        refresh_token: vec![8, 8],
        refresh_token_expires_at: now + Duration::days(30),
        issued_at: now,
        expires_at: now + Duration::minutes(10),
    }
}

fn is_conflict<T: std::fmt::Debug>(r: Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::Conflict))
}

async fn consents_are_taken_once(s: &dyn TokenStore, label: &str) {
    let t = tenant("consent");
    let stored = consent(&t, "s1");
    s.put_pending_consent(&stored).await.unwrap();
    match s.take_pending_consent(&t, "s1", now()).await.unwrap() {
        TakeConsent::Taken(c) => assert_eq!(c, stored, "{label}: the consent as stored"),
        other => panic!("{label}: first take: {other:?}"),
    }
    assert!(matches!(s.take_pending_consent(&t, "s1", now()).await.unwrap(), TakeConsent::AlreadyUsed), "{label}");
    assert!(matches!(s.take_pending_consent(&t, "s2", now()).await.unwrap(), TakeConsent::Unknown), "{label}");
    assert!(
        matches!(s.take_pending_consent(&tenant("other"), "s1", now()).await.unwrap(), TakeConsent::Unknown),
        "{label}"
    );
    assert!(s.put_pending_consent(&consent(&t, "s1")).await.is_err(), "{label}: a state is never stored twice");
}

async fn a_proposal_is_promoted_once_by_its_admin_while_its_consent_exists(s: &dyn TokenStore, label: &str) {
    let t = tenant("proposal");
    let p = proposal(&t, "s1", "c1");
    assert!(is_conflict(s.put_proposal(&p).await), "{label}: no consent, no proposal");
    s.put_pending_consent(&consent(&t, "s1")).await.unwrap();
    s.take_pending_consent(&t, "s1", now()).await.unwrap();
    s.put_proposal(&p).await.unwrap();
    assert_eq!(s.get_proposal(&t, "c1").await.unwrap(), Some(p.clone()), "{label}: the proposal as stored");
    assert_eq!(s.get_proposal(&t, "c2").await.unwrap(), None, "{label}");
    assert_eq!(s.get_proposal(&tenant("other"), "c1").await.unwrap(), None, "{label}");

    let connection = sample_connection(&t, "cid-1", 1, 8 * 3600);
    let mut other_admin = p.clone();
    other_admin.admin = "admin-2".into();
    assert!(is_conflict(s.promote_proposal(&other_admin, &connection, now()).await), "{label}: another admin");
    assert!(is_conflict(s.promote_proposal(&p, &connection, p.expires_at).await), "{label}: expired");
    assert_eq!(s.get_connection(&t).await.unwrap(), None, "{label}: nothing written by refused promotions");

    s.promote_proposal(&p, &connection, now()).await.unwrap();
    assert_eq!(s.get_connection(&t).await.unwrap(), Some(connection.clone()), "{label}");
    assert_eq!(s.get_proposal(&t, "c1").await.unwrap(), None, "{label}: used once");
    assert!(is_conflict(s.promote_proposal(&p, &connection, now()).await), "{label}: a second promotion");

    // A second consent replaces the connection in one step.
    s.put_pending_consent(&consent(&t, "s2")).await.unwrap();
    let p2 = proposal(&t, "s2", "c2");
    s.put_proposal(&p2).await.unwrap();
    let replacement = sample_connection(&t, "cid-2", 1, 8 * 3600);
    assert_eq!(s.get_connection(&t).await.unwrap(), Some(connection), "{label}: the old one serves until then");
    s.promote_proposal(&p2, &replacement, now()).await.unwrap();
    assert_eq!(s.get_connection(&t).await.unwrap(), Some(replacement), "{label}");
}

async fn disconnect_removes_everything_and_cancels_proposals(s: &dyn TokenStore, label: &str) {
    let t = tenant("disconnect");
    let neighbour = tenant("neighbour");
    for who in [&t, &neighbour] {
        s.put_pending_consent(&consent(who, "s1")).await.unwrap();
        s.put_proposal(&proposal(who, "s1", "c1")).await.unwrap();
        s.promote_proposal(&proposal(who, "s1", "c1"), &sample_connection(who, "cid", 1, 3600), now()).await.unwrap();
    }
    s.put_pending_consent(&consent(&t, "s2")).await.unwrap();
    s.put_proposal(&proposal(&t, "s2", "c2")).await.unwrap();
    s.acquire_lease(&t, "me", now(), now() + Duration::seconds(45)).await.unwrap();

    s.delete_connection(&t).await.unwrap();
    assert_eq!(s.get_connection(&t).await.unwrap(), None, "{label}");
    assert_eq!(s.get_proposal(&t, "c2").await.unwrap(), None, "{label}: proposals go");
    assert!(
        matches!(s.take_pending_consent(&t, "s2", now()).await.unwrap(), TakeConsent::Unknown),
        "{label}: consents go"
    );
    let conn = sample_connection(&t, "cid-3", 1, 3600);
    assert!(is_conflict(s.promote_proposal(&proposal(&t, "s2", "c2"), &conn, now()).await), "{label}");
    assert_eq!(s.get_connection(&t).await.unwrap(), None, "{label}: nothing comes back");
    assert!(
        matches!(
            s.acquire_lease(&t, "other", now(), now() + Duration::seconds(45)).await.unwrap(),
            LeaseAcquire::Acquired { presented: None }
        ),
        "{label}: the lease went too"
    );
    s.delete_connection(&t).await.unwrap();
    assert!(s.get_connection(&neighbour).await.unwrap().is_some(), "{label}: the neighbour is untouched");
}

async fn connect(s: &dyn TokenStore, t: &str, connection: &Connection) {
    s.put_pending_consent(&consent(t, "s")).await.unwrap();
    s.put_proposal(&proposal(t, "s", "c")).await.unwrap();
    s.promote_proposal(&proposal(t, "s", "c"), connection, now()).await.unwrap();
}

async fn fenced_writes_land_only_on_the_version_they_read(s: &dyn TokenStore, label: &str) {
    let t = tenant("fence");
    let v1 = sample_connection(&t, "cid", 1, 3600);
    connect(s, &t, &v1).await;
    let v2 = sample_connection(&t, "cid", 2, 7200);
    s.write_fenced(&v1, &v2).await.unwrap();
    assert_eq!(s.get_connection(&t).await.unwrap(), Some(v2.clone()), "{label}");
    let stale = sample_connection(&t, "cid", 3, 100);
    assert!(is_conflict(s.write_fenced(&v1, &stale).await), "{label}: stale version");
    let other_consent = sample_connection(&t, "other-cid", 2, 100);
    assert!(is_conflict(s.write_fenced(&other_consent, &stale).await), "{label}: another connection");
    let bookkeeping =
        RefreshBookkeeping { failures: 2, retry_not_before: Some(now()), last_error: Some("upstream_503".into()) };
    assert!(is_conflict(s.update_refresh_state(&v1, ConnectionStatus::Active, &bookkeeping).await), "{label}");
    s.update_refresh_state(&v2, ConnectionStatus::ReauthRequired, &bookkeeping).await.unwrap();
    let read = s.get_connection(&t).await.unwrap().unwrap();
    assert_eq!(read.status, ConnectionStatus::ReauthRequired, "{label}");
    assert_eq!(read.refresh, bookkeeping, "{label}");
    assert_eq!(read.access_token, v2.access_token, "{label}: only the refresh record changed");
    s.delete_connection(&t).await.unwrap();
    assert!(is_conflict(s.write_fenced(&v2, &stale).await), "{label}: nothing to fence on after a disconnect");
    assert_eq!(s.get_connection(&t).await.unwrap(), None, "{label}");
}

async fn the_lease_is_exclusive_and_keeps_its_presented_mark(s: &dyn TokenStore, label: &str) {
    let t = tenant("lease");
    let now = now();
    let until = now + Duration::seconds(45);
    let acquired = s.acquire_lease(&t, "a", now, until).await.unwrap();
    assert_eq!(acquired, LeaseAcquire::Acquired { presented: None }, "{label}");
    assert_eq!(s.acquire_lease(&t, "b", now, until).await.unwrap(), LeaseAcquire::Held, "{label}");
    let mark = PresentedMark { connection_id: "cid".into(), version: 1 };
    assert!(is_conflict(s.mark_presented(&t, "b", &mark, now).await), "{label}: not the owner");
    assert!(
        is_conflict(s.mark_presented(&t, "a", &mark, until + Duration::seconds(1)).await),
        "{label}: too little left"
    );
    s.mark_presented(&t, "a", &mark, now + Duration::seconds(20)).await.unwrap();
    // The holder dies: after the lease runs out, the next holder sees the mark.
    let later = until + Duration::seconds(1);
    let next = s.acquire_lease(&t, "b", later, later + Duration::seconds(45)).await.unwrap();
    assert_eq!(next, LeaseAcquire::Acquired { presented: Some(mark) }, "{label}");
    s.release_lease(&t, "a").await.unwrap();
    assert_eq!(
        s.acquire_lease(&t, "c", later, later).await.unwrap(),
        LeaseAcquire::Held,
        "{label}: a stranger's release frees nothing"
    );
    s.release_lease(&t, "b").await.unwrap();
    let free = s.acquire_lease(&t, "c", later, later + Duration::seconds(45)).await.unwrap();
    assert_eq!(free, LeaseAcquire::Acquired { presented: None }, "{label}: release clears the mark");
}

async fn only_active_connections_fall_due(s: &dyn TokenStore, label: &str) {
    let (soon, later, revoked) = (tenant("due-soon"), tenant("due-later"), tenant("due-revoked"));
    connect(s, &soon, &sample_connection(&soon, "cid", 1, 3600)).await;
    connect(s, &later, &sample_connection(&later, "cid", 1, 10 * 3600)).await;
    let r = sample_connection(&revoked, "cid", 1, 3600);
    connect(s, &revoked, &r).await;
    s.update_refresh_state(&r, ConnectionStatus::ReauthRequired, &RefreshBookkeeping::default()).await.unwrap();
    let ours = |all: Vec<String>| -> Vec<String> {
        let mut v: Vec<String> = all.into_iter().filter(|t| [&soon, &later, &revoked].contains(&t)).collect();
        v.sort();
        v
    };
    let cutoff = now() + Duration::hours(4);
    assert_eq!(ours(s.due_tenants(cutoff).await.unwrap()), vec![soon.clone()], "{label}");
    let mut both = vec![soon.clone(), later.clone()];
    both.sort();
    assert_eq!(ours(s.due_tenants(now() + Duration::hours(11)).await.unwrap()), both, "{label}");
}

async fn idempotency_keys_are_claimed_once_per_body(s: &dyn IdempotencyStore, label: &str) {
    let key = IdempotencyKey { tenant: tenant("idem"), key_hash: "k".into(), fingerprint: "body-1".into() };
    let other_body = IdempotencyKey { fingerprint: "body-2".into(), ..key.clone() };
    let now = now();
    let (hold, expires) = (now + Duration::seconds(60), now + Duration::hours(24));
    assert_eq!(s.claim(&key, now, hold, expires).await.unwrap(), Claim::Claimed, "{label}");
    assert_eq!(s.claim(&key, now, hold, expires).await.unwrap(), Claim::InProgress, "{label}");
    assert_eq!(s.claim(&other_body, now, hold, expires).await.unwrap(), Claim::Mismatch, "{label}");
    // A holder presumed dead is taken over, by the same body only.
    let after_hold = hold + Duration::seconds(1);
    assert_eq!(s.claim(&other_body, after_hold, after_hold, expires).await.unwrap(), Claim::Mismatch, "{label}");
    assert_eq!(
        s.claim(&key, after_hold, after_hold + Duration::seconds(60), expires).await.unwrap(),
        Claim::Claimed,
        "{label}"
    );
    s.complete(&key, 201, r#"{"envelopeId":"e"}"#).await.unwrap();
    let done = Claim::Completed { status: 201, body: r#"{"envelopeId":"e"}"#.into() };
    assert_eq!(s.claim(&key, after_hold, hold, expires).await.unwrap(), done, "{label}");
    assert_eq!(
        s.claim(&key, expires - Duration::seconds(1), hold, expires).await.unwrap(),
        done,
        "{label}: for 24 hours"
    );

    // An abandoned key is free again at once.
    let fresh = IdempotencyKey { key_hash: "k2".into(), ..key.clone() };
    assert_eq!(s.claim(&fresh, now, hold, expires).await.unwrap(), Claim::Claimed, "{label}");
    s.abandon(&fresh).await.unwrap();
    assert_eq!(s.claim(&fresh, now, hold, expires).await.unwrap(), Claim::Claimed, "{label}");
}
