//! The token store port: a tenant's connection (the `docusign_auth` and
//! `docusign_refresh` records, always written together) and its pending
//! consents. Values that are secrets arrive here already encrypted.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::docusign::environment::DocuSignEnvironment;
use crate::error::BoxError;

pub mod contract;
#[cfg(feature = "aws")]
pub mod dynamo;
pub mod idempotency;
pub mod memory;

pub const AUTH_KEY: &str = "docusign_auth";
pub const REFRESH_KEY: &str = "docusign_refresh";
pub const CONSENT_PREFIX: &str = "consent#";
pub const PROPOSAL_PREFIX: &str = "proposal#";
pub const LEASE_KEY: &str = "lease#refresh";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionStatus {
    Active,
    ReauthRequired,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::ReauthRequired => "reauth_required",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "reauth_required" => Some(Self::ReauthRequired),
            _ => None,
        }
    }
}

/// The DocuSign user and account a connection acts as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub user_id: String,
    pub user_name: String,
    pub user_email: String,
    pub account_id: String,
    pub account_name: String,
    pub base_uri: String,
}

/// One tenant's connection: both records, as one value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    pub tenant: String,
    /// Random per consent: a write fenced on an older connection never lands
    /// on a newer one.
    pub connection_id: String,
    /// Incremented by every token write; both records always carry the same.
    pub version: u64,
    pub environment: DocuSignEnvironment,
    pub identity: Identity,
    /// KMS ciphertext.
    pub access_token: Vec<u8>,
    pub access_token_expires_at: DateTime<Utc>,
    /// KMS ciphertext.
    pub refresh_token: Vec<u8>,
    pub refresh_token_expires_at: DateTime<Utc>,
    pub status: ConnectionStatus,
    pub connected_at: DateTime<Utc>,
    pub last_refreshed_at: DateTime<Utc>,
    pub refresh: RefreshBookkeeping,
}

/// What the refresh keeps between runs; never a secret.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RefreshBookkeeping {
    /// Consecutive transient failures.
    pub failures: u32,
    /// No refresh is tried before this (cool-down after a transient failure).
    pub retry_not_before: Option<DateTime<Utc>>,
    /// The class of the last failure, e.g. `invalid_grant`, `upstream_503`.
    pub last_error: Option<String>,
}

/// A consent started but not finished: found by the hash of its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingConsent {
    pub tenant: String,
    pub state_hash: String,
    pub admin: String,
    pub environment: DocuSignEnvironment,
    /// KMS ciphertext of the PKCE verifier.
    pub verifier: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What a successful callback found, waiting for the admin who started the
/// consent to confirm it: found by the hash of its one-time confirmation.
/// Its tokens are ciphertext under the tenant's `docusign_auth` and
/// `docusign_refresh` contexts, so the promotion copies them unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProposedConnection {
    pub tenant: String,
    pub confirmation_hash: String,
    /// The pending consent it came from: the promotion is fenced on it, so
    /// a disconnect (which deletes consents) stops every later confirmation.
    pub state_hash: String,
    /// The CRM user (`sub`) who started the consent: the only one who may confirm.
    pub admin: String,
    pub environment: DocuSignEnvironment,
    pub identity: Identity,
    /// KMS ciphertext.
    pub access_token: Vec<u8>,
    pub access_token_expires_at: DateTime<Utc>,
    /// KMS ciphertext.
    pub refresh_token: Vec<u8>,
    pub refresh_token_expires_at: DateTime<Utc>,
    /// When DocuSign issued the tokens (the callback).
    pub issued_at: DateTime<Utc>,
    /// After this the proposal cannot be confirmed.
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug)]
pub enum TakeConsent {
    /// First use: the consent is now marked used.
    Taken(PendingConsent),
    AlreadyUsed,
    Unknown,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("DynamoDB request failed")]
    Backend(#[source] BoxError),
    #[error("the connection changed meanwhile (fenced write refused)")]
    Conflict,
    #[error("stored item is malformed: {0}")]
    Corrupt(String),
}

