//! Test harness: each test gets its own DynamoDB table (created from
//! `infra/dynamodb-table.json`), its own DocuSign simulator and tenant names,
//! so tests run in parallel and never share state. AWS is a local emulator
//! (moto's server) reached over the wire through the SDK: the one named by
//! `AWS_ENDPOINT_URL`, or one this process starts from `.venv/bin`.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType,
};
use docusign_sim::{SimConfig, Simulator};
use lambda_http::{Body, Response};
use serde_json::{json, Value};
use shared::app::{Ports, Secrets};
use shared::cipher::KmsCipher;
use shared::clock::{Clock, OffsetClock};
use shared::config::{Config, Needs};
use shared::store::dynamo::DynamoStore;
use shared::App;
use tokio::sync::OnceCell;

pub const CLIENT_ID: &str = "test-integration-key-0001";
pub const CLIENT_SECRET: &str = "test-client-secret-value-0001";
pub const REDIRECT_URI: &str = "https://connector.example/docusign/callback";
pub const JWT_SECRET: &str = "test-crm-jwt-secret-0123456789abcdef";
pub const AUDIENCE: &str = "docusign-connector";
pub const CRM_ORIGIN: &str = "https://crm.example";

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

// ---- the AWS emulator ------------------------------------------------------------

pub mod aws_faults;
pub mod fixtures;
pub mod runtime;

struct Aws {
    sdk: aws_config::SdkConfig,
    key_id: String,
    endpoint: String,
}

static AWS: OnceCell<Aws> = OnceCell::const_new();

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts moto's server for this test process; a watchdog stops it when the
/// process ends.
fn start_moto() -> String {
    // moto with each DynamoDB request atomic, as in DynamoDB (scripts/moto_server.py).
    let python = workspace_root().join(".venv/bin/python");
    let python = if python.exists() { python.display().to_string() } else { "python3".to_owned() };
    let program = format!("'{python}' '{}'", workspace_root().join("scripts/moto_server.py").display());
    let port = free_port();
    let script = format!(
        "{program} -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; \
         while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill $m",
        parent = std::process::id()
    );
    // The shell outlives nothing: it stops moto and exits once this process is gone.
    #[allow(clippy::zombie_processes)]
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .spawn()
        .expect("cannot start moto's server: run the README's test command, or set AWS_ENDPOINT_URL");
    format!("http://127.0.0.1:{port}")
}

async fn wait_ready(endpoint: &str) {
    let client = reqwest::Client::new();
    for _ in 0..150 {
        if client.get(format!("{endpoint}/moto-api/")).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the AWS emulator at {endpoint} did not answer within 15 s");
}

async fn aws() -> &'static Aws {
    AWS.get_or_init(|| async {
        let endpoint = std::env::var("AWS_ENDPOINT_URL").ok().filter(|v| !v.is_empty()).unwrap_or_else(start_moto);
        wait_ready(&endpoint).await;
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(shared::aws::http_client())
            .endpoint_url(&endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "tests"))
            .load()
            .await;
        let kms = aws_sdk_kms::Client::new(&sdk);
        let key = kms.create_key().description("integration tests").send().await.expect("create KMS key");
        let key_id = key.key_metadata.expect("key metadata").key_id;
        Aws { sdk, key_id, endpoint }
    })
    .await
}

/// Creates a table from `infra/dynamodb-table.json` under another name.
pub async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str) {
    let raw = std::fs::read_to_string(workspace_root().join("infra/dynamodb-table.json")).expect("table definition");
    let def: Value = serde_json::from_str(&raw).expect("table definition is JSON");
    let key_schema = |v: &Value| -> Vec<KeySchemaElement> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|k| {
                KeySchemaElement::builder()
                    .attribute_name(k["AttributeName"].as_str().unwrap())
                    .key_type(KeyType::from(k["KeyType"].as_str().unwrap()))
                    .build()
                    .unwrap()
            })
            .collect()
    };
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::from(def["BillingMode"].as_str().unwrap()))
        .set_key_schema(Some(key_schema(&def["KeySchema"])));
    for a in def["AttributeDefinitions"].as_array().unwrap() {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(a["AttributeName"].as_str().unwrap())
                .attribute_type(ScalarAttributeType::from(a["AttributeType"].as_str().unwrap()))
                .build()
                .unwrap(),
        );
    }
    for g in def["GlobalSecondaryIndexes"].as_array().into_iter().flatten() {
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(g["IndexName"].as_str().unwrap())
                .set_key_schema(Some(key_schema(&g["KeySchema"])))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::from(g["Projection"]["ProjectionType"].as_str().unwrap()))
                        .build(),
                )
                .build()
                .unwrap(),
        );
    }
    request.send().await.expect("create table");
}

