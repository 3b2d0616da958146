//! DynamoDB adapter of [`TokenStore`].
//!
//! Table: partition key `tenant_id`, sort key `key`. Items per tenant:
//! `docusign_auth`, `docusign_refresh` (the connection), `consent#<sha256 of
//! state>` (pending consents), `proposal#<sha256 of confirmation>` (proposed
//! connections awaiting the admin's confirmation), `lease#refresh` (the refresh lease). The
//! refresh record of an active connection carries `due_shard`/`due_at`, the
//! keys of the sparse global secondary index `due_index`, so the scheduled
//! refresh finds connections by when they fall due without scanning.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Delete, Get, Put, TransactGetItem, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::*;
use crate::clock::{parse_rfc3339, rfc3339};

pub const DUE_INDEX: &str = "due_index";
/// The due index is spread over this many partition values so no single
/// index partition takes every tenant's writes. Changing it needs a backfill.
pub const DUE_SHARDS: u32 = 8;

pub type Item = HashMap<String, AttributeValue>;

pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }
    pub fn client(&self) -> &Client {
        &self.client
    }
    pub fn table(&self) -> &str {
        &self.table
    }
}

fn backend<E: std::error::Error + Send + Sync + 'static>(e: E) -> StoreError {
    StoreError::Backend(Box::new(e))
}

/// The due-index partition of a tenant.
pub fn due_shard(tenant: &str) -> String {
    let digest = Sha256::digest(tenant.as_bytes());
    let n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % DUE_SHARDS;
    format!("due#{n}")
}

pub fn key(tenant: &str, sort: &str) -> Item {
    HashMap::from([
        ("tenant_id".to_owned(), AttributeValue::S(tenant.to_owned())),
        ("key".to_owned(), AttributeValue::S(sort.to_owned())),
    ])
}

// ---- attribute helpers -------------------------------------------------------

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
pub(crate) fn t(v: DateTime<Utc>) -> AttributeValue {
    AttributeValue::S(rfc3339(v))
}
pub(crate) fn b(v: &[u8]) -> AttributeValue {
    AttributeValue::B(Blob::new(v))
}

pub(crate) struct Reader<'a> {
    item: &'a Item,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(item: &'a Item, what: &'static str) -> Self {
        Self { item, what }
    }
    fn corrupt(&self, attr: &str) -> StoreError {
        StoreError::Corrupt(format!("{}: attribute `{attr}` missing or of the wrong type", self.what))
    }
    pub(crate) fn opt_s(&self, attr: &str) -> Option<String> {
        self.item.get(attr).and_then(|v| v.as_s().ok()).cloned()
    }
    pub(crate) fn s(&self, attr: &str) -> Result<String, StoreError> {
        self.opt_s(attr).ok_or_else(|| self.corrupt(attr))
    }
    pub(crate) fn n(&self, attr: &str) -> Result<u64, StoreError> {
        self.item.get(attr).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).ok_or_else(|| self.corrupt(attr))
    }
    pub(crate) fn opt_n(&self, attr: &str) -> Option<u64> {
        self.item.get(attr).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
    }
    pub(crate) fn b(&self, attr: &str) -> Result<Vec<u8>, StoreError> {
        self.item.get(attr).and_then(|v| v.as_b().ok()).map(|b| b.as_ref().to_vec()).ok_or_else(|| self.corrupt(attr))
    }
    pub(crate) fn t(&self, attr: &str) -> Result<DateTime<Utc>, StoreError> {
        self.opt_t(attr).ok_or_else(|| self.corrupt(attr))
    }
    pub(crate) fn opt_t(&self, attr: &str) -> Option<DateTime<Utc>> {
        self.opt_s(attr).as_deref().and_then(parse_rfc3339)
    }
    pub(crate) fn env(&self) -> Result<DocuSignEnvironment, StoreError> {
        DocuSignEnvironment::parse(&self.s("environment")?).ok_or_else(|| self.corrupt("environment"))
    }
}

// ---- records -------------------------------------------------------------------

