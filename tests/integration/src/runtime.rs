//! A minimal Lambda Runtime API, so the real release or debug binaries run
//! as separate processes exactly as Lambda runs them: the binary polls
//! `GET /2018-06-01/runtime/invocation/next` and answers with
//! `POST .../invocation/{id}/response` or `.../error`. It records when the
//! process first asks for work: the end of its init phase, as Lambda's
//! `Init Duration` counts it (the benchmark's cold-start figure).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};

type Reply = oneshot::Sender<Result<Value, Value>>;

struct Pending {
    id: String,
    event: Value,
    deadline_ms: u64,
    reply: Reply,
}

#[derive(Clone)]
struct Shared {
    queue: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>>,
    in_flight: Arc<Mutex<HashMap<String, Reply>>>,
    init_error: Arc<Mutex<Option<String>>>,
    first_poll: Arc<watch::Sender<Option<Instant>>>,
}

/// One emulated Lambda execution environment.
pub struct RuntimeApi {
    pub address: String,
    sender: mpsc::UnboundedSender<Pending>,
    shared: Shared,
    first_poll: watch::Receiver<Option<Instant>>,
    next_id: std::sync::atomic::AtomicU64,
    server: tokio::task::JoinHandle<()>,
}

async fn next(State(s): State<Shared>) -> impl IntoResponse {
    let now = Instant::now();
    s.first_poll.send_if_modified(|first| {
        let unset = first.is_none();
        first.get_or_insert(now);
        unset
    });
    let mut queue = s.queue.lock().await;
    let Some(p) = queue.recv().await else {
        return (StatusCode::GONE, HeaderMap::new(), Bytes::new());
    };
    let mut headers = HeaderMap::new();
    headers.insert("lambda-runtime-aws-request-id", HeaderValue::from_str(&p.id).unwrap());
    headers.insert("lambda-runtime-deadline-ms", HeaderValue::from(p.deadline_ms));
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        HeaderValue::from_static("arn:aws:lambda:us-east-1:123456789012:function:test"),
    );
    headers.insert("lambda-runtime-trace-id", HeaderValue::from_static("Root=1-00000000-000000000000000000000000"));
    s.in_flight.lock().unwrap().insert(p.id.clone(), p.reply);
    (StatusCode::OK, headers, Bytes::from(p.event.to_string()))
}

fn finish(s: &Shared, id: &str, result: Result<Value, Value>) -> StatusCode {
    match s.in_flight.lock().unwrap().remove(id) {
        Some(reply) => {
            let _ = reply.send(result);
            StatusCode::ACCEPTED
        }
        None => StatusCode::NOT_FOUND,
    }
}

fn parse(body: &Bytes) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

async fn response(State(s): State<Shared>, UrlPath(id): UrlPath<String>, body: Bytes) -> StatusCode {
    finish(&s, &id, Ok(parse(&body)))
}

async fn error(State(s): State<Shared>, UrlPath(id): UrlPath<String>, body: Bytes) -> StatusCode {
    finish(&s, &id, Err(parse(&body)))
}

async fn init_error(State(s): State<Shared>, body: Bytes) -> StatusCode {
    *s.init_error.lock().unwrap() = Some(String::from_utf8_lossy(&body).into_owned());
    StatusCode::ACCEPTED
}