/// A fresh tenant id, unique to the test that asks.
pub fn tenant() -> String {
    random_name("tenant")
}

pub fn random_name(prefix: &str) -> String {
    use rand::Rng;
    let n: u64 = rand::thread_rng().gen();
    format!("{prefix}-{n:016x}")
}

// ---- one test's world --------------------------------------------------------------

/// Settings a test may change.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub account_id: Option<String>,
    pub environment: Option<&'static str>,
    /// More configuration (name, value), replacing any variable of the same name.
    pub extra_env: Vec<(String, String)>,
}

pub struct TestEnv {
    pub sim: Simulator,
    pub app: App,
    pub clock: Arc<OffsetClock>,
    pub table: String,
    pub dynamo: aws_sdk_dynamodb::Client,
    pub kms: aws_sdk_kms::Client,
    pub key_id: String,
    pub options: Options,
}

/// What a handler answered, with the body as text.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: lambda_http::http::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or_default().to_owned()
    }
}

fn answer(response: Response<Body>) -> Answer {
    let (parts, body) = response.into_parts();
    let body = match body {
        Body::Empty => String::new(),
        Body::Text(t) => t,
        Body::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
        _ => String::new(),
    };
    Answer { status: parts.status.as_u16(), headers: parts.headers, body }
}

/// An API Gateway HTTP API (payload 2.0) event, as API Gateway sends it.
pub fn apigw_event(method: &str, path: &str, query: &str, headers: &[(&str, &str)], body: Option<&str>) -> String {
    let headers: serde_json::Map<String, Value> = headers.iter().map(|(k, v)| (k.to_lowercase(), json!(v))).collect();
    json!({
        "version": "2.0",
        "routeKey": format!("{method} {path}"),
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "api.example.com",
            "domainPrefix": "api",
            "http": { "method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "tests" },
            "requestId": random_name("req"),
            "routeKey": format!("{method} {path}"),
            "stage": "$default",
            "time": "28/Nov/2026:12:00:00 +0000",
            "timeEpoch": 1_795_000_000_000u64
        },
        "body": body,
        "isBase64Encoded": false
    })
    .to_string()
}

pub enum Route {
    Consent,
    Confirm,
    Callback,
    Connection,
    Envelopes,
}

/// A request to one of the routes, built up by a test.
pub struct Call<'a> {
    pub route: Route,
    pub method: &'a str,
    pub query: &'a str,
    pub token: Option<&'a str>,
    pub body: Option<&'a str>,
    pub headers: Vec<(&'a str, &'a str)>,
    /// The Lambda deadline, from now.
    pub budget: Option<Duration>,
}

impl<'a> Call<'a> {
    pub fn new(route: Route, method: &'a str) -> Self {
        Self { route, method, query: "", token: None, body: None, headers: Vec::new(), budget: None }
    }
}

impl TestEnv {
    pub async fn start() -> Self {
        Self::with(Options::default()).await
    }

