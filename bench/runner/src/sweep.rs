//! The scheduled sweep over N due tenants, in process (`shared::sweep::sweep`
//! on an app built like token-refresh's, whose AWS clients count their
//! calls), beside a baseline: the minimal refresh (KMS Decrypt, DocuSign
//! token grant, two KMS Encrypts, one TransactWriteItems) made directly, 16
//! at a time like the sweep, on separately seeded tenants of the same table.
//!
//! Seeding: each due tenant gets a real consent from the simulator's
//! ordinary code flow (`/oauth/auth` approved + `/oauth/token`), its two
//! tokens encrypted with the real KMS adapter under the tenant's context,
//! and both records written in the shared crate's format (`auth_item`,
//! `refresh_item`) with BatchWriteItem. Tenants that are never due during
//! the run (the due-finding measurement's extra 10x) carry placeholder
//! ciphertexts: nothing reads them.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use chrono::Utc;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use integration_tests::{random_name, TestEnv};
use secrecy::{ExposeSecret, SecretString};
use shared::cipher::{Binding, KmsCipher, Record, TokenCipher};
use shared::store::dynamo::{auth_item, refresh_item, DynamoStore, DUE_INDEX, DUE_SHARDS};
use shared::store::{Connection, TokenStore};
use shared::sweep::{CONCURRENCY, REFRESH_WINDOW_HOURS};

use crate::count::{Calls, Counter};
use crate::world::{
    counting_app, delete_table, median, placeholder_connection, progress, real_connection, write_connections,
    SimClient, R,
};

#[derive(Debug)]
pub struct SweepRun {
    pub due: usize,
    pub wall: Duration,
    pub summary: shared::sweep::Summary,
    pub calls: Calls,
    pub docusign_refresh_grants: u64,
    pub baseline: Baseline,
    pub due_finding: Option<DueFinding>,
    pub seed_time: Duration,
}

#[derive(Debug)]
pub struct Baseline {
    pub tenants: usize,
    pub wall: Duration,
    pub calls: Calls,
}

#[derive(Debug)]
pub struct DueFinding {
    pub due: usize,
    pub not_due: usize,
    /// `TokenStore::due_tenants`, median of a few calls (ms): due only, then with the not-due tenants added.
    pub due_only_ms: f64,
    pub with_not_due_ms: f64,
    /// Queries sent and index items read (sum of ScannedCount) per due_tenants call.
    pub due_only_queries: u64,
    pub with_not_due_queries: u64,
    pub due_only_items_read: u64,
    pub with_not_due_items_read: u64,
    /// The scan that the index avoids, on the same tables (ms, items read).
    pub scan_due_only_ms: f64,
    pub scan_with_not_due_ms: f64,
    pub scan_due_only_items_read: u64,
    pub scan_with_not_due_items_read: u64,
}

pub struct Plan {
    pub due: usize,
    /// Baseline tenants (refreshed directly).
    pub baseline: usize,
    /// Not-due tenants added for the due-finding measurement (0: none).
    pub not_due: usize,
    pub due_finding_reps: usize,
}

pub async fn run(plan: &Plan) -> R<SweepRun> {
    let env = TestEnv::start().await;
    let result = run_in(&env, plan).await;
    delete_table(&env).await;
    result
}