impl RuntimeApi {
    pub async fn start() -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        let (first_tx, first_poll) = watch::channel(None);
        let shared = Shared {
            queue: Arc::new(tokio::sync::Mutex::new(receiver)),
            in_flight: Arc::default(),
            init_error: Arc::default(),
            first_poll: Arc::new(first_tx),
        };
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { address, sender, shared, first_poll, next_id: Default::default(), server }
    }

    /// When the process first polled for work, if it has.
    pub fn first_poll(&self) -> Option<Instant> {
        *self.first_poll.borrow()
    }

    /// Queues one invocation with `timeout` as its deadline and waits for the answer.
    pub async fn invoke(&self, event: Value, timeout: Duration) -> Result<Value, Value> {
        let n = self.next_id.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let id = format!("req-{n:08}");
        let deadline_ms = (chrono::Utc::now() + chrono::Duration::from_std(timeout).unwrap()).timestamp_millis() as u64;
        let (reply, answer) = oneshot::channel();
        self.sender.send(Pending { id, event, deadline_ms, reply }).expect("runtime api is running");
        match tokio::time::timeout(timeout + Duration::from_secs(5), answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Value::String("the runtime dropped the invocation".into())),
            Err(_) => Err(Value::String(format!(
                "no answer within the deadline (init error: {:?})",
                self.shared.init_error.lock().unwrap()
            ))),
        }
    }

    pub fn init_error(&self) -> Option<String> {
        self.shared.init_error.lock().unwrap().clone()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();

/// The debug binary of a function. The workspace's binaries are built once
/// per test process (a no-op when the test command built them already; the
/// whole workspace, so features unify as in that build and nothing rebuilds).
pub fn function_binary(name: &str) -> PathBuf {
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap();
    if let Some(p) = built.get(name) {
        return p.clone();
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--workspace", "--bins"])
        .current_dir(crate::workspace_root())
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build --workspace --bins failed");
    let target =
        std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| crate::workspace_root().join("target"));
    let path = target.join("debug").join(name);
    assert!(path.exists(), "{} was not built", path.display());
    built.insert(name.to_owned(), path.clone());
    path
}

/// A function binary running against its own [`RuntimeApi`].
pub struct FunctionProcess {
    pub runtime: RuntimeApi,
    pub child: Child,
    pub log: PathBuf,
    spawned_at: Instant,
}

impl FunctionProcess {
    /// The workspace's debug binary of function `name`.
    pub async fn spawn(name: &str, env: &[(String, String)]) -> Self {
        Self::spawn_binary(&function_binary(name), name, env, &std::env::temp_dir()).await
    }

    /// Any binary, spawned as Lambda spawns it: a clean environment plus the
    /// function's variables; its output goes to a log file in `log_dir`.
    pub async fn spawn_binary(binary: &Path, name: &str, env: &[(String, String)], log_dir: &Path) -> Self {
        let runtime = RuntimeApi::start().await;
        let log = log_dir.join(format!("{}-{}.log", name, crate::random_name("run")));
        let file = std::fs::File::create(&log).expect("create the function's log file");
        let spawned_at = Instant::now();
        let child = Command::new(binary)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", &runtime.address)
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
        Self { runtime, child, log, spawned_at }
    }

    /// From spawn to the first poll for work: Lambda's `Init Duration`.
    pub async fn init_duration(&mut self, within: Duration) -> Result<Duration, String> {
        let until = Instant::now() + within;
        let mut first = self.runtime.first_poll.clone();
        loop {
            if let Some(at) = *first.borrow() {
                return Ok(at.duration_since(self.spawned_at));
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited during init ({status}): {}", self.logs_tail(20)));
            }
            if Instant::now() > until {
                return Err(format!("no poll within {within:?}: {}", self.logs_tail(20)));
            }
            let _ = tokio::time::timeout(Duration::from_millis(20), first.changed()).await;
        }
    }

    /// Peak resident set size so far (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }

    pub async fn invoke(&self, event: Value, timeout: Duration) -> Result<Value, Value> {
        self.runtime.invoke(event, timeout).await
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines of the log, for error messages.
    pub fn logs_tail(&self, lines: usize) -> String {
        let text = self.logs();
        let tail: Vec<&str> = text.lines().rev().take(lines).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// Waits for the process to exit by itself; `None` if it is still running.
    pub async fn exit_status(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let until = std::time::Instant::now() + within;
        while std::time::Instant::now() < until {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// An EventBridge scheduled event, as EventBridge sends it.
pub fn scheduled_event() -> Value {
    serde_json::json!({
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/docusign-token-refresh"],
        "detail": {}
    })
}
