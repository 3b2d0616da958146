//! Warm latency through the function binaries and the Runtime API, against
//! moto and the simulator, beside the same DynamoDB / KMS / DocuSign calls
//! made directly from this process. Samples alternate (ours, direct, ours,
//! ...) so both see the same moments of a noisy machine.

use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{Get, TransactGetItem};
use aws_sdk_kms::primitives::Blob;
use integration_tests::{user_token, Call, Route};
use shared::store::dynamo::key;
use shared::store::{AUTH_KEY, REFRESH_KEY};

use crate::count::{Calls, Counter};
use crate::runtime::FunctionProcess;
use crate::world::{http_event, progress, status_of, World, R};

#[derive(Debug, Default)]
pub struct Samples {
    pub ours_ms: Vec<f64>,
    pub direct_ms: Vec<f64>,
}

#[derive(Debug)]
pub struct Latency {
    pub connection: Samples,
    pub envelopes: Samples,
    /// AWS calls of one `GET /docusign/connection` and one send, in process.
    pub connection_calls: Calls,
    pub send_calls: Calls,
    pub calls_per_request_samples: u64,
}

struct Direct {
    dynamo: aws_sdk_dynamodb::Client,
    kms: aws_sdk_kms::Client,
    http: reqwest::Client,
    table: String,
    tenant: String,
    body: String,
}

impl Direct {
    async fn transact_get(&self) -> R<aws_sdk_dynamodb::operation::transact_get_items::TransactGetItemsOutput> {
        let get = |sort: &str| {
            TransactGetItem::builder()
                .get(Get::builder().table_name(&self.table).set_key(Some(key(&self.tenant, sort))).build().unwrap())
                .build()
        };
        Ok(self
            .dynamo
            .transact_get_items()
            .transact_items(get(AUTH_KEY))
            .transact_items(get(REFRESH_KEY))
            .send()
            .await?)
    }

    /// What `GET /docusign/connection` needs from AWS: both records.
    async fn connection(&self) -> R<()> {
        let out = self.transact_get().await?;
        if out.responses().first().and_then(|r| r.item()).is_none() {
            return Err("direct read found no connection".into());
        }
        Ok(())
    }

    /// What a send needs: both records, one KMS Decrypt of the access token,
    /// and DocuSign's envelope call.
    async fn send(&self) -> R<()> {
        let out = self.transact_get().await?;
        let auth = out.responses().first().and_then(|r| r.item()).ok_or("direct read found no connection")?;
        let s = |name: &str| auth.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        let ciphertext = auth.get("access_token").and_then(|v| v.as_b().ok()).ok_or("no access_token")?;
        let plain = self
            .kms
            .decrypt()
            .ciphertext_blob(Blob::new(ciphertext.as_ref()))
            .encryption_context("tenant_id", &self.tenant)
            .encryption_context("record", AUTH_KEY)
            .send()
            .await?;
        let token = String::from_utf8(plain.plaintext.ok_or("no plaintext")?.into_inner())?;
        let answer = self
            .http
            .post(format!("{}/restapi/v2.1/accounts/{}/envelopes", s("base_uri"), s("account_id")))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(self.body.clone())
            .send()
            .await?;
        if answer.status().as_u16() != 201 {
            return Err(format!("direct envelope call answered {}", answer.status()).into());
        }
        let _ = answer.bytes().await?;
        Ok(())
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

#[derive(Clone, Copy)]
struct Rounds {
    warmup: usize,
    samples: usize,
    timeout: Duration,
}

/// `warmup + samples` rounds of one invocation through `process` (its answer
/// must pass `ok`) then the same work made directly; warm-up rounds are not kept.
async fn alternate<D, F>(
    process: &FunctionProcess,
    event: serde_json::Value,
    rounds: Rounds,
    direct: D,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> R<Samples>
where
    D: Fn() -> F,
    F: std::future::Future<Output = R<()>>,
{
    let mut samples = Samples::default();
    for i in 0..rounds.warmup + rounds.samples {
        let t = Instant::now();
        let answer = crate::runtime::invoke(process, event.clone(), rounds.timeout).await?;
        let ours = ms(t);
        if !ok(&answer) {
            return Err(format!("{} answered {answer}", event["routeKey"]).into());
        }
        let t = Instant::now();
        direct().await?;
        let base = ms(t);
        if i >= rounds.warmup {
            samples.ours_ms.push(ours);
            samples.direct_ms.push(base);
        }
    }
    Ok(samples)
}

pub async fn run(
    world: &World,
    connection_bin: &Path,
    send_bin: &Path,
    samples: usize,
    warmup: usize,
    log_dir: &Path,
) -> R<Latency> {
    let env_vars = world.function_env().await;
    let direct = Direct {
        dynamo: world.env.dynamo.clone(),
        kms: world.env.kms.clone(),
        http: reqwest::Client::new(),
        table: world.env.table.clone(),
        tenant: world.tenant.clone(),
        body: integration_tests::fixtures::documents_envelope().to_string(),
    };
    let token = user_token(&world.tenant);
    let timeout = Duration::from_secs(20);

    let rounds = Rounds { warmup, samples, timeout };
    progress(format!("warm latency: GET /docusign/connection, {samples} samples"));
    let process = FunctionProcess::spawn_binary(connection_bin, "connection", &env_vars, log_dir).await;
    let event = http_event("GET", "/docusign/connection", "", Some(&token), None);
    let connection = alternate(
        &process,
        event,
        rounds,
        || direct.connection(),
        |answer| {
            let body: serde_json::Value =
                serde_json::from_str(answer["body"].as_str().unwrap_or_default()).unwrap_or_default();
            status_of(answer) == 200 && body["connected"] == true
        },
    )
    .await?;
    drop(process);

    progress(format!("warm latency: POST /docusign/envelopes, {samples} samples"));
    let process = FunctionProcess::spawn_binary(send_bin, "send-envelope", &env_vars, log_dir).await;
    let event = http_event("POST", "/docusign/envelopes", "", Some(&token), Some(&direct.body));
    let envelopes = alternate(&process, event, rounds, || direct.send(), |answer| status_of(answer) == 201).await?;
    drop(process);

    // AWS calls per request, counted in process on the same handlers.
    let per = 10u64;
    let counter = Counter::default();
    let app = world.counting_app(&counter)?;
    let body = integration_tests::fixtures::documents_envelope().to_string();
    let before = counter.snapshot();
    for _ in 0..per {
        let a = world.env.send_call(&app, Call { token: Some(&token), ..Call::new(Route::Connection, "GET") }).await;
        if a.status != 200 {
            return Err(format!("in-process GET /docusign/connection answered {}: {}", a.status, a.body).into());
        }
    }
    let connection_calls = counter.snapshot().since(&before);
    let before = counter.snapshot();
    for _ in 0..per {
        let a = world
            .env
            .send_call(&app, Call { token: Some(&token), body: Some(&body), ..Call::new(Route::Envelopes, "POST") })
            .await;
        if a.status != 201 {
            return Err(format!("in-process send answered {}: {}", a.status, a.body).into());
        }
    }
    let send_calls = counter.snapshot().since(&before);
    Ok(Latency { connection, envelopes, connection_calls, send_calls, calls_per_request_samples: per })
}
