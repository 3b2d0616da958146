//! A fault-injecting HTTP proxy in front of the AWS emulator. moto never
//! throttles and never refuses a key, so a test puts this proxy between an
//! app and moto: it forwards every request unchanged, except that, per rule,
//! it answers requests whose `X-Amz-Target` matches (e.g.
//! `DynamoDB_20120810.TransactWriteItems`, `TrentService.Decrypt`) with the
//! error AWS would send, for the next N matching requests or always. It
//! counts every request by target, so a test can check the SDK's retries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::json;
use shared::cipher::KmsCipher;
use shared::App;

use crate::{app_env, assemble, aws, random_name, TestEnv};

/// `X-Amz-Target` values of the calls the connector makes.
pub mod target {
    pub const GET_ITEM: &str = "DynamoDB_20120810.GetItem";
    pub const PUT_ITEM: &str = "DynamoDB_20120810.PutItem";
    pub const UPDATE_ITEM: &str = "DynamoDB_20120810.UpdateItem";
    pub const QUERY: &str = "DynamoDB_20120810.Query";
    pub const TRANSACT_GET: &str = "DynamoDB_20120810.TransactGetItems";
    pub const TRANSACT_WRITE: &str = "DynamoDB_20120810.TransactWriteItems";
    pub const KMS_ENCRYPT: &str = "TrentService.Encrypt";
    pub const KMS_DECRYPT: &str = "TrentService.Decrypt";
}

/// What the proxy answers instead of forwarding.
#[derive(Clone, Debug)]
pub enum AwsFault {
    /// DynamoDB `ProvisionedThroughputExceededException` (HTTP 400), which
    /// the SDK's standard retry classifies as throttling and retries.
    ProvisionedThroughputExceeded,
    /// DynamoDB's `ThrottlingException` (HTTP 400), e.g. control-plane or
    /// on-demand table limits; retried by the SDK as throttling.
    Throttling,
    /// A transaction cancelled because one of its items was throttled
    /// (`TransactionCanceledException` with reason `ThrottlingError`): not
    /// in the SDK's throttling list, so the SDK does not retry it.
    TransactionThrottled,
    /// KMS `AccessDeniedException`: the key policy or IAM refuses.
    KmsAccessDenied,
    /// KMS `KMSInvalidStateException`: e.g. the key is pending deletion.
    KmsInvalidState,
    /// KMS `DisabledException`: the key is disabled.
    KmsDisabled,
    /// Hold the request this long, then forward it.
    Delay(Duration),
}

impl AwsFault {
    /// Status, content type and body of the AWS error.
    fn answer(&self) -> (u16, &'static str, serde_json::Value) {
        const DYNAMO: &str = "application/x-amz-json-1.0";
        const KMS: &str = "application/x-amz-json-1.1";
        let dynamo = |ty: &str, message: &str| (400, DYNAMO, json!({"__type": ty, "message": message}));
        let kms = |ty: &str, message: &str| (400, KMS, json!({"__type": ty, "message": message}));
        match self {
            Self::ProvisionedThroughputExceeded => dynamo(
                "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                "The level of configured provisioned throughput for the table was exceeded. \
                 Consider increasing your provisioning level with the UpdateTable API.",
            ),
            Self::Throttling => dynamo(
                "com.amazon.coral.availability#ThrottlingException",
                "Rate of requests exceeds the allowed throughput.",
            ),
            Self::TransactionThrottled => (
                400,
                DYNAMO,
                json!({
                    "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                    "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons [ThrottlingError, None]",
                    "CancellationReasons": [
                        {"Code": "ThrottlingError", "Message": "Throughput exceeds the current capacity of your table or index."},
                        {"Code": "None"}
                    ]
                }),
            ),
            Self::KmsAccessDenied => kms(
                "AccessDeniedException",
                "User: arn:aws:sts::123456789012:assumed-role/connector/fn is not authorized to perform: kms:Decrypt",
            ),
            Self::KmsInvalidState => {
                kms("KMSInvalidStateException", "arn:aws:kms:us-east-1:123456789012:key/k is pending deletion.")
            }
            Self::KmsDisabled => kms("DisabledException", "arn:aws:kms:us-east-1:123456789012:key/k is disabled."),
            Self::Delay(_) => unreachable!("a delay forwards the request"),
        }
    }
}

struct Rule {
    target: String,
    fault: AwsFault,
    /// `u32::MAX`: always.
    remaining: u32,
}

#[derive(Default)]
struct Rules {
    rules: Vec<Rule>,
    seen: HashMap<String, u32>,
    injected: HashMap<String, u32>,
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    client: reqwest::Client,
    rules: Arc<Mutex<Rules>>,
}

