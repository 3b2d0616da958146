//! What every measurement shares: a fresh table and simulator (the
//! integration harness's `TestEnv`), the functions' events, an in-process
//! app whose AWS clients count their calls, and tenants connected through
//! the simulator's ordinary code flow.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use integration_tests::*;
use secrecy::SecretString;
use serde_json::{json, Value};
use shared::cipher::{Binding, KmsCipher, Record, TokenCipher};
use shared::clock::SystemClock;
use shared::config::{Config, Needs};
use shared::store::dynamo::DynamoStore;
use shared::store::{Connection, ConnectionStatus, RefreshBookkeeping};
use shared::App;

use crate::count::{self, Counter};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type R<T> = Result<T, BoxError>;

/// The functions measured, in the table's order, and the baseline.
pub const FUNCTIONS: [&str; 5] = ["consent-start", "oauth-callback", "connection", "send-envelope", "token-refresh"];
pub const BASELINE: &str = "hello-baseline";

pub fn http_event(method: &str, path: &str, query: &str, token: Option<&str>, body: Option<&str>) -> Value {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(b) = &bearer {
        headers.push(("authorization", b.as_str()));
    }
    serde_json::from_str(&apigw_event(method, path, query, &headers, body)).expect("event is JSON")
}

/// The status code of an API Gateway answer, or an error naming the answer.
pub fn status_of(answer: &Value) -> u16 {
    answer["statusCode"].as_u64().unwrap_or(0) as u16
}

/// One table + simulator, with the tenants the functions act on.
pub struct World {
    pub env: TestEnv,
    /// Connected: `GET /docusign/connection` and `POST /docusign/envelopes` act on it.
    pub tenant: String,
    /// Connected: made due before each `token-refresh` invocation.
    pub refresh_tenant: String,
    /// The callback (re)connects this one.
    pub callback_tenant: String,
}

impl World {
    pub async fn start() -> R<Self> {
        let env = TestEnv::start().await;
        let tenant = random_name("bench");
        let refresh_tenant = random_name("bench-refresh");
        let callback_tenant = random_name("bench-callback");
        env.connect(&tenant).await;
        env.connect(&refresh_tenant).await;
        Ok(Self { env, tenant, refresh_tenant, callback_tenant })
    }

    /// The environment each function process gets (as Lambda would give it).
    pub async fn function_env(&self) -> Vec<(String, String)> {
        self.env.function_env().await
    }

    /// The next event for `function`, and the status that proves it worked.
    pub async fn event_for(&self, function: &str) -> R<(Value, Expect)> {
        Ok(match function {
            "consent-start" => (
                http_event("POST", "/docusign/consent", "", Some(&admin_token(&self.tenant)), None),
                Expect::Status(200),
            ),
            "oauth-callback" => {
                let url = self.env.start_consent(&self.callback_tenant).await;
                let query = self.env.visit_consent_page(&url, "").await;
                (http_event("GET", "/docusign/callback", &query, None, None), Expect::Status(200))
            }
            "connection" => (
                http_event("GET", "/docusign/connection", "", Some(&user_token(&self.tenant)), None),
                Expect::Status(200),
            ),
            "send-envelope" => (
                http_event(
                    "POST",
                    "/docusign/envelopes",
                    "",
                    Some(&user_token(&self.tenant)),
                    Some(&integration_tests::fixtures::documents_envelope().to_string()),
                ),
                Expect::Status(201),
            ),
            "token-refresh" => {
                // One connection falls due, so each run refreshes one tenant.
                self.env.set_access_expiry(&self.refresh_tenant, Utc::now() + chrono::Duration::hours(1)).await;
                (integration_tests::runtime::scheduled_event(), Expect::Refreshed)
            }
            _ => (json!({"hello": "bench"}), Expect::Any),
        })
    }

