//! A bare `lambda_runtime` function: no tracing, no configuration, no
//! clients. `scripts/bench.sh` compares every function's cold start, memory
//! and size with this one.
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|_: LambdaEvent<Value>| async { Ok::<Value, Error>(json!({ "hello": "world" })) }))
        .await
}
