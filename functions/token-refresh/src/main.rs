//! The scheduled refresh: keeps every connection's tokens alive.
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;
use shared::{sweep, App, Needs};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let app = App::from_env(Needs::TOKEN_REFRESH).await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| sweep::handle(&app, event))).await
}