/// The running proxy; stops when dropped.
pub struct AwsFaults {
    pub endpoint: String,
    rules: Arc<Mutex<Rules>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for AwsFaults {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl AwsFaults {
    /// A proxy on a free loopback port, forwarding to `upstream`.
    pub async fn start(upstream: &str) -> Self {
        let rules = Arc::new(Mutex::new(Rules::default()));
        let proxy = Proxy {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
            rules: rules.clone(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the AWS fault proxy");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let router = Router::new().fallback(forward).with_state(proxy);
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("AWS fault proxy");
        });
        Self { endpoint, rules, server }
    }

    /// Answers the next `times` requests for `target` with `fault`
    /// (`u32::MAX`: always). Rules apply in the order they were added.
    pub fn fail(&self, target: &str, fault: AwsFault, times: u32) {
        self.rules.lock().unwrap().rules.push(Rule { target: target.to_owned(), fault, remaining: times });
    }

    /// Forwards everything again.
    pub fn clear(&self) {
        self.rules.lock().unwrap().rules.clear();
    }

    /// Requests for `target` that reached the proxy (faulted ones included).
    pub fn seen(&self, target: &str) -> u32 {
        self.rules.lock().unwrap().seen.get(target).copied().unwrap_or(0)
    }

    /// Requests for `target` answered with a fault (delays not counted).
    pub fn injected(&self, target: &str) -> u32 {
        self.rules.lock().unwrap().injected.get(target).copied().unwrap_or(0)
    }
}

/// The fault for this request, if a rule matches; counts it.
fn take_fault(rules: &Mutex<Rules>, target: &str) -> Option<AwsFault> {
    let mut r = rules.lock().unwrap();
    *r.seen.entry(target.to_owned()).or_default() += 1;
    let rule = r.rules.iter_mut().find(|rule| rule.target == target && rule.remaining > 0)?;
    if rule.remaining != u32::MAX {
        rule.remaining -= 1;
    }
    let fault = rule.fault.clone();
    if !matches!(fault, AwsFault::Delay(_)) {
        *r.injected.entry(target.to_owned()).or_default() += 1;
    }
    Some(fault)
}

async fn forward(State(proxy): State<Proxy>, request: Request) -> Response {
    let target = request.headers().get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    match take_fault(&proxy.rules, &target) {
        None => {}
        Some(AwsFault::Delay(d)) => tokio::time::sleep(d).await,
        Some(fault) => {
            let (status, content_type, body) = fault.answer();
            let mut response = (StatusCode::from_u16(status).unwrap(), body.to_string()).into_response();
            response.headers_mut().insert("content-type", HeaderValue::from_static(content_type));
            response.headers_mut().insert("x-amzn-requestid", HeaderValue::from_str(&random_name("fault")).unwrap());
            return response;
        }
    }
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 64 << 20).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut upstream = proxy.client.request(parts.method, format!("{}{path}", proxy.upstream)).body(body);
    for (name, value) in &parts.headers {
        if !matches!(name.as_str(), "host" | "content-length" | "connection" | "transfer-encoding") {
            upstream = upstream.header(name, value);
        }
    }
    let answer = match upstream.send().await {
        Ok(a) => a,
        Err(_) => return StatusCode::BAD_GATEWAY.into_response(),
    };
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = answer.bytes().await.unwrap_or_else(|_| Bytes::new());
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    for (name, value) in &headers {
        if !matches!(name.as_str(), "content-length" | "connection" | "transfer-encoding") {
            response.headers_mut().append(name, value.clone());
        }
    }
    response
}

impl TestEnv {
    /// A fault proxy in front of this test's AWS emulator.
    pub async fn aws_faults(&self) -> AwsFaults {
        AwsFaults::start(&aws().await.endpoint).await
    }

    /// An app on this test's table, simulator and clock whose DynamoDB and
    /// KMS calls both go through `proxy`, with the SDK's default (standard)
    /// retry, as the functions have it. Each such app has its own retry
    /// partition, so the SDK's retry token bucket (one per partition in a
    /// process) is not drained by other tests' faults.
    pub async fn app_through(&self, proxy: &AwsFaults) -> App {
        use aws_sdk_dynamodb::config::retry::RetryPartition;
        let aws = aws().await;
        let dynamo = aws_sdk_dynamodb::config::Builder::from(&aws.sdk)
            .endpoint_url(&proxy.endpoint)
            .retry_partition(RetryPartition::new(random_name("dynamodb")))
            .build();
        let kms = aws_sdk_kms::config::Builder::from(&aws.sdk)
            .endpoint_url(&proxy.endpoint)
            .retry_partition(aws_sdk_kms::config::retry::RetryPartition::new(random_name("kms")))
            .build();
        let cipher = KmsCipher::new(aws_sdk_kms::Client::from_conf(kms), aws.key_id.clone());
        assemble(
            &app_env(&self.options, &self.sim, &self.table, aws),
            aws_sdk_dynamodb::Client::from_conf(dynamo),
            Box::new(cipher),
            self.clock.clone(),
        )
    }
}