    /// An app on this world's table and simulator, built like the functions
    /// build theirs, whose DynamoDB and KMS clients count their calls.
    pub fn counting_app(&self, counter: &Counter) -> R<App> {
        counting_app(&self.env, counter)
    }
}

pub fn counting_app(env: &TestEnv, counter: &Counter) -> R<App> {
    let vars: HashMap<&str, String> = HashMap::from([
        ("DOCUSIGN_OAUTH_BASE_URL", env.sim.base_url()),
        ("DOCUSIGN_INTEGRATION_KEY", CLIENT_ID.to_owned()),
        ("DOCUSIGN_SECRET_KEY", CLIENT_SECRET.to_owned()),
        ("DOCUSIGN_REDIRECT_URI", REDIRECT_URI.to_owned()),
        ("TOKEN_TABLE", env.table.clone()),
        ("TOKEN_KEY_ID", env.key_id.clone()),
        ("CRM_JWT_SECRET", JWT_SECRET.to_owned()),
        ("CRM_ORIGIN", CRM_ORIGIN.to_owned()),
        ("DOCUSIGN_API_HOSTS", integration_tests::sim_api_host(&env.sim)),
    ]);
    let config = Config::from_lookup(
        Needs { redirect_uri: true, crm_jwt: true, docusign_secret: true, crm_origin: true },
        |k| vars.get(k).cloned(),
    )?;
    let dynamo = count::dynamodb(&env.dynamo, counter);
    let kms = count::kms(&env.kms, counter);
    let secrets = shared::app::Secrets::plain(&config);
    let ports = shared::app::Ports::dynamo(
        DynamoStore::new(dynamo, &env.table),
        Box::new(KmsCipher::new(kms, env.key_id.clone())),
        Arc::new(SystemClock),
    );
    Ok(App::assemble(config, secrets, ports)?)
}

#[derive(Clone, Copy, Debug)]
pub enum Expect {
    Status(u16),
    /// A scheduled run that refreshed something and failed nothing.
    Refreshed,
    Any,
}

impl Expect {
    pub fn check(self, function: &str, answer: &Value) -> R<()> {
        let ok = match self {
            Expect::Status(s) => status_of(answer) == s,
            Expect::Refreshed => answer["failed"] == 0 && answer["refreshed"].as_u64().unwrap_or(0) >= 1,
            Expect::Any => true,
        };
        if ok {
            Ok(())
        } else {
            Err(format!("{function} answered {answer} (expected {self:?})").into())
        }
    }
}

// ---- tenants seeded in bulk ---------------------------------------------------------

/// DocuSign tokens from the simulator's ordinary authorization-code flow:
/// `/oauth/auth` (approved, no browser) and `/oauth/token`.
pub struct SimClient {
    http: reqwest::Client,
    base: String,
}

impl SimClient {
    pub fn new(base: String) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(64)
            .build()
            .expect("http client");
        Self { http, base }
    }

    /// A new consent: `(access_token, refresh_token)`.
    pub async fn consent(&self) -> R<(String, String)> {
        let mut auth = url::Url::parse(&format!("{}/oauth/auth", self.base))?;
        auth.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", CLIENT_ID)
            .append_pair("redirect_uri", REDIRECT_URI)
            .append_pair("scope", "signature extended")
            .append_pair("state", "bench")
            .append_pair("sim_decision", "approve");
        let answer = self.http.get(auth).send().await?;
        let location = answer
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .ok_or_else(|| format!("/oauth/auth answered {} without a redirect", answer.status()))?
            .to_owned();
        let code = query_param(&location, "code").ok_or_else(|| format!("no code in {location}"))?;
        self.grant(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT_URI)]).await
    }

    /// `grant_type=refresh_token`: the rotated `(access_token, refresh_token)`.
    pub async fn refresh(&self, refresh_token: &str) -> R<(String, String)> {
        self.grant(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]).await
    }

    async fn grant(&self, form: &[(&str, &str)]) -> R<(String, String)> {
        let answer = self
            .http
            .post(format!("{}/oauth/token", self.base))
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(form)
            .send()
            .await?;
        let status = answer.status();
        let body: Value = answer.json().await?;
        match (body["access_token"].as_str(), body["refresh_token"].as_str()) {
            (Some(a), Some(r)) => Ok((a.to_owned(), r.to_owned())),
            _ => Err(format!("/oauth/token answered {status}").into()),
        }
    }
}