fn identity_attributes(id: &Identity) -> [(String, AttributeValue); 6] {
    [
        ("account_id".to_owned(), s(&id.account_id)),
        ("account_name".to_owned(), s(&id.account_name)),
        ("base_uri".to_owned(), s(&id.base_uri)),
        ("user_id".to_owned(), s(&id.user_id)),
        ("user_name".to_owned(), s(&id.user_name)),
        ("user_email".to_owned(), s(&id.user_email)),
    ]
}

fn identity_from(r: &Reader<'_>) -> Result<Identity, StoreError> {
    Ok(Identity {
        user_id: r.s("user_id")?,
        user_name: r.s("user_name")?,
        user_email: r.s("user_email")?,
        account_id: r.s("account_id")?,
        account_name: r.s("account_name")?,
        base_uri: r.s("base_uri")?,
    })
}

pub fn auth_item(c: &Connection) -> Item {
    let mut item = key(&c.tenant, AUTH_KEY);
    item.extend([
        ("connection_id".to_owned(), s(&c.connection_id)),
        ("version".to_owned(), n(c.version)),
        ("environment".to_owned(), s(c.environment.as_str())),
        ("access_token".to_owned(), b(&c.access_token)),
        ("access_token_expires_at".to_owned(), t(c.access_token_expires_at)),
        ("connected_at".to_owned(), t(c.connected_at)),
    ]);
    item.extend(identity_attributes(&c.identity));
    item
}

pub fn refresh_item(c: &Connection) -> Item {
    let mut item = key(&c.tenant, REFRESH_KEY);
    item.extend([
        ("connection_id".to_owned(), s(&c.connection_id)),
        ("version".to_owned(), n(c.version)),
        ("environment".to_owned(), s(c.environment.as_str())),
        ("refresh_token".to_owned(), b(&c.refresh_token)),
        ("refresh_token_expires_at".to_owned(), t(c.refresh_token_expires_at)),
        ("status".to_owned(), s(c.status.as_str())),
        ("connected_at".to_owned(), t(c.connected_at)),
        ("last_refreshed_at".to_owned(), t(c.last_refreshed_at)),
        ("refresh_failures".to_owned(), n(c.refresh.failures)),
    ]);
    if let Some(at) = c.refresh.retry_not_before {
        item.insert("retry_not_before".to_owned(), t(at));
    }
    if let Some(e) = &c.refresh.last_error {
        item.insert("last_error".to_owned(), s(e));
    }
    if c.status == ConnectionStatus::Active {
        // Sparse index: only active connections are ever due.
        item.insert("due_shard".to_owned(), s(due_shard(&c.tenant)));
        item.insert("due_at".to_owned(), n(c.access_token_expires_at.timestamp()));
    }
    item
}

pub fn connection_from_items(auth: &Item, refresh: &Item) -> Result<Connection, StoreError> {
    let a = Reader::new(auth, AUTH_KEY);
    let r = Reader::new(refresh, REFRESH_KEY);
    let connection_id = a.s("connection_id")?;
    let version = a.n("version")?;
    if r.s("connection_id")? != connection_id || r.n("version")? != version {
        return Err(StoreError::Conflict);
    }
    Ok(Connection {
        tenant: a.s("tenant_id")?,
        connection_id,
        version,
        environment: a.env()?,
        identity: identity_from(&a)?,
        access_token: a.b("access_token")?,
        access_token_expires_at: a.t("access_token_expires_at")?,
        refresh_token: r.b("refresh_token")?,
        refresh_token_expires_at: r.t("refresh_token_expires_at")?,
        status: ConnectionStatus::parse(&r.s("status")?).ok_or_else(|| StoreError::Corrupt("status".into()))?,
        connected_at: a.t("connected_at")?,
        last_refreshed_at: r.t("last_refreshed_at")?,
        refresh: RefreshBookkeeping {
            failures: r.opt_n("refresh_failures").unwrap_or(0) as u32,
            retry_not_before: r.opt_t("retry_not_before"),
            last_error: r.opt_s("last_error"),
        },
    })
}