async fn run_in(env: &TestEnv, plan: &Plan) -> R<SweepRun> {
    let n = plan.due;
    let template_tenant = random_name("bench-template");
    env.connect(&template_tenant).await;
    let template = env.app.store.get_connection(&template_tenant).await?.ok_or("template tenant not connected")?;
    let sim = SimClient::new(env.sim.base_url());
    let cipher = env.kms_cipher().await;
    let now = Utc::now();

    // Due: access tokens expiring in 1 hour (the window is 4). Baseline
    // tenants: expiring in 7 hours, so the sweep leaves them alone.
    let seed_started = Instant::now();
    progress(format!(
        "sweep {n}: seeding {n} due tenants and {} baseline tenants (simulator code flow + KMS)",
        plan.baseline
    ));
    let mut due = seed_real(&sim, &cipher, &template, n, "due", now + chrono::Duration::hours(1)).await?;
    let baseline_connections =
        seed_real(&sim, &cipher, &template, plan.baseline, "base", now + chrono::Duration::hours(7)).await?;
    write_connections(&env.dynamo, &env.table, &due).await?;
    write_connections(&env.dynamo, &env.table, &baseline_connections).await?;
    due.clear();

    let counter = Counter::default();
    let app = counting_app(env, &counter)?;
    let cutoff = Utc::now() + chrono::Duration::hours(REFRESH_WINDOW_HOURS);

    let due_finding = if plan.not_due > 0 {
        progress(format!("sweep {n}: due-finding without, then with {} not-due tenants", plan.not_due));
        let store = DynamoStore::new(crate::count::dynamodb(&env.dynamo, &counter), &env.table);
        let (due_only_ms, due_only_queries, found) = time_due(&store, &counter, cutoff, plan.due_finding_reps).await?;
        let due_only_items_read = index_items_read(&env.dynamo, &env.table, cutoff).await?;
        let (scan_due_only_ms, scan_due_only_items_read) = scan_due(&env.dynamo, &env.table, cutoff).await?;
        // Not due: active connections in the index, expiring between 5 and 8 hours from now.
        let not_due: Vec<Connection> = (0..plan.not_due)
            .map(|i| {
                let at = now + chrono::Duration::minutes(300 + (i % 180) as i64);
                placeholder_connection(&template, format!("bench-notdue-{i:07}-{}", random_name("t")), at)
            })
            .collect();
        write_connections(&env.dynamo, &env.table, &not_due).await?;
        let (with_not_due_ms, with_not_due_queries, found_with) =
            time_due(&store, &counter, cutoff, plan.due_finding_reps).await?;
        let with_not_due_items_read = index_items_read(&env.dynamo, &env.table, cutoff).await?;
        let (scan_with_not_due_ms, scan_with_not_due_items_read) = scan_due(&env.dynamo, &env.table, cutoff).await?;
        if found != n || found_with != n {
            return Err(format!("due_tenants found {found} then {found_with}, expected {n}").into());
        }
        Some(DueFinding {
            due: n,
            not_due: plan.not_due,
            due_only_ms,
            with_not_due_ms,
            due_only_queries,
            with_not_due_queries,
            due_only_items_read,
            with_not_due_items_read,
            scan_due_only_ms,
            scan_with_not_due_ms,
            scan_due_only_items_read,
            scan_with_not_due_items_read,
        })
    } else {
        None
    };
    let seed_time = seed_started.elapsed();

    progress(format!("sweep {n}: sweeping"));
    let grants_before = env.sim.stats().refresh_grants_ok;
    let before = counter.snapshot();
    let started = Instant::now();
    let summary = shared::sweep::sweep(&app, tokio::time::Instant::now() + Duration::from_secs(3 * 3600)).await?;
    let wall = started.elapsed();
    let calls = counter.snapshot().since(&before);
    let docusign_refresh_grants = env.sim.stats().refresh_grants_ok - grants_before;
    if summary.due != n || summary.refreshed != n {
        return Err(format!("sweep over {n} due tenants: {summary:?}").into());
    }

    progress(format!("sweep {n}: baseline, {} direct refreshes", plan.baseline));
    let kms = KmsCipher::new(crate::count::kms(&env.kms, &counter), env.key_id.clone());
    let dynamo = crate::count::dynamodb(&env.dynamo, &counter);
    let before = counter.snapshot();
    let started = Instant::now();
    stream::iter(baseline_connections.iter())
        .map(|c| minimal_refresh(c, &sim, &kms, &dynamo, &env.table))
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    let baseline =
        Baseline { tenants: plan.baseline, wall: started.elapsed(), calls: counter.snapshot().since(&before) };

    Ok(SweepRun { due: n, wall, summary, calls, docusign_refresh_grants, baseline, due_finding, seed_time })
}