    pub async fn with(options: Options) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let aws = aws().await;
        let dynamo = aws_sdk_dynamodb::Client::new(&aws.sdk);
        let kms = aws_sdk_kms::Client::new(&aws.sdk);
        let table = random_name("tokens");
        create_table(&dynamo, &table).await;
        let sim = Simulator::start(SimConfig::new(CLIENT_ID, CLIENT_SECRET, vec![REDIRECT_URI.to_owned()]))
            .await
            .expect("start the DocuSign simulator");
        let clock = Arc::new(OffsetClock::default());
        let app = Self::build_app(&options, &sim, &table, aws, clock.clone());
        Self { sim, app, clock, table, dynamo, kms, key_id: aws.key_id.clone(), options }
    }

    fn build_app(options: &Options, sim: &Simulator, table: &str, aws: &Aws, clock: Arc<OffsetClock>) -> App {
        assemble(
            &app_env(options, sim, table, aws),
            aws_sdk_dynamodb::Client::new(&aws.sdk),
            Box::new(KmsCipher::new(aws_sdk_kms::Client::new(&aws.sdk), aws.key_id.clone())),
            clock,
        )
    }

    /// An app on the same table, simulator and clock whose DynamoDB and/or
    /// token cipher are replaced: for fault injection.
    pub async fn app_with(
        &self,
        dynamo_endpoint: Option<&str>,
        cipher: Option<Box<dyn shared::cipher::TokenCipher>>,
    ) -> App {
        let aws = aws().await;
        let dynamo = match dynamo_endpoint {
            None => aws_sdk_dynamodb::Client::new(&aws.sdk),
            Some(endpoint) => {
                let config = aws_sdk_dynamodb::config::Builder::from(&aws.sdk)
                    .endpoint_url(endpoint)
                    .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2))
                    .build();
                aws_sdk_dynamodb::Client::from_conf(config)
            }
        };
        let cipher =
            cipher.unwrap_or_else(|| Box::new(KmsCipher::new(aws_sdk_kms::Client::new(&aws.sdk), aws.key_id.clone())));
        assemble(&app_env(&self.options, &self.sim, &self.table, aws), dynamo, cipher, self.clock.clone())
    }

    /// The real KMS cipher of this test's emulator.
    pub async fn kms_cipher(&self) -> KmsCipher {
        let aws = aws().await;
        KmsCipher::new(aws_sdk_kms::Client::new(&aws.sdk), aws.key_id.clone())
    }

    /// A KMS cipher whose endpoint answers nothing (connection refused).
    pub async fn unreachable_kms(&self) -> KmsCipher {
        let aws = aws().await;
        let config = aws_sdk_kms::config::Builder::from(&aws.sdk)
            .endpoint_url(format!("http://127.0.0.1:{}", free_port()))
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2))
            .build();
        KmsCipher::new(aws_sdk_kms::Client::from_conf(config), aws.key_id.clone())
    }

    /// A DynamoDB endpoint that refuses connections.
    pub fn unreachable_endpoint() -> String {
        format!("http://127.0.0.1:{}", free_port())
    }

    /// The same table, simulator and clock seen by a function configured
    /// differently (e.g. after switching the DocuSign environment).
    pub async fn reconfigured(&self, options: Options) -> App {
        Self::build_app(&options, &self.sim, &self.table, aws().await, self.clock.clone())
    }

    /// An app on the same table, simulator and clock whose environment
    /// differs by `changes` (`None` unsets a variable), built as a CRM-facing
    /// function starts: the configuration error or start-up error, if any.
    /// The CRM's HS256 secret is the one `CRM_JWT_SECRET` ends up with.
    pub async fn app_with_env(&self, changes: &[(&str, Option<&str>)]) -> Result<App, shared::app::StartupError> {
        let aws = aws().await;
        let mut env = app_env(&self.options, &self.sim, &self.table, aws);
        for (name, value) in changes {
            env.retain(|(k, _)| k != name);
            if let Some(v) = value {
                env.push(((*name).to_owned(), (*v).to_owned()));
            }
        }
        let lookup = |k: &str| env.iter().find(|(name, _)| name == k).map(|(_, v)| v.clone());
        let config = Config::from_lookup(Needs::CONNECTION, lookup)?;
        let jwt_secret = lookup("CRM_JWT_SECRET").map(secrecy::SecretString::from);
        let table = config.token_table.clone();
        let secrets = Secrets { docusign: CLIENT_SECRET.to_owned().into(), docusign_next: None, crm_jwt: jwt_secret };
        let ports = Ports::dynamo(
            DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws.sdk), table),
            Box::new(KmsCipher::new(aws_sdk_kms::Client::new(&aws.sdk), aws.key_id.clone())),
            self.clock.clone(),
        );
        App::assemble(config, secrets, ports)
    }

    /// The environment a function binary of this test runs with (as Lambda
    /// would give it, pointed at the emulator and the simulator).
    pub async fn function_env(&self) -> Vec<(String, String)> {
        let aws = aws().await;
        let mut env = app_env(&self.options, &self.sim, &self.table, aws);
        env.extend(
            [
                ("AWS_ENDPOINT_URL", aws.endpoint.as_str()),
                ("AWS_REGION", "us-east-1"),
                ("AWS_ACCESS_KEY_ID", "test"),
                ("AWS_SECRET_ACCESS_KEY", "test"),
                ("RUST_LOG", "info"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        env
    }

    /// One scheduled run, in process, with a minute to go.
    pub async fn sweep(&self) -> shared::sweep::Summary {
        shared::sweep::sweep(&self.app, tokio::time::Instant::now() + Duration::from_secs(60)).await.expect("sweep")
    }

    /// Moves the stored access-token expiry of `tenant` to `at`, as if time
    /// had passed for our records only (for function processes, which run on
    /// the system clock; DocuSign's tokens stay valid).
    pub async fn set_access_expiry(&self, tenant: &str, at: chrono::DateTime<chrono::Utc>) {
        use aws_sdk_dynamodb::types::AttributeValue;
        let stamp = shared::clock::rfc3339(at);
        self.dynamo
            .update_item()
            .table_name(&self.table)
            .set_key(Some(shared::store::dynamo::key(tenant, shared::store::AUTH_KEY)))
            .update_expression("SET access_token_expires_at = :t")
            .expression_attribute_values(":t", AttributeValue::S(stamp))
            .send()
            .await
            .unwrap();
        self.dynamo
            .update_item()
            .table_name(&self.table)
            .set_key(Some(shared::store::dynamo::key(tenant, shared::store::REFRESH_KEY)))
            .update_expression("SET due_at = :d")
            .expression_attribute_values(":d", AttributeValue::N(at.timestamp().to_string()))
            .send()
            .await
            .unwrap();
    }

    /// Moves our clock and the simulator's together.
    pub fn advance(&self, secs: i64) {
        self.clock.advance(secs);
        self.sim.advance_clock(secs);
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    pub async fn call(&self, route: Route, method: &str, query: &str, token: Option<&str>) -> Answer {
        self.call_app(&self.app, route, method, query, token).await
    }

    pub async fn call_app(&self, app: &App, route: Route, method: &str, query: &str, token: Option<&str>) -> Answer {
        let call = Call { query, token, ..Call::new(route, method) };
        self.send_call(app, call).await
    }

    pub async fn send_call(&self, app: &App, call: Call<'_>) -> Answer {
        use lambda_http::RequestExt;
        let bearer = call.token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(b) = &bearer {
            headers.push(("authorization", b.as_str()));
        }
        headers.extend(call.headers.iter().copied());
        let path = match call.route {
            Route::Consent => "/docusign/consent",
            Route::Confirm => "/docusign/consent/confirm",
            Route::Callback => "/docusign/callback",
            Route::Connection => "/docusign/connection",
            Route::Envelopes => "/docusign/envelopes",
        };
        let event = apigw_event(call.method, path, call.query, &headers, call.body);
        let mut request = lambda_http::request::from_str(&event).expect("a valid API Gateway v2 event");
        if let Some(budget) = call.budget {
            let mut context = lambda_http::Context::default();
            context.deadline =
                (chrono::Utc::now() + chrono::Duration::from_std(budget).unwrap()).timestamp_millis() as u64;
            request = request.with_lambda_context(context);
        }
        let response = match call.route {
            Route::Consent | Route::Confirm => shared::http::consent_start(app, request).await,
            Route::Callback => shared::http::callback(app, request).await,
            Route::Connection => shared::http::connection(app, request).await,
            Route::Envelopes => shared::http::send_envelope(app, request).await,
        };
        answer(response.expect("handlers answer every request"))
    }

    /// `POST /docusign/envelopes` as a CRM user of `tenant`.
    pub async fn send(&self, tenant: &str, body: &str, idempotency_key: Option<&str>) -> Answer {
        let token = user_token(tenant);
        let mut call = Call { token: Some(&token), body: Some(body), ..Call::new(Route::Envelopes, "POST") };
        if let Some(k) = idempotency_key {
            call.headers.push(("idempotency-key", k));
        }
        self.send_call(&self.app, call).await
    }

    /// POST /docusign/consent as an admin of `tenant`; returns the authorization URL.
    pub async fn start_consent(&self, tenant: &str) -> String {
        let a = self.call(Route::Consent, "POST", "", Some(&admin_token(tenant))).await;
        assert_eq!(a.status, 200, "{}", a.body);
        a.json()["authorization_url"].as_str().unwrap().to_owned()
    }

    /// Follows the authorization URL at the simulator as the admin's browser
    /// would, and returns the callback query DocuSign redirects with.
    pub async fn visit_consent_page(&self, authorization_url: &str, extra: &str) -> String {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let url = if extra.is_empty() { authorization_url.to_owned() } else { format!("{authorization_url}&{extra}") };
        let response = client.get(url).send().await.expect("consent page");
        assert_eq!(response.status().as_u16(), 302, "the simulator should redirect back");
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        assert!(location.starts_with(REDIRECT_URI), "{location}");
        url::Url::parse(&location).unwrap().query().unwrap_or_default().to_owned()
    }

    /// Consent start, DocuSign's consent page and the callback for
    /// `tenant`, without the confirmation; returns the callback's answer.
    pub async fn connect_as(&self, tenant: &str, extra: &str) -> Answer {
        let url = self.start_consent(tenant).await;
        let query = self.visit_consent_page(&url, extra).await;
        self.call(Route::Callback, "GET", &query, None).await
    }

    /// `POST /docusign/consent/confirm` as the admin of `tenant` who started
    /// the consents of these tests (`admin_token`).
    pub async fn confirm(&self, tenant: &str, confirmation: &str) -> Answer {
        self.confirm_with(&admin_token(tenant), confirmation).await
    }

    pub async fn confirm_with(&self, token: &str, confirmation: &str) -> Answer {
        let body = json!({ "confirmation": confirmation }).to_string();
        let call = Call { token: Some(token), body: Some(&body), ..Call::new(Route::Confirm, "POST") };
        self.send_call(&self.app, call).await
    }

    /// The whole connect flow for `tenant`, confirmed by its admin; returns
    /// the callback's answer.
    pub async fn connect(&self, tenant: &str) -> Answer {
        let a = self.connect_as(tenant, "").await;
        assert_eq!(a.status, 200, "{}", a.body);
        let confirmation = callback_confirmation(&a).expect("an approved callback carries a confirmation");
        let confirmed = self.confirm(tenant, &confirmation).await;
        assert_eq!(confirmed.status, 200, "{}", confirmed.body);
        a
    }

    pub async fn status(&self, tenant: &str) -> Value {
        let a = self.call(Route::Connection, "GET", "", Some(&user_token(tenant))).await;
        assert_eq!(a.status, 200, "{}", a.body);
        a.json()
    }

    /// Every item of the table (tests only: production never scans).
    pub async fn scan(&self) -> Vec<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        let out = self.dynamo.scan().table_name(&self.table).consistent_read(true).send().await.unwrap();
        out.items.unwrap_or_default()
    }

    pub async fn item(
        &self,
        tenant: &str,
        key: &str,
    ) -> Option<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        self.dynamo
            .get_item()
            .table_name(&self.table)
            .set_key(Some(shared::store::dynamo::key(tenant, key)))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
    }
}

/// The contract's configuration of a function in this test's world.
fn app_env(options: &Options, sim: &Simulator, table: &str, aws: &Aws) -> Vec<(String, String)> {
    let mut env = vec![
        ("DOCUSIGN_OAUTH_BASE_URL", sim.base_url()),
        ("DOCUSIGN_INTEGRATION_KEY", CLIENT_ID.to_owned()),
        ("DOCUSIGN_SECRET_KEY", CLIENT_SECRET.to_owned()),
        ("DOCUSIGN_REDIRECT_URI", REDIRECT_URI.to_owned()),
        ("TOKEN_TABLE", table.to_owned()),
        ("TOKEN_KEY_ID", aws.key_id.clone()),
        ("CRM_JWT_SECRET", JWT_SECRET.to_owned()),
        ("CRM_ORIGIN", CRM_ORIGIN.to_owned()),
        ("DOCUSIGN_API_HOSTS", sim_api_host(sim)),
    ];
    if let Some(a) = &options.account_id {
        env.push(("DOCUSIGN_ACCOUNT_ID", a.clone()));
    }
    if let Some(e) = options.environment {
        env.push(("DOCUSIGN_ENVIRONMENT", e.to_owned()));
    }
    let mut env: Vec<(String, String)> = env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    for (name, value) in &options.extra_env {
        env.retain(|(k, _)| k != name);
        env.push((name.clone(), value.clone()));
    }
    env
}

/// The simulator as an allowed eSignature host (`127.0.0.1:PORT`).
pub fn sim_api_host(sim: &Simulator) -> String {
    sim.base_url().trim_start_matches("http://").trim_end_matches('/').to_owned()
}

/// An app from that configuration, with the given DynamoDB client, cipher and clock.
fn assemble(
    env: &[(String, String)],
    dynamo: aws_sdk_dynamodb::Client,
    cipher: Box<dyn shared::cipher::TokenCipher>,
    clock: Arc<OffsetClock>,
) -> App {
    let lookup = |k: &str| env.iter().find(|(name, _)| name == k).map(|(_, v)| v.clone());
    let config = Config::from_lookup(
        Needs { redirect_uri: true, crm_jwt: true, docusign_secret: true, crm_origin: true },
        lookup,
    )
    .expect("test configuration");
    let table = config.token_table.clone();
    let secrets = Secrets::plain(&config);
    App::assemble(config, secrets, Ports::dynamo(DynamoStore::new(dynamo, table), cipher, clock))
        .expect("assemble the app")
}

// ---- CRM tokens ---------------------------------------------------------------------

pub fn token_with(claims: Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap()
}

pub fn claims(tenant: &str, role: &str) -> Value {
    json!({
        "tenant": tenant,
        "sub": format!("{role}-of-{tenant}"),
        "role": role,
        "aud": AUDIENCE,
        "exp": chrono::Utc::now().timestamp() + 600,
    })
}

pub fn admin_token(tenant: &str) -> String {
    token_with(claims(tenant, "admin"), JWT_SECRET)
}

pub fn user_token(tenant: &str) -> String {
    token_with(claims(tenant, "user"), JWT_SECRET)
}

/// The result message a callback page embeds
/// (`<script type="application/json" id="docusign-consent-result">`).
pub fn callback_result(page: &Answer) -> Value {
    const OPEN: &str = r#"<script type="application/json" id="docusign-consent-result">"#;
    let start =
        page.body.find(OPEN).unwrap_or_else(|| panic!("no result message in the page: {}", page.body)) + OPEN.len();
    let end = start + page.body[start..].find("</script>").expect("closed");
    serde_json::from_str(&page.body[start..end]).expect("the result message is JSON")
}

/// The confirmation of an approved callback page.
pub fn callback_confirmation(page: &Answer) -> Option<String> {
    let result = callback_result(page);
    (result["status"] == "approved").then(|| result["confirmation"].as_str().map(str::to_owned)).flatten()
}

/// A query parameter of a URL or query string.
pub fn query_param(query_or_url: &str, name: &str) -> Option<String> {
    let query = query_or_url.split_once('?').map_or(query_or_url, |(_, q)| q);
    url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}