fn consent_item(c: &PendingConsent) -> Item {
    let mut item = key(&c.tenant, &format!("{CONSENT_PREFIX}{}", c.state_hash));
    item.extend([
        ("admin".to_owned(), s(&c.admin)),
        ("environment".to_owned(), s(c.environment.as_str())),
        ("verifier".to_owned(), b(&c.verifier)),
        ("created_at".to_owned(), t(c.created_at)),
        ("expires_at".to_owned(), t(c.expires_at)),
        // DynamoDB TTL removes it eventually; the code compares `expires_at`.
        ("ttl".to_owned(), n(c.expires_at.timestamp() + 3600)),
    ]);
    item
}

fn consent_from_item(tenant: &str, state_hash: &str, item: &Item) -> Result<PendingConsent, StoreError> {
    let r = Reader::new(item, "pending consent");
    Ok(PendingConsent {
        tenant: tenant.to_owned(),
        state_hash: state_hash.to_owned(),
        admin: r.s("admin")?,
        environment: r.env()?,
        verifier: r.b("verifier")?,
        created_at: r.t("created_at")?,
        expires_at: r.t("expires_at")?,
    })
}

fn proposal_sort_key(confirmation_hash: &str) -> String {
    format!("{PROPOSAL_PREFIX}{confirmation_hash}")
}

fn proposal_item(p: &ProposedConnection) -> Item {
    let mut item = key(&p.tenant, &proposal_sort_key(&p.confirmation_hash));
    item.extend([
        ("state_hash".to_owned(), s(&p.state_hash)),
        ("admin".to_owned(), s(&p.admin)),
        ("environment".to_owned(), s(p.environment.as_str())),
        ("access_token".to_owned(), b(&p.access_token)),
        ("access_token_expires_at".to_owned(), t(p.access_token_expires_at)),
        ("refresh_token".to_owned(), b(&p.refresh_token)),
        ("refresh_token_expires_at".to_owned(), t(p.refresh_token_expires_at)),
        ("issued_at".to_owned(), t(p.issued_at)),
        ("expires_at".to_owned(), t(p.expires_at)),
        // For the promotion's condition: compared as a number.
        ("expires_ms".to_owned(), n(p.expires_at.timestamp_millis())),
        ("ttl".to_owned(), n(p.expires_at.timestamp() + 3600)),
    ]);
    item.extend(identity_attributes(&p.identity));
    item
}

fn proposal_from_item(tenant: &str, confirmation_hash: &str, item: &Item) -> Result<ProposedConnection, StoreError> {
    let r = Reader::new(item, "proposed connection");
    Ok(ProposedConnection {
        tenant: tenant.to_owned(),
        confirmation_hash: confirmation_hash.to_owned(),
        state_hash: r.s("state_hash")?,
        admin: r.s("admin")?,
        environment: r.env()?,
        identity: identity_from(&r)?,
        access_token: r.b("access_token")?,
        access_token_expires_at: r.t("access_token_expires_at")?,
        refresh_token: r.b("refresh_token")?,
        refresh_token_expires_at: r.t("refresh_token_expires_at")?,
        issued_at: r.t("issued_at")?,
        expires_at: r.t("expires_at")?,
    })
}

impl DynamoStore {
    fn consent_exists(&self, tenant: &str, state_hash: &str) -> TransactWriteItem {
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key(tenant, &format!("{CONSENT_PREFIX}{state_hash}"))))
            .condition_expression("attribute_exists(tenant_id)")
            .build()
            .expect("table, key and condition are set");
        TransactWriteItem::builder().condition_check(check).build()
    }

    pub(crate) fn put(&self, item: Item) -> Put {
        Put::builder().table_name(&self.table).set_item(Some(item)).build().expect("table name and item are set")
    }

    async fn delete_item(&self, tenant: &str, sort: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(tenant, sort)))
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// Every sort key of a tenant that starts with `prefix` (consistent read).
    async fn keys_with_prefix(&self, tenant: &str, prefix: &str) -> Result<Vec<String>, StoreError> {
        let items: Vec<Item> = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("tenant_id = :t AND begins_with(#k, :p)")
            .expression_attribute_names("#k", "key")
            .expression_attribute_values(":t", s(tenant))
            .expression_attribute_values(":p", s(prefix))
            .projection_expression("#k")
            .into_paginator()
            .items()
            .send()
            .collect::<Result<_, _>>()
            .await
            .map_err(backend)?;
        Ok(items.iter().filter_map(|i| i.get("key")?.as_s().ok().cloned()).collect())
    }
}