async fn seed_real(
    sim: &SimClient,
    cipher: &KmsCipher,
    template: &Connection,
    count: usize,
    label: &str,
    expires: chrono::DateTime<Utc>,
) -> R<Vec<Connection>> {
    stream::iter(0..count)
        .map(|i| real_connection(template, format!("bench-{label}-{i:07}-{}", random_name("t")), sim, cipher, expires))
        .buffer_unordered(16)
        .try_collect()
        .await
}

/// The irreducible work of one refresh, made directly.
async fn minimal_refresh(
    c: &Connection,
    sim: &SimClient,
    kms: &KmsCipher,
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
) -> R<()> {
    let refresh_token =
        kms.decrypt(&Binding { tenant: &c.tenant, record: Record::RefreshToken }, &c.refresh_token).await?;
    let (access, refresh) = sim.refresh(refresh_token.expose_secret()).await?;
    let mut next = c.clone();
    next.version += 1;
    next.access_token =
        kms.encrypt(&Binding { tenant: &c.tenant, record: Record::AccessToken }, &SecretString::from(access)).await?;
    next.refresh_token =
        kms.encrypt(&Binding { tenant: &c.tenant, record: Record::RefreshToken }, &SecretString::from(refresh)).await?;
    next.access_token_expires_at = Utc::now() + chrono::Duration::hours(8);
    let put = |item| {
        TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(table)
                    .set_item(Some(item))
                    .condition_expression("connection_id = :cid AND version = :v")
                    .expression_attribute_values(":cid", AttributeValue::S(c.connection_id.clone()))
                    .expression_attribute_values(":v", AttributeValue::N(c.version.to_string()))
                    .build()
                    .unwrap(),
            )
            .build()
    };
    dynamo
        .transact_write_items()
        .transact_items(put(auth_item(&next)))
        .transact_items(put(refresh_item(&next)))
        .send()
        .await?;
    Ok(())
}

/// Median time of `reps` calls of `TokenStore::due_tenants`, the queries
/// one call sends, and the tenants it finds.
async fn time_due(
    store: &DynamoStore,
    counter: &Counter,
    cutoff: chrono::DateTime<Utc>,
    reps: usize,
) -> R<(f64, u64, usize)> {
    let mut times = Vec::new();
    let mut found = 0;
    let before = counter.snapshot();
    for _ in 0..reps {
        let t = Instant::now();
        found = store.due_tenants(cutoff).await?.len();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let queries = counter.snapshot().since(&before).op("dynamodb", "Query") / reps as u64;
    Ok((median(&mut times), queries, found))
}

/// The index items the due queries read (DynamoDB's ScannedCount: what a
/// query costs and what its time grows with), summed over the 8 shards.
async fn index_items_read(dynamo: &aws_sdk_dynamodb::Client, table: &str, cutoff: chrono::DateTime<Utc>) -> R<u64> {
    let mut read = 0u64;
    for shard in 0..DUE_SHARDS {
        let mut start = None;
        loop {
            let out = dynamo
                .query()
                .table_name(table)
                .index_name(DUE_INDEX)
                .key_condition_expression("due_shard = :s AND due_at <= :cutoff")
                .expression_attribute_values(":s", AttributeValue::S(format!("due#{shard}")))
                .expression_attribute_values(":cutoff", AttributeValue::N(cutoff.timestamp().to_string()))
                .set_exclusive_start_key(start)
                .send()
                .await?;
            read += out.scanned_count().max(0) as u64;
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
    }
    Ok(read)
}

/// What finding due tenants costs without the index: a filtered scan.
async fn scan_due(dynamo: &aws_sdk_dynamodb::Client, table: &str, cutoff: chrono::DateTime<Utc>) -> R<(f64, u64)> {
    let started = Instant::now();
    let mut read = 0u64;
    let mut start = None;
    loop {
        let out = dynamo
            .scan()
            .table_name(table)
            .filter_expression("attribute_exists(due_shard) AND due_at <= :cutoff")
            .expression_attribute_values(":cutoff", AttributeValue::N(cutoff.timestamp().to_string()))
            .projection_expression("tenant_id")
            .set_exclusive_start_key(start)
            .send()
            .await?;
        read += out.scanned_count().max(0) as u64;
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => break,
        }
    }
    Ok((started.elapsed().as_secs_f64() * 1000.0, read))
}