fn connection_id() -> String {
    random_name("bench-conn")
}

/// A connection of `tenant` with real KMS ciphertexts of real simulator
/// tokens, its access token expiring at `access_expires_at`.
pub async fn real_connection(
    template: &Connection,
    tenant: String,
    sim: &SimClient,
    cipher: &dyn TokenCipher,
    access_expires_at: DateTime<Utc>,
) -> R<Connection> {
    let (access, refresh) = sim.consent().await?;
    let access_token =
        cipher.encrypt(&Binding { tenant: &tenant, record: Record::AccessToken }, &SecretString::from(access)).await?;
    let refresh_token = cipher
        .encrypt(&Binding { tenant: &tenant, record: Record::RefreshToken }, &SecretString::from(refresh))
        .await?;
    Ok(connection(template, tenant, access_token, refresh_token, access_expires_at))
}

/// A connection whose token fields are placeholder bytes: for tenants that
/// are never due during the run (they only fill the table and the index).
pub fn placeholder_connection(template: &Connection, tenant: String, access_expires_at: DateTime<Utc>) -> Connection {
    let filler = vec![0xA5; 220];
    connection(template, tenant, filler.clone(), filler, access_expires_at)
}

fn connection(
    template: &Connection,
    tenant: String,
    access_token: Vec<u8>,
    refresh_token: Vec<u8>,
    access_expires_at: DateTime<Utc>,
) -> Connection {
    let now = Utc::now();
    Connection {
        tenant,
        connection_id: connection_id(),
        version: 1,
        environment: template.environment,
        identity: template.identity.clone(),
        access_token,
        access_token_expires_at: access_expires_at,
        refresh_token,
        refresh_token_expires_at: now + chrono::Duration::days(30),
        status: ConnectionStatus::Active,
        connected_at: now,
        last_refreshed_at: now,
        refresh: RefreshBookkeeping::default(),
    }
}

/// Writes both records of each connection (the shared crate's record
/// format) with `BatchWriteItem`, 25 items a request, 4 requests at a time.
pub async fn write_connections(dynamo: &aws_sdk_dynamodb::Client, table: &str, connections: &[Connection]) -> R<()> {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    use shared::store::dynamo::{auth_item, refresh_item};
    let requests: Vec<WriteRequest> = connections
        .iter()
        .flat_map(|c| [auth_item(c), refresh_item(c)])
        .map(|item| {
            WriteRequest::builder().put_request(PutRequest::builder().set_item(Some(item)).build().unwrap()).build()
        })
        .collect();
    stream::iter(requests.chunks(25).map(|chunk| chunk.to_vec()))
        .map(|chunk| async move {
            let mut pending = chunk;
            for attempt in 0..20 {
                let out = dynamo.batch_write_item().request_items(table, pending.clone()).send().await?;
                pending = out.unprocessed_items.and_then(|mut m| m.remove(table)).unwrap_or_default();
                if pending.is_empty() {
                    return Ok::<(), BoxError>(());
                }
                tokio::time::sleep(Duration::from_millis(50 * (attempt + 1))).await;
            }
            Err("BatchWriteItem kept leaving items unprocessed".into())
        })
        .buffer_unordered(4)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

pub async fn delete_table(env: &TestEnv) {
    let _ = env.dynamo.delete_table().table_name(&env.table).send().await;
}

pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Nearest-rank percentile of samples in milliseconds.
pub fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if values.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

pub fn progress(message: impl AsRef<str>) {
    eprintln!("bench: {}", message.as_ref());
}