#[async_trait]
impl TokenStore for DynamoStore {
    async fn put_pending_consent(&self, consent: &PendingConsent) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(consent_item(consent)))
            .condition_expression("attribute_not_exists(tenant_id)")
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn take_pending_consent(
        &self,
        tenant: &str,
        state_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<TakeConsent, StoreError> {
        let sort = format!("{CONSENT_PREFIX}{state_hash}");
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(tenant, &sort)))
            .update_expression("SET used_at = :now REMOVE verifier")
            .condition_expression("attribute_exists(tenant_id) AND attribute_not_exists(used_at)")
            .expression_attribute_values(":now", t(now))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => {
                let item = out.attributes.unwrap_or_default();
                Ok(TakeConsent::Taken(consent_from_item(tenant, state_hash, &item)?))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                let out = self
                    .client
                    .get_item()
                    .table_name(&self.table)
                    .set_key(Some(key(tenant, &sort)))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(backend)?;
                Ok(if out.item.is_some() { TakeConsent::AlreadyUsed } else { TakeConsent::Unknown })
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn get_connection(&self, tenant: &str) -> Result<Option<Connection>, StoreError> {
        let get = |sort: &str| {
            TransactGetItem::builder()
                .get(
                    Get::builder()
                        .table_name(&self.table)
                        .set_key(Some(key(tenant, sort)))
                        .build()
                        .expect("table and key are set"),
                )
                .build()
        };
        let out = self
            .client
            .transact_get_items()
            .transact_items(get(AUTH_KEY))
            .transact_items(get(REFRESH_KEY))
            .send()
            .await
            .map_err(backend)?;
        let responses = out.responses.unwrap_or_default();
        let item = |i: usize| responses.get(i).and_then(|r| r.item.clone()).filter(|m| !m.is_empty());
        match (item(0), item(1)) {
            (Some(auth), Some(refresh)) => connection_from_items(&auth, &refresh).map(Some),
            (None, None) => Ok(None),
            // Both records are only ever written and deleted together.
            _ => Err(StoreError::Corrupt(format!("tenant {tenant} has only one of its two connection records"))),
        }
    }

    async fn put_proposal(&self, proposal: &ProposedConnection) -> Result<(), StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(proposal_item(proposal)))
            .condition_expression("attribute_not_exists(tenant_id)")
            .build()
            .expect("table name and item are set");
        self.client
            .transact_write_items()
            .transact_items(self.consent_exists(&proposal.tenant, &proposal.state_hash))
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await
            .map_err(Self::transaction_error)?;
        Ok(())
    }

    async fn get_proposal(
        &self,
        tenant: &str,
        confirmation_hash: &str,
    ) -> Result<Option<ProposedConnection>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(tenant, &proposal_sort_key(confirmation_hash))))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        out.item.filter(|i| !i.is_empty()).map(|item| proposal_from_item(tenant, confirmation_hash, &item)).transpose()
    }

    async fn promote_proposal(
        &self,
        proposal: &ProposedConnection,
        connection: &Connection,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let used = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(&proposal.tenant, &proposal_sort_key(&proposal.confirmation_hash))))
            .condition_expression("attribute_exists(tenant_id) AND admin = :admin AND expires_ms > :now")
            .expression_attribute_values(":admin", s(&proposal.admin))
            .expression_attribute_values(":now", n(now.timestamp_millis()))
            .build()
            .expect("table, key and condition are set");
        self.client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().delete(used).build())
            .transact_items(self.consent_exists(&proposal.tenant, &proposal.state_hash))
            .transact_items(TransactWriteItem::builder().put(self.put(auth_item(connection))).build())
            .transact_items(TransactWriteItem::builder().put(self.put(refresh_item(connection))).build())
            .send()
            .await
            .map_err(Self::transaction_error)?;
        Ok(())
    }

    async fn delete_connection(&self, tenant: &str) -> Result<(), StoreError> {
        // Consents first (see the trait): a confirmation fenced on them
        // can then never land after the records are gone.
        let mut consents = self.keys_with_prefix(tenant, CONSENT_PREFIX).await?;
        consents.extend(self.keys_with_prefix(tenant, PROPOSAL_PREFIX).await?);
        for sort in consents {
            self.delete_item(tenant, &sort).await?;
        }
        let delete = |sort: &str| {
            TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name(&self.table)
                        .set_key(Some(key(tenant, sort)))
                        .build()
                        .expect("table and key are set"),
                )
                .build()
        };
        self.client
            .transact_write_items()
            .transact_items(delete(AUTH_KEY))
            .transact_items(delete(REFRESH_KEY))
            .send()
            .await
            .map_err(backend)?;
        self.delete_item(tenant, LEASE_KEY).await
    }

    async fn acquire_lease(
        &self,
        tenant: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<LeaseAcquire, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(tenant, LEASE_KEY)))
            .update_expression("SET #owner = :me, lease_until = :until, #ttl = :ttl")
            .condition_expression("attribute_not_exists(#owner) OR lease_until < :now")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":me", s(owner))
            .expression_attribute_values(":until", n(until.timestamp_millis()))
            .expression_attribute_values(":now", n(now.timestamp_millis()))
            .expression_attribute_values(":ttl", n(until.timestamp() + 86_400))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => {
                let item = out.attributes.unwrap_or_default();
                let presented = Reader::new(&item, "lease").opt_s("presented").and_then(|p| {
                    let (cid, v) = p.rsplit_once('#')?;
                    Some(PresentedMark { connection_id: cid.to_owned(), version: v.parse().ok()? })
                });
                Ok(LeaseAcquire::Acquired { presented })
            }
            Err(e) if is_condition_failure(&e) => Ok(LeaseAcquire::Held),
            Err(e) => Err(backend(e)),
        }
    }

    async fn mark_presented(
        &self,
        tenant: &str,
        owner: &str,
        mark: &PresentedMark,
        must_hold_until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(tenant, LEASE_KEY)))
            .update_expression("SET presented = :p")
            .condition_expression("#owner = :me AND lease_until > :hold")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":me", s(owner))
            .expression_attribute_values(":hold", n(must_hold_until.timestamp_millis()))
            .expression_attribute_values(":p", s(format!("{}#{}", mark.connection_id, mark.version)))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Err(StoreError::Conflict),
            Err(e) => Err(backend(e)),
        }
    }

    async fn release_lease(&self, tenant: &str, owner: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(tenant, LEASE_KEY)))
            .update_expression("REMOVE #owner, lease_until, presented")
            .condition_expression("#owner = :me")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":me", s(owner))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Expired and taken by someone else, or removed by a disconnect.
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }

    async fn write_fenced(&self, previous: &Connection, next: &Connection) -> Result<(), StoreError> {
        self.client
            .transact_write_items()
            .transact_items(self.fenced_put(auth_item(next), previous))
            .transact_items(self.fenced_put(refresh_item(next), previous))
            .send()
            .await
            .map_err(Self::transaction_error)?;
        Ok(())
    }

    async fn update_refresh_state(
        &self,
        previous: &Connection,
        status: ConnectionStatus,
        bookkeeping: &RefreshBookkeeping,
    ) -> Result<(), StoreError> {
        let mut next = previous.clone();
        next.status = status;
        next.refresh = bookkeeping.clone();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(refresh_item(&next)))
            .condition_expression("connection_id = :cid AND version = :v")
            .expression_attribute_values(":cid", s(&previous.connection_id))
            .expression_attribute_values(":v", n(previous.version))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Err(StoreError::Conflict),
            Err(e) => Err(backend(e)),
        }
    }

    async fn due_tenants(&self, cutoff: DateTime<Utc>) -> Result<Vec<String>, StoreError> {
        let mut tenants = Vec::new();
        for shard in 0..DUE_SHARDS {
            let items: Vec<Item> = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(DUE_INDEX)
                .key_condition_expression("due_shard = :s AND due_at <= :cutoff")
                .expression_attribute_values(":s", s(format!("due#{shard}")))
                .expression_attribute_values(":cutoff", n(cutoff.timestamp()))
                .into_paginator()
                .items()
                .send()
                .collect::<Result<_, _>>()
                .await
                .map_err(backend)?;
            tenants.extend(items.iter().filter_map(|i| i.get("tenant_id")?.as_s().ok().cloned()));
        }
        Ok(tenants)
    }
}

