//! In-memory adapter of [`TokenStore`] and [`IdempotencyStore`], with the
//! same conditions as the DynamoDB adapter (fences, lease, single-use
//! consents and claims), for millisecond tests of the logic above it. The
//! same contract suite ([`super::contract`]) runs against both.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::idempotency::{Claim, IdempotencyKey, IdempotencyStore};
use super::*;

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The `docusign_auth` record of each tenant (its auth-side fields count).
    auth: HashMap<String, Connection>,
    /// The `docusign_refresh` record of each tenant (its refresh-side fields count).
    refresh: HashMap<String, Connection>,
    /// (tenant, state hash) → the consent and whether it was used.
    consents: HashMap<(String, String), (PendingConsent, bool)>,
    /// (tenant, confirmation hash) → proposal.
    proposals: HashMap<(String, String), ProposedConnection>,
    leases: HashMap<String, Lease>,
    /// (tenant, key hash) → record.
    idempotency: HashMap<(String, String), Idem>,
}

#[derive(Default)]
struct Lease {
    owner: Option<String>,
    until: Option<DateTime<Utc>>,
    presented: Option<PresentedMark>,
}

struct Idem {
    fingerprint: String,
    done: Option<(u16, String)>,
    holder_until: Option<DateTime<Utc>>,
    expires: DateTime<Utc>,
}

fn fenced(record: Option<&Connection>, previous: &Connection) -> bool {
    record.is_some_and(|r| r.connection_id == previous.connection_id && r.version == previous.version)
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panicking test must not hide the state from the next assertion.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tests only: every item key of a tenant, as the DynamoDB adapter names them.
    pub fn keys_of(&self, tenant: &str) -> Vec<String> {
        let inner = self.lock();
        let mut keys = Vec::new();
        if inner.auth.contains_key(tenant) {
            keys.push(AUTH_KEY.to_owned());
        }
        if inner.refresh.contains_key(tenant) {
            keys.push(REFRESH_KEY.to_owned());
        }
        keys.extend(inner.consents.keys().filter(|(t, _)| t == tenant).map(|(_, h)| format!("{CONSENT_PREFIX}{h}")));
        keys.extend(inner.proposals.keys().filter(|(t, _)| t == tenant).map(|(_, h)| format!("{PROPOSAL_PREFIX}{h}")));
        if inner.leases.contains_key(tenant) {
            keys.push(LEASE_KEY.to_owned());
        }
        keys.sort();
        keys
    }
}