/// Which connection version's refresh token a lease holder presented to
/// DocuSign (step 3 of the refresh protocol, `refresh.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresentedMark {
    pub connection_id: String,
    pub version: u64,
}

impl PresentedMark {
    pub fn of(connection: &Connection) -> Self {
        Self { connection_id: connection.connection_id.clone(), version: connection.version }
    }

    /// Whether the mark names this connection's current refresh token.
    pub fn is_of(&self, connection: &Connection) -> bool {
        self.connection_id == connection.connection_id && self.version == connection.version
    }
}

/// The refresh lease of a tenant, as acquiring it found it.
#[derive(Debug, PartialEq, Eq)]
pub enum LeaseAcquire {
    /// Ours until released or until it expires. `presented` names the
    /// connection version whose refresh token a previous holder presented to
    /// DocuSign without releasing the lease afterwards (it died, or its lease
    /// ran out while it was still storing the answer).
    Acquired { presented: Option<PresentedMark> },
    /// Another caller holds it.
    Held,
}

#[async_trait]
pub trait TokenStore: Send + Sync {
    async fn put_pending_consent(&self, consent: &PendingConsent) -> Result<(), StoreError>;
    /// Marks the consent used (at `now`), once; a second take finds it used.
    async fn take_pending_consent(
        &self,
        tenant: &str,
        state_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<TakeConsent, StoreError>;
    /// Both records, read together; `None` when the tenant is not connected.
    async fn get_connection(&self, tenant: &str) -> Result<Option<Connection>, StoreError>;
    /// Stores a proposed connection, only while its pending consent still
    /// exists (`Conflict` after a disconnect removed it).
    async fn put_proposal(&self, proposal: &ProposedConnection) -> Result<(), StoreError>;
    /// The proposal with this confirmation hash, if any (consistent read).
    async fn get_proposal(
        &self,
        tenant: &str,
        confirmation_hash: &str,
    ) -> Result<Option<ProposedConnection>, StoreError>;
    /// In one transaction: removes the proposal (so it is used once) and
    /// writes `connection`, replacing any previous one, only if the proposal
    /// and its pending consent both still exist and the proposal is still
    /// `admin`'s and unexpired at `now`. `Conflict` otherwise.
    async fn promote_proposal(
        &self,
        proposal: &ProposedConnection,
        connection: &Connection,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Removes every pending and proposed consent, then both records, then
    /// any lease. Idempotent. Consents go first: a confirmation that lands
    /// before them is undone by the records' deletion, one after them fails.
    async fn delete_connection(&self, tenant: &str) -> Result<(), StoreError>;

    /// Takes the tenant's refresh lease if it is free or expired at `now`.
    async fn acquire_lease(
        &self,
        tenant: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<LeaseAcquire, StoreError>;
    /// Records, while still holding the lease with at least `must_hold_until`
    /// left, that the refresh token `mark` names is about to be presented.
    /// `Conflict` when the lease is no longer ours.
    async fn mark_presented(
        &self,
        tenant: &str,
        owner: &str,
        mark: &PresentedMark,
        must_hold_until: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Frees the lease (and its presented mark) if it is still ours.
    async fn release_lease(&self, tenant: &str, owner: &str) -> Result<(), StoreError>;
    /// Replaces both records with `next`, only if the stored connection is
    /// still `(connection_id, version)` of `previous`: the version fence.
    async fn write_fenced(&self, previous: &Connection, next: &Connection) -> Result<(), StoreError>;
    /// Updates status and bookkeeping of the refresh record only, fenced
    /// like [`TokenStore::write_fenced`]; a `reauth_required` connection
    /// leaves the due index.
    async fn update_refresh_state(
        &self,
        previous: &Connection,
        status: ConnectionStatus,
        bookkeeping: &RefreshBookkeeping,
    ) -> Result<(), StoreError>;
    /// Tenants whose active connection's access token expires at or before
    /// `cutoff`, through the due index (never a scan).
    async fn due_tenants(&self, cutoff: DateTime<Utc>) -> Result<Vec<String>, StoreError>;
}