fn is_condition_failure<E, R>(e: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|s| s.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException" || c == "TransactionCanceledException")
}

impl DynamoStore {
    fn fenced_put(&self, item: Item, previous: &Connection) -> TransactWriteItem {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("connection_id = :cid AND version = :v")
            .expression_attribute_values(":cid", s(&previous.connection_id))
            .expression_attribute_values(":v", n(previous.version))
            .build()
            .expect("table name and item are set");
        TransactWriteItem::builder().put(put).build()
    }

    /// The transaction was cancelled by a condition (fence), or failed otherwise.
    fn transaction_error(
        e: aws_sdk_dynamodb::error::SdkError<
            aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
        >,
    ) -> StoreError {
        let fenced = e.as_service_error().is_some_and(|s| match s {
            aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c) => c
                .cancellation_reasons()
                .iter()
                .any(|r| r.code() == Some("ConditionalCheckFailed")),
            _ => false,
        });
        if fenced {
            StoreError::Conflict
        } else {
            backend(e)
        }
    }
}

// ---- idempotency records -----------------------------------------------------------

mod idempotency {
    use super::*;
    use crate::store::idempotency::{Claim, IdempotencyKey, IdempotencyStore};

    /// Sort-key prefix of idempotency records.
    const IDEMPOTENCY_PREFIX: &str = "idem#";