#[async_trait]
impl TokenStore for MemoryStore {
    async fn put_pending_consent(&self, consent: &PendingConsent) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let key = (consent.tenant.clone(), consent.state_hash.clone());
        if inner.consents.contains_key(&key) {
            return Err(StoreError::Conflict);
        }
        inner.consents.insert(key, (consent.clone(), false));
        Ok(())
    }

    async fn take_pending_consent(
        &self,
        tenant: &str,
        state_hash: &str,
        _now: DateTime<Utc>,
    ) -> Result<TakeConsent, StoreError> {
        let mut inner = self.lock();
        Ok(match inner.consents.get_mut(&(tenant.to_owned(), state_hash.to_owned())) {
            None => TakeConsent::Unknown,
            Some((_, true)) => TakeConsent::AlreadyUsed,
            Some((consent, used)) => {
                *used = true;
                let taken = consent.clone();
                // Used consents keep no verifier, as in DynamoDB.
                consent.verifier.clear();
                TakeConsent::Taken(taken)
            }
        })
    }

    async fn get_connection(&self, tenant: &str) -> Result<Option<Connection>, StoreError> {
        let inner = self.lock();
        match (inner.auth.get(tenant), inner.refresh.get(tenant)) {
            (None, None) => Ok(None),
            (Some(a), Some(r)) => {
                if a.connection_id != r.connection_id || a.version != r.version {
                    return Err(StoreError::Conflict);
                }
                Ok(Some(Connection {
                    refresh_token: r.refresh_token.clone(),
                    refresh_token_expires_at: r.refresh_token_expires_at,
                    status: r.status,
                    last_refreshed_at: r.last_refreshed_at,
                    refresh: r.refresh.clone(),
                    ..a.clone()
                }))
            }
            _ => Err(StoreError::Corrupt(format!("tenant {tenant} has only one of its two connection records"))),
        }
    }

    async fn put_proposal(&self, proposal: &ProposedConnection) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let key = (proposal.tenant.clone(), proposal.confirmation_hash.clone());
        let consent = (proposal.tenant.clone(), proposal.state_hash.clone());
        if !inner.consents.contains_key(&consent) || inner.proposals.contains_key(&key) {
            return Err(StoreError::Conflict);
        }
        inner.proposals.insert(key, proposal.clone());
        Ok(())
    }

    async fn get_proposal(
        &self,
        tenant: &str,
        confirmation_hash: &str,
    ) -> Result<Option<ProposedConnection>, StoreError> {
        Ok(self.lock().proposals.get(&(tenant.to_owned(), confirmation_hash.to_owned())).cloned())
    }

    async fn promote_proposal(
        &self,
        proposal: &ProposedConnection,
        connection: &Connection,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let key = (proposal.tenant.clone(), proposal.confirmation_hash.clone());
        let usable = inner.proposals.get(&key).is_some_and(|p| p.admin == proposal.admin && p.expires_at > now)
            && inner.consents.contains_key(&(proposal.tenant.clone(), proposal.state_hash.clone()));
        if !usable {
            return Err(StoreError::Conflict);
        }
        inner.proposals.remove(&key);
        inner.auth.insert(connection.tenant.clone(), connection.clone());
        inner.refresh.insert(connection.tenant.clone(), connection.clone());
        Ok(())
    }

    async fn delete_connection(&self, tenant: &str) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.consents.retain(|(t, _), _| t != tenant);
        inner.proposals.retain(|(t, _), _| t != tenant);
        inner.auth.remove(tenant);
        inner.refresh.remove(tenant);
        inner.leases.remove(tenant);
        Ok(())
    }

    async fn acquire_lease(
        &self,
        tenant: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<LeaseAcquire, StoreError> {
        let mut inner = self.lock();
        let lease = inner.leases.entry(tenant.to_owned()).or_default();
        let free = lease.owner.is_none() || lease.until.is_some_and(|u| u < now);
        if !free {
            return Ok(LeaseAcquire::Held);
        }
        lease.owner = Some(owner.to_owned());
        lease.until = Some(until);
        Ok(LeaseAcquire::Acquired { presented: lease.presented.clone() })
    }

    async fn mark_presented(
        &self,
        tenant: &str,
        owner: &str,
        mark: &PresentedMark,
        must_hold_until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        match inner.leases.get_mut(tenant) {
            Some(lease)
                if lease.owner.as_deref() == Some(owner) && lease.until.is_some_and(|u| u > must_hold_until) =>
            {
                lease.presented = Some(mark.clone());
                Ok(())
            }
            _ => Err(StoreError::Conflict),
        }
    }

    async fn release_lease(&self, tenant: &str, owner: &str) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if let Some(lease) = inner.leases.get_mut(tenant) {
            if lease.owner.as_deref() == Some(owner) {
                *lease = Lease::default();
            }
        }
        Ok(())
    }

    async fn write_fenced(&self, previous: &Connection, next: &Connection) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let tenant = &previous.tenant;
        if !fenced(inner.auth.get(tenant), previous) || !fenced(inner.refresh.get(tenant), previous) {
            return Err(StoreError::Conflict);
        }
        inner.auth.insert(tenant.clone(), next.clone());
        inner.refresh.insert(tenant.clone(), next.clone());
        Ok(())
    }

    async fn update_refresh_state(
        &self,
        previous: &Connection,
        status: ConnectionStatus,
        bookkeeping: &RefreshBookkeeping,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if !fenced(inner.refresh.get(&previous.tenant), previous) {
            return Err(StoreError::Conflict);
        }
        let mut next = previous.clone();
        next.status = status;
        next.refresh = bookkeeping.clone();
        inner.refresh.insert(previous.tenant.clone(), next);
        Ok(())
    }

    async fn due_tenants(&self, cutoff: DateTime<Utc>) -> Result<Vec<String>, StoreError> {
        let inner = self.lock();
        let mut due: Vec<String> = inner
            .refresh
            .values()
            .filter(|r| {
                r.status == ConnectionStatus::Active && r.access_token_expires_at.timestamp() <= cutoff.timestamp()
            })
            .map(|r| r.tenant.clone())
            .collect();
        due.sort();
        Ok(due)
    }
}

#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn claim(
        &self,
        key: &IdempotencyKey,
        now: DateTime<Utc>,
        holder_until: DateTime<Utc>,
        expires: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        let mut inner = self.lock();
        let id = (key.tenant.clone(), key.key_hash.clone());
        let takeable = match inner.idempotency.get(&id) {
            None => true,
            Some(r) => {
                r.expires < now
                    || (r.done.is_none() && r.holder_until.is_some_and(|h| h < now) && r.fingerprint == key.fingerprint)
            }
        };
        if takeable {
            let record =
                Idem { fingerprint: key.fingerprint.clone(), done: None, holder_until: Some(holder_until), expires };
            inner.idempotency.insert(id, record);
            return Ok(Claim::Claimed);
        }
        let r = &inner.idempotency[&id];
        Ok(if r.fingerprint != key.fingerprint {
            Claim::Mismatch
        } else if let Some((status, body)) = &r.done {
            Claim::Completed { status: *status, body: body.clone() }
        } else {
            Claim::InProgress
        })
    }

    async fn complete(&self, key: &IdempotencyKey, status: u16, body: &str) -> Result<(), StoreError> {
        let mut inner = self.lock();
        match inner.idempotency.get_mut(&(key.tenant.clone(), key.key_hash.clone())) {
            Some(r) if r.fingerprint == key.fingerprint => {
                r.done = Some((status, body.to_owned()));
                r.holder_until = None;
                Ok(())
            }
            _ => Err(StoreError::Conflict),
        }
    }

    async fn abandon(&self, key: &IdempotencyKey) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if let Some(r) = inner.idempotency.get_mut(&(key.tenant.clone(), key.key_hash.clone())) {
            if r.fingerprint == key.fingerprint && r.done.is_none() {
                r.expires = DateTime::<Utc>::UNIX_EPOCH;
                r.holder_until = None;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::contract;
    use super::MemoryStore;

    #[tokio::test]
    async fn the_memory_store_keeps_the_store_contract() {
        contract::run_all(&MemoryStore::new(), &MemoryStore::new(), "memory").await;
    }
}