    fn sort_key(key: &IdempotencyKey) -> String {
        format!("{IDEMPOTENCY_PREFIX}{}", key.key_hash)
    }

    #[async_trait]
    impl IdempotencyStore for DynamoStore {
        async fn claim(
            &self,
            key: &IdempotencyKey,
            now: DateTime<Utc>,
            holder_until: DateTime<Utc>,
            expires: DateTime<Utc>,
        ) -> Result<Claim, StoreError> {
            let mut item = super::key(&key.tenant, &sort_key(key));
            item.extend([
                ("fingerprint".to_owned(), s(&key.fingerprint)),
                ("state".to_owned(), s("in_progress")),
                ("holder_until".to_owned(), n(holder_until.timestamp_millis())),
                ("expires_at".to_owned(), n(expires.timestamp_millis())),
                ("ttl".to_owned(), n(expires.timestamp() + 3600)),
            ]);
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(
                    "attribute_not_exists(tenant_id) OR expires_at < :now \
                     OR (#state = :progress AND holder_until < :now AND fingerprint = :fp)",
                )
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":now", n(now.timestamp_millis()))
                .expression_attribute_values(":progress", s("in_progress"))
                .expression_attribute_values(":fp", s(&key.fingerprint))
                .send()
                .await;
            match result {
                Ok(_) => Ok(Claim::Claimed),
                Err(e) if is_condition_failure(&e) => {
                    let out = self
                        .client
                        .get_item()
                        .table_name(&self.table)
                        .set_key(Some(super::key(&key.tenant, &sort_key(key))))
                        .consistent_read(true)
                        .send()
                        .await
                        .map_err(backend)?;
                    let Some(item) = out.item else { return Ok(Claim::InProgress) };
                    let r = Reader::new(&item, "idempotency record");
                    if r.s("fingerprint")? != key.fingerprint {
                        return Ok(Claim::Mismatch);
                    }
                    if r.s("state")? == "done" {
                        return Ok(Claim::Completed { status: r.n("status")? as u16, body: r.s("response")? });
                    }
                    Ok(Claim::InProgress)
                }
                Err(e) => Err(backend(e)),
            }
        }

        async fn complete(&self, key: &IdempotencyKey, status: u16, body: &str) -> Result<(), StoreError> {
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(super::key(&key.tenant, &sort_key(key))))
                .update_expression("SET #state = :done, #status = :status, #response = :body REMOVE holder_until")
                .condition_expression("fingerprint = :fp")
                .expression_attribute_names("#state", "state")
                .expression_attribute_names("#status", "status")
                .expression_attribute_names("#response", "response")
                .expression_attribute_values(":done", s("done"))
                .expression_attribute_values(":status", n(status))
                .expression_attribute_values(":body", s(body))
                .expression_attribute_values(":fp", s(&key.fingerprint))
                .send()
                .await
                .map_err(backend)?;
            Ok(())
        }

        async fn abandon(&self, key: &IdempotencyKey) -> Result<(), StoreError> {
            // Expire it rather than delete it: send-envelope needs no
            // DeleteItem permission, and `claim` takes an expired record.
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(super::key(&key.tenant, &sort_key(key))))
                .update_expression("SET expires_at = :gone REMOVE holder_until")
                .condition_expression("fingerprint = :fp AND #state = :progress")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":gone", n(0))
                .expression_attribute_values(":fp", s(&key.fingerprint))
                .expression_attribute_values(":progress", s("in_progress"))
                .send()
                .await;
            match result {
                Ok(_) => Ok(()),
                Err(e) if is_condition_failure(&e) => Ok(()),
                Err(e) => Err(backend(e)),
            }
        }
    }
}

#[cfg(test)]
mod mapping_tests {
    use super::*;
    use crate::store::contract::sample_connection;

    #[test]
    fn a_connection_survives_its_two_items() {
        let mut c = sample_connection("t-1", "cid", 3, 3600);
        c.refresh = RefreshBookkeeping {
            failures: 2,
            retry_not_before: Some(c.connected_at),
            last_error: Some("upstream_503".into()),
        };
        let (auth, refresh) = (auth_item(&c), refresh_item(&c));
        assert_eq!(connection_from_items(&auth, &refresh).unwrap(), c);
        // Only the refresh record carries the refresh token, and only the auth record the access token.
        assert!(auth.contains_key("access_token") && !auth.contains_key("refresh_token"));
        assert!(refresh.contains_key("refresh_token") && !refresh.contains_key("access_token"));
        // An active connection is in the due index; a reauth_required one is not.
        assert_eq!(refresh["due_at"], n(c.access_token_expires_at.timestamp()));
        c.status = ConnectionStatus::ReauthRequired;
        assert!(!refresh_item(&c).contains_key("due_shard"));
        // Records of two versions are not one connection.
        let newer = sample_connection("t-1", "cid", 4, 3600);
        assert!(matches!(connection_from_items(&auth, &refresh_item(&newer)), Err(StoreError::Conflict)));
    }

    #[test]
    fn consents_and_proposals_survive_their_items() {
        let c = sample_connection("t-2", "cid", 1, 3600);
        let consent = PendingConsent {
            tenant: "t-2".into(),
            state_hash: "s".into(),
            admin: "admin-1".into(),
            environment: DocuSignEnvironment::Production,
            verifier: vec![1, 2],
            created_at: c.connected_at,
            expires_at: c.access_token_expires_at,
        };
        assert_eq!(consent_from_item("t-2", "s", &consent_item(&consent)).unwrap(), consent);
        let proposal = ProposedConnection {
            tenant: "t-2".into(),
            confirmation_hash: "h".into(),
            state_hash: "s".into(),
            admin: "admin-1".into(),
            environment: DocuSignEnvironment::Sandbox,
            identity: c.identity.clone(),
            access_token: c.access_token.clone(),
            access_token_expires_at: c.access_token_expires_at,
            refresh_token: c.refresh_token.clone(),
            refresh_token_expires_at: c.refresh_token_expires_at,
            issued_at: c.connected_at,
            expires_at: c.connected_at,
        };
        let item = proposal_item(&proposal);
        assert_eq!(item["key"], s("proposal#h"));
        assert_eq!(proposal_from_item("t-2", "h", &item).unwrap(), proposal);
    }

    #[test]
    fn a_malformed_item_names_what_is_wrong() {
        let c = sample_connection("t-3", "cid", 1, 3600);
        let mut auth = auth_item(&c);
        auth.remove("base_uri");
        let err = connection_from_items(&auth, &refresh_item(&c)).unwrap_err();
        assert!(err.to_string().contains("base_uri"), "{err}");
    }
}
